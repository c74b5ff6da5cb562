"""Shared pieces of the dataset-reader tests: one fixture tree per module, config builder."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from ammpl.data.fixtures import ALL_DATASETS, FixtureInfo, make_fixture
from ammpl.data.registry import build_dataset
from ammpl.engine.config import get_cfg_default

VARIANTS = ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")
BENCHMARKS = tuple(name for name in ALL_DATASETS if name not in VARIANTS)
SPLIT_FILE_DATASETS = tuple(n for n in BENCHMARKS if n not in ("ImageNet", "FGVCAircraft"))


class FixtureTree:
    """A fixture root, what the generator says the readers must produce, and a build()."""

    def __init__(self, root: Path, infos: dict[str, FixtureInfo]) -> None:
        self.root = root
        self.infos = infos

    def dataset_dir(self, name: str) -> Path:
        return self.root / self.infos[name].folder

    def build(self, name: str, seed: int | None = 1, reseed: bool = True, **dataset_keys):
        """The reader `name` with SEED=`seed`; Python's `random` is seeded with it first
        (as train.py does) unless `reseed` is False."""
        cfg = get_cfg_default()
        cfg.DATASET.ROOT = str(self.root)
        cfg.DATASET.NAME = name
        cfg.VERBOSE = False
        cfg.SEED = -1 if seed is None else seed
        for key, value in dataset_keys.items():
            cfg.DATASET[key] = value
        if seed is not None and reseed:
            random.seed(seed)
        return build_dataset(cfg)


def tree_fixture(scope: str = "module", **make_kwargs):
    """A pytest fixture writing a fresh fixture tree (`make_fixture(**make_kwargs)`)."""

    @pytest.fixture(scope=scope)
    def _tree(tmp_path_factory: pytest.TempPathFactory) -> FixtureTree:
        root = tmp_path_factory.mktemp("datasets")
        return FixtureTree(root, make_fixture(root, **make_kwargs))

    return _tree


def snapshot(root: Path) -> set[str]:
    """Every file and folder under `root` (to prove that something wrote nothing)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        found.update(os.path.join(folder, name) for name in dirs + files)
    return found


def impaths(items) -> list[str]:
    return [item.impath for item in items]
