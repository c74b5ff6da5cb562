"""Undecodable images (issue 20, item 4): the `ammpl-data check` line that a run's error
advises works as printed for every registered dataset, the mini ones included, and with
DATASET.SKIP_BAD_IMAGES the number of skipped images is recorded in results.json."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from ammpl.cli.train import main as train_main
from ammpl.data.cli import main as data_main
from ammpl.data.registry import DATASET_REGISTRY

SPLIT = "split_zhou_MiniColors.json"


@pytest.fixture
def damaged_mini(mini_root, tmp_path) -> tuple[Path, list[Path]]:
    """A copy of MiniColors whose first two test images are not images."""
    root = tmp_path / "data"
    shutil.copytree(mini_root / "mini_colors", root / "mini_colors")
    test = json.loads((root / "mini_colors" / SPLIT).read_text())["test"]
    damaged = [root / "mini_colors" / "images" / relpath for relpath, _, _ in test[:2]]
    for path in damaged:
        path.write_bytes(b"\x89PNG truncated")
    return root, damaged


def zero_shot(repo_root: Path, root: Path, out: Path, *opts: str) -> int:
    return train_main(
        [
            "--root", str(root),
            "--trainer", "ZeroshotCLIP",
            "--eval-only",
            "--dataset-config-file", str(repo_root / "configs/datasets/mini_colors.yaml"),
            "--config-file", str(repo_root / "configs/trainers/CoOp/vit_b16_ep50.yaml"),
            "--output-dir", str(out),
            "MODEL.BACKBONE.NAME", "tiny",
            "DATALOADER.NUM_WORKERS", "0",
            *opts,
        ]
    )  # fmt: skip


def test_the_advised_check_runs_as_printed_on_a_mini_dataset(
    repo_root, damaged_mini, tmp_path, capsys
):
    root, damaged = damaged_mini
    assert zero_shot(repo_root, root, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "SKIP_BAD_IMAGES True" in err
    advised = re.search(r"`(ammpl-data check [^`]*)`", err).group(1)
    assert advised == f"ammpl-data check --root {root} MiniColors --decode"

    assert data_main(shlex.split(advised)[1:]) == 1  # runs, and finds the damage
    out = capsys.readouterr().out
    assert "MiniColors           broken" in out and "2 of 648 images cannot be decoded" in out
    assert all(str(path) in out for path in damaged)
    assert data_main(["check", "--root", str(root), "mini_colors", "--decode"]) == 1


def test_every_bundled_reader_can_be_checked():
    import ammpl.data.datasets  # noqa: F401  (readers register on import)
    from ammpl.data.check import checkable_names, resolve_names

    names = checkable_names()
    assert {"MiniColors", "MiniColorPatterns", "MiniScenes", "Shapes"} <= set(names)
    bundled = {
        name
        for name in DATASET_REGISTRY.registered_names()
        if DATASET_REGISTRY.get(name).__module__.startswith("ammpl.")
    }
    assert bundled <= set(names)
    assert resolve_names(["mini_scenes", "shapes", "EUROSAT"], every_reader=True) == [
        "MiniScenes",
        "Shapes",
        "EuroSAT",
    ]


def test_skipped_images_are_counted_in_results_json(repo_root, damaged_mini, tmp_path, capsys):
    root, damaged = damaged_mini
    out = tmp_path / "out"
    assert zero_shot(repo_root, root, out, "DATASET.SKIP_BAD_IMAGES", "True") == 0
    record = json.loads((out / "results.json").read_text())
    assert record["skipped_images"] == len(damaged) == 2
    assert record["results"]["test"]["total"] == 288 - 2
    assert "Warning: skipped (2 so far)" in capsys.readouterr().out
