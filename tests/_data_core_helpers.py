"""Shared helpers for the data-core tests: configs, tiny image trees, Dassl's rule restated."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from ammpl.data.base import Datum
from ammpl.engine.config import get_cfg_default


def make_cfg(root: str | Path = "", name: str = "Shapes", **dataset_keys):
    """Engine defaults for a data test: few workers, small images, CLIP-style transforms."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    for key, value in dataset_keys.items():
        cfg.DATASET[key] = value
    cfg.SEED = 1
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.USE_CUDA = False
    return cfg


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def make_items(root: Path, class_sizes: list[int], classnames: list[str] | None = None):
    """Datums over real files, classes interleaved so first-appearance order is non-trivial."""
    classnames = classnames or [f"class_{k}" for k in range(len(class_sizes))]
    per_class = []
    for label, count in enumerate(class_sizes):
        paths = [write_image(root / classnames[label] / f"{i}.png") for i in range(count)]
        per_class.append([Datum(str(p), label, 0, classnames[label]) for p in paths])
    # Order of first appearance: the last class first, then round-robin over the rest.
    order = list(reversed(range(len(class_sizes))))
    items = []
    while any(per_class):
        for label in order:
            if per_class[label]:
                items.append(per_class[label].pop(0))
    return items


def reference_fewshot(items: list[Datum], num_shots: int, repeat: bool = False) -> list[Datum]:
    """Dassl's rule, restated independently: labels by first appearance, sample or keep."""
    seen: list[int] = []
    for item in items:
        if item.label not in seen:
            seen.append(item.label)
    picked = []
    for label in seen:
        group = [item for item in items if item.label == label]
        if len(group) >= num_shots:
            picked += random.sample(group, num_shots)
        elif repeat:
            picked += random.choices(group, k=num_shots)
        else:
            picked += group
    return picked


def image_pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
