"""OxfordFlowers (Flowers102): 102 species in the official label order (not alphabetical)."""

from __future__ import annotations

import os
import random
from collections import defaultdict

from ammpl.data.base import Datum
from ammpl.data.datasets.benchmark import BenchmarkDataset, Entry, entries_to_data
from ammpl.data.datasets.stanford_cars import load_mat_variable
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.utils.errors import DataError
from ammpl.utils.io import read_json


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    """A missing split file is rebuilt 50/20/30 per label from imagelabels.mat (the official
    setid.mat split is not used); class names come from cat_to_name.json."""

    dataset_dir = "oxford_flowers"
    image_subdir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    fallback_files = ("jpg", "imagelabels.mat", "cat_to_name.json")
    download = (
        "102flowers.tgz and imagelabels.mat (Oxford 102 Flowers) into oxford_flowers/ "
        "(jpg/, imagelabels.mat), plus cat_to_name.json and split_zhou_OxfordFlowers.json "
        "from the CoOp authors' Google Drive into oxford_flowers/"
    )

    @classmethod
    def fallback_entries(cls, dataset_dir: str) -> list[Entry]:
        """Label vector position i ↔ jpg/image_<i+1:05d>.jpg; stored label = label − 1."""
        label_file = os.path.join(dataset_dir, "imagelabels.mat")
        names_file = os.path.join(dataset_dir, "cat_to_name.json")
        try:
            cat_to_name = read_json(names_file)
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read '{names_file}': {exc}") from None
        image_dir = cls.image_dir_of(dataset_dir)
        entries = []
        for index, label in enumerate(load_mat_variable(label_file, "labels").ravel()):
            label = int(label)
            if str(label) not in cat_to_name:
                raise DataError(f"{names_file} has no name for label {label} (see {label_file})")
            impath = os.path.join(image_dir, f"image_{index + 1:05d}.jpg")
            entries.append(Entry(impath, label - 1, cat_to_name[str(label)], label_file, index + 1))
        return entries

    def generate_split(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        """Rule 4.3: per label (first-appearance order) shuffle, then 50 % / 20 % / rest."""
        how = "imagelabels.mat lists more images than jpg/ holds"
        by_label: dict[int, list[Datum]] = defaultdict(list)
        for item in entries_to_data(self.fallback_entries(self.dataset_dir), how):
            by_label[item.label].append(item)
        print("Splitting data into 50% for train, 20% for val, and 30% for test")
        train, val, test = [], [], []
        for label, items in by_label.items():
            random.shuffle(items)
            n_train, n_val = round(len(items) * 0.5), round(len(items) * 0.2)
            if n_train <= 0 or n_val <= 0 or len(items) - n_train - n_val <= 0:
                raise DataError(
                    f"Label {label + 1} has {len(items)} images in imagelabels.mat; at least 4 "
                    "are needed for a non-empty train/val/test split"
                )
            train += items[:n_train]
            val += items[n_train : n_train + n_val]
            test += items[n_train + n_val :]
        return train, val, test
