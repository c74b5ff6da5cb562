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
            return RunLayout("base2new", tail[1], tail[2], tail[4], tail[5], "",
                             int(shots.group(1)), seed)  # fmt: skip
    for with_variant in (False, True):
        tail = _tail(parts, 5 if with_variant else 4)
        if tail and tail[0] == "evaluation":
            shots = SHOTS_DIR.match(tail[2])
            if shots:
                variant = tail[3] if with_variant else ""
                return RunLayout("xd_eval", "", tail[-1], tail[1], shots.group(1), variant,
                                 int(shots.group(2)), seed, shots.group(3) or "")  # fmt: skip
    tail = _tail(parts, 5)
    if tail and tail[0] == "ablation":
        shots = SHOTS_DIR.match(tail[3])
        if shots:
            return RunLayout("ablation", "", tail[1], tail[2], shots.group(1), tail[4],
                             int(shots.group(2)), seed)  # fmt: skip
    tail = _tail(parts, 3)
    if tail:
        shots = SHOTS_DIR.match(tail[2])
        if shots:
            return RunLayout("fewshot", "", tail[0], tail[1], shots.group(1), "",
                             int(shots.group(2)), seed)  # fmt: skip
    tail = _tail(parts, 4)
    if tail:
        shots = SHOTS_DIR.match(tail[2])
        if shots:
            return RunLayout("fewshot", "", tail[0], tail[1], shots.group(1), tail[3],
                             int(shots.group(2)), seed)  # fmt: skip
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
