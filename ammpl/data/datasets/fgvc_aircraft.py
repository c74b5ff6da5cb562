"""FGVCAircraft: 100 aircraft variants, the official train/val/test lists (no split file)."""

from __future__ import annotations

import os

from ammpl.data.base import Datum
from ammpl.data.datasets.benchmark import (
    BenchmarkDataset,
    Entry,
    Inventory,
    entries_to_data,
    parse_error,
    read_lines,
    require_files,
)
from ammpl.data.entries import SPLIT_NAMES
from ammpl.data.registry import DATASET_REGISTRY

SPLIT_LISTS = ("images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    """Labels follow variants.txt; class names are the variant strings verbatim
    (`BAE 146-200`, `F/A-18`). The lists are parsed on every run."""

    dataset_dir = "fgvc_aircraft"
    image_subdir = "images"
    required = ("images", "variants.txt") + SPLIT_LISTS
    download = (
        "fgvc-aircraft-2013b.tar.gz and move its data/ folder to fgvc_aircraft/ "
        "(fgvc_aircraft/images/, fgvc_aircraft/variants.txt, fgvc_aircraft/images_variant_*.txt)"
    )

    @classmethod
    def split_entries(cls, dataset_dir: str) -> list[list[Entry]]:
        """[train, val, test]: lines `<id> <variant>`, image `images/<id>.jpg`."""
        require_files(dataset_dir, cls.required, cls.__name__, cls.download)
        lines = read_lines(os.path.join(dataset_dir, "variants.txt"))
        labels = {text: label for label, (_, text) in enumerate(lines)}
        image_dir = cls.image_dir_of(dataset_dir)
        splits = []
        for list_name in SPLIT_LISTS:
            path = os.path.join(dataset_dir, list_name)
            entries = []
            for number, text in read_lines(path):
                image_id, _, variant = text.partition(" ")
                if variant not in labels:
                    raise parse_error(path, number, "'<id> <variant in variants.txt>'", text)
                impath = os.path.join(image_dir, f"{image_id}.jpg")
                entries.append(Entry(impath, labels[variant], variant, path, number))
            splits.append(entries)
        return splits

    def read_data(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        how = f"the image lists of {self.dataset_dir} name images that are not in images/"
        train, val, test = (entries_to_data(e, how) for e in self.split_entries(self.dataset_dir))
        return train, val, test

    @classmethod
    def inventory(cls, dataset_dir: str, cache_dir: str = "") -> Inventory:
        lists = zip(SPLIT_NAMES, cls.split_entries(dataset_dir))
        return Inventory([e._replace(split=part) for part, entries in lists for e in entries])
