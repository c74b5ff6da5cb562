"""Split files (`split_zhou_<Name>.json`), the split-generation rules and base/new subsampling.

Formats and rules are CoOp's (DATASETS §3, §4, §6): official split files read back into the
same ordered lists, regenerated splits use Python's `random` and half-to-even `round`.
"""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from collections.abc import Sequence

from ammpl.data.base import Datum
from ammpl.data.entries import SPLIT_NAMES, entries_to_data, split_file_entries
from ammpl.utils.errors import ConfigError, DataError
from ammpl.utils.io import write_json

SUBSAMPLE_CHOICES = ("all", "base", "new")


def listdir_nohidden(path: str, sort: bool = False) -> list[str]:
    """Entries not starting with '.', in file-system order unless `sort` (as Dassl)."""
    items = [name for name in os.listdir(path) if not name.startswith(".")]
    if sort:
        items.sort()
    return items


def read_split(filepath: str, path_prefix: str) -> tuple[list[Datum], list[Datum], list[Datum]]:
    """(train, val, test) from a split JSON; paths joined onto `path_prefix`, order kept.

    Missing images are reported together: how many, the first few, and the file and line
    that list each (not one at a time, as Dassl's assert does).
    """
    print(f"Reading split from {filepath}")
    entries = split_file_entries(filepath, path_prefix)
    how = f"restore the images under {path_prefix}, or use a split file that matches them"
    data = entries_to_data(entries, how)
    parts: dict[str, list[Datum]] = {part: [] for part in SPLIT_NAMES}
    for entry, item in zip(entries, data):
        parts[entry.split].append(item)
    return parts["train"], parts["val"], parts["test"]


def _relative_entries(items: Sequence[Datum], path_prefix: str) -> list[tuple[str, int, str]]:
    out = []
    for item in items:
        relpath = item.impath.replace(path_prefix, "")
        if relpath.startswith("/"):
            relpath = relpath[1:]
        out.append((relpath, item.label, item.classname))
    return out


def save_split(
    train: Sequence[Datum],
    val: Sequence[Datum],
    test: Sequence[Datum],
    filepath: str,
    path_prefix: str,
) -> None:
    """Write the CoOp split format (paths relative to `path_prefix`), atomically."""
    split = {
        "train": _relative_entries(train, path_prefix),
        "val": _relative_entries(val, path_prefix),
        "test": _relative_entries(test, path_prefix),
    }
    write_json(split, filepath)
    print(f"Saved split to {filepath}")


def split_trainval(trainval: Sequence[Datum], p_val: float = 0.2) -> tuple[list, list]:
    """Rule 4.1: per label (first-appearance order) shuffle, first round(p_val·n) go to val."""
    p_trn = 1 - p_val
    print(f"Splitting trainval into {p_trn:.0%} train and {p_val:.0%} val")
    indices_by_label: dict[int, list[int]] = defaultdict(list)
    for index, item in enumerate(trainval):
        indices_by_label[item.label].append(index)

    train, val = [], []
    for label, indices in indices_by_label.items():
        n_val = round(len(indices) * p_val)
        if n_val <= 0:
            raise DataError(
                f"Class {label} has {len(indices)} train+val images; at least "
                f"{math.ceil(0.5 / p_val)} are needed to give it a validation image"
            )
        random.shuffle(indices)
        for position, index in enumerate(indices):
            (val if position < n_val else train).append(trainval[index])
    return train, val


def read_and_split_data(
    image_dir: str,
    p_trn: float = 0.5,
    p_val: float = 0.2,
    ignored: Sequence[str] = (),
    new_cnames: dict[str, str] | None = None,
) -> tuple[list[Datum], list[Datum], list[Datum]]:
    """Rule 4.2: one folder per class; label = position among the sorted folder names."""
    categories = sorted(c for c in listdir_nohidden(image_dir) if c not in ignored)
    p_tst = 1 - p_trn - p_val
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {p_tst:.0%} test")

    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        images = [os.path.join(category_dir, name) for name in listdir_nohidden(category_dir)]
        random.shuffle(images)
        n_total = len(images)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if n_train <= 0 or n_val <= 0 or n_test <= 0:
            raise DataError(
                f"Class folder '{category_dir}' has {n_total} images; it needs enough for a "
                f"non-empty train/val/test split (got {n_train}/{n_val}/{n_test})"
            )
        classname = new_cnames.get(category, category) if new_cnames else category
        parts = (
            (train, images[:n_train]),
            (val, images[n_train : n_train + n_val]),
            (test, images[n_train + n_val :]),
        )
        for target, paths in parts:
            # paths come from the listing above: no second existence check per image
            target.extend(Datum._trusted(p, label, 0, classname) for p in paths)
    return train, val, test


def subsample_classes(*args: Sequence[Datum], subsample: str = "all"):
    """Keep the first ⌈n/2⌉ labels of the first list ('base') or the rest ('new'), relabelled.

    'all' returns the arguments unchanged (a tuple), like CoOp, so callers always unpack.
    """
    if subsample not in SUBSAMPLE_CHOICES:
        raise ConfigError(
            f"DATASET.SUBSAMPLE_CLASSES must be one of {', '.join(SUBSAMPLE_CHOICES)}; "
            f"got {subsample!r}"
        )
    if subsample == "all":
        return args

    labels = sorted({item.label for item in args[0]})
    m = math.ceil(len(labels) / 2)
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabeler = {label: new_label for new_label, label in enumerate(selected)}
    return [
        [item.relabel(relabeler[item.label]) for item in dataset if item.label in relabeler]
        for dataset in args
    ]
