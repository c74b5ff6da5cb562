"""`make demo`: zero-shot CLIP, CoOp and AMMPL on the built-in Shapes data, side by side.

Uses real ViT-B/16 weights when they can be found (or downloaded), otherwise the tiny
random backbone, with a one-line notice. Each run is an ordinary `train.py` run in its own
process, so its output folder (log.txt, results.json, checkpoints) is exactly what a user's
run produces; re-running the demo re-uses finished runs (CoOp's resume behaviour).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

REPO_ROOT = Path(__file__).resolve().parents[2]

DEMO_RUNS = (
    # (label, trainer, method config, extra args)
    ("Zero-shot CLIP", "ZeroshotCLIP", "configs/trainers/CoOp/demo_shapes.yaml", ["--eval-only"]),
    ("CoOp", "CoOp", "configs/trainers/CoOp/demo_shapes.yaml", []),
    ("AMMPL", "AMMPL", "configs/trainers/AMMPL/demo_shapes.yaml", []),
)


def demo_command(trainer: str, config: str, extra: list[str], root: str, out: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        "--root",
        root,
        "--seed",
        "1",
        "--trainer",
        trainer,
        "--dataset-config-file",
        str(REPO_ROOT / "configs/datasets/shapes.yaml"),
        "--config-file",
        str(REPO_ROOT / config),
        "--output-dir",
        str(out),
        *extra,
        "DATASET.NUM_SHOTS",
        "16",
    ]


def read_accuracy(output_dir: Path) -> float | None:
    """The test accuracy recorded in the run's results.json (None if it has none)."""
    try:
        record = json.loads((output_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return ((record.get("results") or {}).get("test") or {}).get("accuracy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ammpl-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("AMMPL_DEMO_DATA", ""))
    parser.add_argument("--output-dir", default=str(REPO_ROOT / "output" / "demo"))
    args = parser.parse_args(argv)

    rows = []
    for label, trainer, config, extra in DEMO_RUNS:
        if not (REPO_ROOT / config).exists():
            continue
        out = Path(args.output_dir) / trainer
        print(f"==> {label}: {out}", flush=True)
        start = time.time()
        command = demo_command(trainer, config, extra, args.root, out)
        completed = subprocess.run(command, cwd=REPO_ROOT)
        if completed.returncode != 0:
            print(f"error: the {label} demo run failed (see {out / 'log.txt'})", file=sys.stderr)
            return completed.returncode
        rows.append([label, read_accuracy(out), f"{time.time() - start:.0f} s"])

    print()
    print("Demo results on the Shapes test split (accuracy, %):")
    print(tabulate(rows, headers=["method", "accuracy", "wall time"], floatfmt=".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
