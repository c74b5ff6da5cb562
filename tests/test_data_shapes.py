"""The built-in Shapes set: deterministic, fast, atomic generation and a benchmark-like reader."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from _data_core_helpers import image_pixels, make_cfg

from ammpl.data import build_dataset
from ammpl.data.datasets import shapes
from ammpl.utils.errors import DataError


@pytest.fixture(scope="module")
def shapes_dir(shapes_root) -> Path:
    return Path(shapes.ensure_shapes(str(shapes_root)))


def test_layout_and_split_sizes(shapes_dir):
    split = json.loads((shapes_dir / shapes.SPLIT_FILE).read_text())
    assert [len(split[part]) for part in ("train", "val", "test")] == [160, 40, 120]
    assert split["train"][0] == ["circle/0.png", 0, "circle"]
    assert split["test"][-1] == ["star/79.png", 3, "star"]
    names = sorted(os.listdir(shapes_dir / "images"))
    assert names == ["circle", "square", "star", "triangle"]
    with open(shapes_dir / "images" / "square" / "7.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert image_pixels(shapes_dir / "images" / "square" / "7.png").shape == (96, 96, 3)


def test_generation_is_deterministic_fast_and_ignores_global_rng(tmp_path, shapes_dir):
    random.seed(123)
    np.random.seed(123)
    start = time.perf_counter()
    shapes.generate_shapes(str(tmp_path))
    assert time.perf_counter() - start < 5.0
    split_file = shapes.SPLIT_FILE
    assert (tmp_path / split_file).read_bytes() == (shapes_dir / split_file).read_bytes()
    for relpath in ("circle/0.png", "triangle/45.png", "star/79.png"):
        new = image_pixels(tmp_path / "images" / relpath)
        old = image_pixels(shapes_dir / "images" / relpath)
        assert np.array_equal(new, old)
    # Images differ from one another (varied colours, positions, clutter).
    first, second = (image_pixels(tmp_path / "images" / "circle" / f"{i}.png") for i in (0, 1))
    assert not np.array_equal(first, second)


def test_interrupted_generation_leaves_no_partial_dataset(tmp_path, monkeypatch):
    def crash(dataset_dir):
        Path(dataset_dir, "images").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "generate_shapes", crash)
    with pytest.raises(KeyboardInterrupt):
        shapes.ensure_shapes(str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_losing_a_generation_race_keeps_the_winner(tmp_path, monkeypatch, shapes_dir):
    real_rename = os.rename

    def rename_after_other_run(src, dst):
        shutil.copytree(shapes_dir, dst)  # another process finished first
        real_rename(src, dst)

    monkeypatch.setattr(shapes.os, "rename", rename_after_other_run)
    result = shapes.ensure_shapes(str(tmp_path))
    assert result == str(tmp_path / "shapes")
    assert os.listdir(tmp_path) == ["shapes"]  # our temporary copy was removed


def test_folder_without_split_file_is_an_error(tmp_path):
    (tmp_path / "shapes").mkdir()
    with pytest.raises(DataError, match="has no split_zhou_Shapes.json; remove the folder"):
        shapes.ensure_shapes(str(tmp_path))


def test_reader_fewshot_and_base_new(shapes_dir):
    root = str(shapes_dir.parent)
    full = build_dataset(make_cfg(root))
    assert (len(full.train_x), len(full.val), len(full.test)) == (160, 40, 120)
    assert full.classnames == ["circle", "square", "triangle", "star"]

    random.seed(4)
    few = build_dataset(make_cfg(root, NUM_SHOTS=16))
    assert (len(few.train_x), len(few.val)) == (64, 16)
    assert (shapes_dir / "split_fewshot" / "shot_16-seed_1.ammpl.json").is_file()

    new = build_dataset(make_cfg(root, NUM_SHOTS=16, SUBSAMPLE_CLASSES="new"))
    assert new.classnames == ["triangle", "star"] and new.num_classes == 2
    assert len(new.test) == 60
    assert [d.impath for d in new.train_x] == [d.impath for d in few.train_x if d.label >= 2]


def test_empty_root_uses_the_user_cache(shapes_dir, private_home, capsys):
    target = Path(private_home) / ".cache" / "ammpl" / "datasets" / "shapes"
    if not target.exists():
        shutil.copytree(shapes_dir, target)
    dataset = build_dataset(make_cfg(""))
    assert dataset.dataset_dir == str(target)
    assert "Generating" not in capsys.readouterr().out
