"""`make demo`: Table 1 in miniature — base-to-new zero-shot CLIP, CoOp, CoCoOp, MaPLe, AMMPL.

Every method is trained on the base half of the classes of one mini dataset (16 shots) and
tested on the base and the new half; the table shows Base, Novel and their harmonic mean.
The backbone is real CLIP ViT-B/16 when its weights are found, otherwise `mini`, the small
CLIP pretrained on the mini world that ships with the package (one notice line, once).
The dataset is built on first use and cached. Each run is an ordinary training run with
its own output folder (log.txt, results.json, checkpoints); finished runs are re-used.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

from tabulate import tabulate

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = os.path.join("~", ".cache", "ammpl", "datasets")
DEMO_DATASET = "MiniColors"
DEMO_DATASET_CONFIG = "configs/datasets/mini_colors.yaml"
SHOTS = 16
DEMO_RUNS = (
    # (label, trainer, method config)
    ("Zero-shot CLIP", "ZeroshotCLIP", "configs/trainers/CoOp/mini.yaml"),
    ("CoOp", "CoOp", "configs/trainers/CoOp/mini.yaml"),
    ("CoCoOp", "CoCoOp", "configs/trainers/CoCoOp/mini.yaml"),
    ("MaPLe", "MaPLe", "configs/trainers/MaPLe/mini.yaml"),
    ("AMMPL", "AMMPL", "configs/trainers/AMMPL/mini.yaml"),
)
REAL_BACKBONE = "ViT-B/16"


def find_real_weights() -> None:
    """Resolve ViT-B/16's weights (WeightsNotFoundError when no place has them)."""
    from ammpl.clip.backbones import get_backbone_spec
    from ammpl.clip.weights import resolve_weights

    resolve_weights(get_backbone_spec(REAL_BACKBONE).weights)


def choose_backbone(requested: str) -> tuple[str, list[str]]:
    """The backbone name and its config overrides; the fallback notice is printed here, once."""
    if requested != "auto":
        return requested, _overrides(requested)
    from ammpl.clip.weights import WeightsNotFoundError

    try:
        find_real_weights()
    except WeightsNotFoundError as error:
        print(
            f"{REAL_BACKBONE} weights not found (looked in {', '.join(error.places)}); running "
            f"the demo on `mini`, the small CLIP pretrained on the mini world (docs/MINI.md)"
        )
        return "mini", _overrides("mini")
    return REAL_BACKBONE, _overrides(REAL_BACKBONE)


def _overrides(backbone: str) -> list[str]:
    if backbone == "mini":
        return []  # the demo configs are written for it
    return ["MODEL.BACKBONE.NAME", backbone, "INPUT.SIZE", "(224, 224)"]


def run_folder_tag(backbone: str) -> str:
    """What the demo's finished runs depend on besides the configs: the dataset's generator
    version and, for `mini`, its weights. Runs are re-used only under the same tag, so an
    upgrade that changes either never prints the old table."""
    from ammpl.mini.benchmark import GENERATOR_VERSION

    tag = f"data-v{GENERATOR_VERSION}"
    if backbone == "mini":
        from ammpl.mini.model import MINI_WEIGHTS_HASH

        tag += f"-weights-{MINI_WEIGHTS_HASH}"
    return tag


def read_accuracy(output_dir: Path) -> float | None:
    """The test accuracy recorded in the run's results.json (None if it has none)."""
    try:
        record = json.loads((output_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return ((record.get("results") or {}).get("test") or {}).get("accuracy")


def max_epoch(config: str) -> int:
    """OPTIM.MAX_EPOCH of a method config (the epoch the new-class evaluation loads)."""
    import yaml

    cfg = yaml.safe_load((REPO_ROOT / config).read_text()) or {}
    return int((cfg.get("OPTIM") or {}).get("MAX_EPOCH", 10))


def run_quietly(args: list[str], log_path: Path) -> int:
    """One `train.py` run in this process; its terminal output goes to `log_path`."""
    from ammpl.cli.train import main as train_main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = train_main(args)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(buffer.getvalue())
    return code


def method_runs(trainer: str, config: str, root: str, out: Path, overrides: list[str]):
    """(output folder, args) of the base run and the new-class evaluation of one method."""
    common = [
        "--root", root, "--seed", "1", "--trainer", trainer,
        "--dataset-config-file", str(REPO_ROOT / DEMO_DATASET_CONFIG),
        "--config-file", str(REPO_ROOT / config),
    ]  # fmt: skip
    base_dir, new_dir = out / trainer / "base", out / trainer / "new"
    tail = ["DATASET.NUM_SHOTS", str(SHOTS), *overrides]
    if trainer.startswith("Zeroshot"):
        base = [*common, "--output-dir", str(base_dir), "--eval-only"]
        new = [*common, "--output-dir", str(new_dir), "--eval-only"]
    else:
        base = [*common, "--output-dir", str(base_dir)]
        new = [
            *common, "--output-dir", str(new_dir), "--eval-only",
            "--model-dir", str(base_dir), "--load-epoch", str(max_epoch(config)),
        ]  # fmt: skip
    return [
        (base_dir, [*base, *tail, "DATASET.SUBSAMPLE_CLASSES", "base"]),
        (new_dir, [*new, *tail, "DATASET.SUBSAMPLE_CLASSES", "new"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ammpl-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("AMMPL_DEMO_DATA", DEFAULT_DATA))
    parser.add_argument("--output-dir", default=str(REPO_ROOT / "output" / "demo"))
    parser.add_argument(
        "--backbone", default="auto", help="auto (ViT-B/16 if found, else mini), or a name"
    )
    args = parser.parse_args(argv)

    import torch

    from ammpl.mini.benchmark import build_benchmark
    from ammpl.results.aggregate import harmonic_mean
    from ammpl.utils.errors import AmmplError

    if "OMP_NUM_THREADS" not in os.environ:
        # The mini model's operations are too small to gain from threads, and on a busy
        # machine threads that wait for each other make a run several times slower.
        torch.set_num_threads(1)
    started = time.time()
    root = os.path.abspath(os.path.expanduser(args.root))
    try:
        backbone, overrides = choose_backbone(args.backbone)
        build_benchmark(root, [DEMO_DATASET])
    except AmmplError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    out = Path(args.output_dir) / backbone.replace("/", "-") / run_folder_tag(backbone)

    rows = []
    for label, trainer, config in DEMO_RUNS:
        start = time.time()
        accuracies = []
        for run_dir, run_args in method_runs(trainer, config, root, out, overrides):
            if read_accuracy(run_dir) is None:
                code = run_quietly(run_args, run_dir / "terminal.txt")
                if code != 0:
                    print(f"error: the {label} run failed (see {run_dir / 'terminal.txt'})")
                    return code
            accuracies.append(read_accuracy(run_dir))
        base, new = accuracies
        rows.append([label, base, new, harmonic_mean(base, new), f"{time.time() - start:.0f} s"])
        print(f"==> {label}: base {base:.2f}, novel {new:.2f} ({out / trainer})", flush=True)

    print()
    print(
        f"Base-to-new on {DEMO_DATASET} ({SHOTS} shots, seed 1, backbone {backbone}), accuracy %:"
    )
    print(tabulate(rows, headers=["method", "Base", "Novel", "HM", "time"], floatfmt=".2f"))
    print(f"total {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
