"""What a run folder's path says about the run (the output patterns of PROTOCOLS.md §2).

Patterns are matched on the last components of the path, so a tree can be collected from
`output/` or from any folder inside it. Protocol names used in the tidy CSV:

| protocol   | folder (last components)                                                   |
|------------|----------------------------------------------------------------------------|
| base2new   | base2new/{train_base,test_new,test_base}/DATASET/shots_K/TRAINER/CFG/seedS |
| xd_eval    | evaluation/TRAINER/CFG_Kshots[_from_SOURCE][/VARIANT]/TARGET/seedS          |
| ablation   | ablation/DATASET/TRAINER/CFG_Kshots/VARIANT/seedS                          |
| fewshot    | DATASET/TRAINER/CFG_Kshots[/VARIANT]/seedS (also the cross-dataset source) |
| zeroshot   | ZeroshotCLIP/CFG/DATASET                                                   |
| other      | anything else (fields then come from results.json alone)                   |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

SEED_DIR = re.compile(r"seed(\d+)$")
SHOTS_DIR = re.compile(r"(.+)_(\d+)shots(?:_from_(.+))?$")
B2N_SHOTS_DIR = re.compile(r"shots_(\d+)$")
B2N_PHASES = ("train_base", "test_new", "test_base")
ZEROSHOT_TRAINERS = ("ZeroshotCLIP", "ZeroshotCLIP2")


@dataclass
class RunLayout:
    protocol: str = "other"
    phase: str = ""
    dataset: str = ""
    trainer: str = ""
    config: str = ""
    variant: str = ""
    shots: int | None = None
    seed: int | None = None
    source: str = ""


def _tail(parts: tuple[str, ...], n: int) -> tuple[str, ...] | None:
    return parts[-n:] if len(parts) >= n else None


def _match_seeded(parts: tuple[str, ...], seed: int) -> RunLayout | None:
    """Patterns whose last component is `seed<S>` (`parts` excludes it)."""
    tail = _tail(parts, 6)
    if tail and tail[0] == "base2new" and tail[1] in B2N_PHASES:
        shots = B2N_SHOTS_DIR.match(tail[3])
        if shots:
            return RunLayout(protocol="base2new", phase=tail[1], dataset=tail[2],
                             trainer=tail[4], config=tail[5], shots=int(shots.group(1)),
                             seed=seed)  # fmt: skip
    for depth in (4, 5):  # evaluation/TRAINER/CFG_Kshots[/VARIANT]/TARGET
        tail = _tail(parts, depth)
        shots = SHOTS_DIR.match(tail[2]) if tail and tail[0] == "evaluation" else None
        if shots:
            return RunLayout(protocol="xd_eval", dataset=tail[-1], trainer=tail[1],
                             config=shots.group(1), variant=tail[3] if depth == 5 else "",
                             shots=int(shots.group(2)), seed=seed,
                             source=shots.group(3) or "")  # fmt: skip
    tail = _tail(parts, 5)
    shots = SHOTS_DIR.match(tail[3]) if tail and tail[0] == "ablation" else None
    if shots:
        return RunLayout(protocol="ablation", dataset=tail[1], trainer=tail[2],
                         config=shots.group(1), variant=tail[4], shots=int(shots.group(2)),
                         seed=seed)  # fmt: skip
    for depth in (3, 4):  # DATASET/TRAINER/CFG_Kshots[/VARIANT]
        tail = _tail(parts, depth)
        shots = SHOTS_DIR.match(tail[2]) if tail else None
        if shots:
            return RunLayout(protocol="fewshot", dataset=tail[0], trainer=tail[1],
                             config=shots.group(1), variant=tail[3] if depth == 4 else "",
                             shots=int(shots.group(2)), seed=seed)  # fmt: skip
    return None


def infer_layout(run_dir: str | PurePath) -> RunLayout:
    """The protocol and the fields its folder pattern encodes ("other" when none matches)."""
    parts = PurePath(run_dir).parts
    if not parts:
        return RunLayout()
    seed = SEED_DIR.match(parts[-1])
    if seed:
        layout = _match_seeded(parts[:-1], int(seed.group(1)))
        return layout if layout else RunLayout(seed=int(seed.group(1)))
    if len(parts) >= 3 and parts[-3] in ZEROSHOT_TRAINERS:
        return RunLayout("zeroshot", "", parts[-1], parts[-3], parts[-2], shots=0)
    return RunLayout()


def source_from_model_dir(model_dir: str) -> str:
    """The source dataset of an evaluation run, read from the model folder it loaded
    (`<root>/<source>/<trainer>/<cfg>_<K>shots[/<variant>]/seed<S>`); '' if not that shape."""
    parts = PurePath(model_dir).parts if model_dir else ()
    if not parts or not SEED_DIR.match(parts[-1]):
        return ""
    if len(parts) >= 4 and SHOTS_DIR.match(parts[-2]):
        return parts[-4]
    if len(parts) >= 5 and SHOTS_DIR.match(parts[-3]):  # with a variant level (CoOp)
        return parts[-5]
    return ""
