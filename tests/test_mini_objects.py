"""Object datasets of the mini benchmark: photo placement, object masks, the DG family."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import ammpl.mini.benchmark as benchmark
from ammpl.data.registry import build_dataset
from ammpl.engine.config import get_cfg_default
from ammpl.mini.benchmark import (
    DG_SOURCE,
    DG_TARGETS,
    MASK_DIR,
    MINI_DATASETS,
    OBJECT_DATASETS,
    build_benchmark,
)
from ammpl.mini.objects import PhotoStyle, render_photo
from ammpl.mini.world import IMAGE_SIZE, sample_scene

FAMILY = (DG_SOURCE, *DG_TARGETS)


@pytest.fixture(scope="module")
def objects_root(tmp_path_factory):
    """The DG family and the fine-grained set with one image per class and split."""
    root = tmp_path_factory.mktemp("mini_objects")
    sizes = benchmark.SPLIT_SIZES
    benchmark.SPLIT_SIZES = (("train", 2), ("val", 1), ("test", 1))
    try:
        build_benchmark(str(root), [*FAMILY, "MiniObjectPatterns"], log=lambda _: None)
    finally:
        benchmark.SPLIT_SIZES = sizes
    return root


def _read(root, name: str):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.VERBOSE = False
    return build_dataset(cfg)


def test_a_single_object_sits_near_the_centre_and_its_mask_is_where_it_was_drawn():
    rng = np.random.default_rng(0)
    centres = []
    for _ in range(40):
        scene = sample_scene(rng, count="1")
        image, mask = render_photo(scene, rng, PhotoStyle(clutter=(0, 0)))
        assert mask.shape == (IMAGE_SIZE, IMAGE_SIZE) and mask.dtype == bool
        assert 30 < mask.sum() < IMAGE_SIZE**2 / 2
        ys, xs = np.nonzero(mask)
        centres.append((xs.mean(), ys.mean()))
    offsets = np.abs(np.asarray(centres) - IMAGE_SIZE / 2)
    assert np.median(offsets) < 8 and offsets.max() < 24


def test_occluders_hide_part_of_the_object_and_sketches_are_outlines():
    scene = sample_scene(np.random.default_rng(1), shape="square", count="1")
    _, whole = render_photo(scene, np.random.default_rng(2), PhotoStyle(clutter=(0, 0)))
    _, hidden = render_photo(
        scene, np.random.default_rng(2), PhotoStyle(clutter=(0, 0), occluders=(2, 2))
    )
    _, outline = render_photo(
        scene, np.random.default_rng(2), PhotoStyle(clutter=(0, 0), sketch=True)
    )
    assert hidden.sum() < whole.sum() and not (hidden & ~whole).any()
    assert outline.sum() < 0.6 * whole.sum() and not (outline & ~whole).any()


def test_dg_targets_are_readable_and_share_the_source_classes(objects_root):
    source = _read(objects_root, DG_SOURCE)
    assert source.num_classes >= 6
    for name in DG_TARGETS:
        target = _read(objects_root, name)
        assert target.classnames == source.classnames, name
        assert len(target.test) == target.num_classes
        assert {d.classname for d in target.test} == set(source.classnames)


def test_object_datasets_label_the_object_and_write_a_mask_per_image(objects_root):
    fine = _read(objects_root, "MiniObjectPatterns")
    assert fine.num_classes >= 30
    for spec in OBJECT_DATASETS:
        folder = objects_root / spec.folder
        split = json.loads((folder / spec.split_file).read_text())
        for path, _, _ in split["train"] + split["val"] + split["test"]:
            mask = np.asarray(Image.open(folder / MASK_DIR / path))
            image = Image.open(folder / "images" / path)
            assert mask.shape == image.size[::-1] and mask.any(), (spec.name, path)
        assert all("shape" in cls.factors for cls in spec.classes)


def test_existing_datasets_keep_their_version():
    for name in ("MiniColors", "MiniColorPatterns", "MiniScenes"):
        assert MINI_DATASETS[name].version == benchmark.GENERATOR_VERSION == 2
        assert MINI_DATASETS[name].photo is None
