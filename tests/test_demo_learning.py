"""The demo's promise: on the built-in Shapes data, learned prompts beat zero-shot CLIP.

Runs exactly what `make demo` runs (same configs, same seed), on the tiny backbone that
the demo falls back to offline, and reads the accuracies from results.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from ammpl.cli.train import main


def run(repo_root: Path, root: Path, out: Path, trainer: str, config: str, *extra: str) -> float:
    code = main(
        [
            "--root", str(root),
            "--seed", "1",
            "--trainer", trainer,
            "--dataset-config-file", str(repo_root / "configs/datasets/shapes.yaml"),
            "--config-file", str(repo_root / config),
            "--output-dir", str(out),
            *extra,
            "DATASET.NUM_SHOTS", "16",
            "MODEL.BACKBONE.NAME", "tiny",
        ]
    )  # fmt: skip
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    return record["results"]["test"]["accuracy"]


def test_coop_and_ammpl_beat_zero_shot_on_the_demo_data(repo_root, tmp_path):
    shapes_root = tmp_path / "data"  # fresh, so the few-shot picks are the demo's own
    coop_config = "configs/trainers/CoOp/demo_shapes.yaml"
    ammpl_config = "configs/trainers/AMMPL/demo_shapes.yaml"
    zero_shot = run(
        repo_root, shapes_root, tmp_path / "zs", "ZeroshotCLIP", coop_config, "--eval-only"
    )
    coop = run(repo_root, shapes_root, tmp_path / "coop", "CoOp", coop_config)
    ammpl = run(repo_root, shapes_root, tmp_path / "ammpl", "AMMPL", ammpl_config)
    assert coop > zero_shot + 5.0, (coop, zero_shot)
    assert ammpl > zero_shot + 5.0, (ammpl, zero_shot)
