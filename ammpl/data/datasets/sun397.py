"""SUN397: 397 scene categories, partition 01 of the official lists."""

from __future__ import annotations

import os

from ammpl.data.datasets.benchmark import Entry, parse_error, read_lines
from ammpl.data.datasets.oxford_pets import TrainvalSplitDataset
from ammpl.data.registry import DATASET_REGISTRY


def scene_name(category: str) -> str:
    """`a/apartment_building/outdoor` → `outdoor apartment_building` (letter dropped)."""
    return " ".join(reversed(category.split("/")[1:]))


def sun_list_entries(path: str, image_dir: str, labels: dict[str, int]) -> list[Entry]:
    """Lines `/a/abbey/sun_xxx.jpg`; the folder part is the category."""
    entries = []
    for number, text in read_lines(path):
        relpath = text[1:] if text.startswith("/") else text
        category = os.path.dirname(relpath)
        if category not in labels:
            raise parse_error(path, number, "an image of a category in ClassName.txt", text)
        impath = os.path.join(image_dir, relpath)
        entries.append(Entry(impath, labels[category], scene_name(category), path, number))
    return entries


@DATASET_REGISTRY.register()
class SUN397(TrainvalSplitDataset):
    """Labels follow the line order of ClassName.txt."""

    dataset_dir = "sun397"
    image_subdir = "SUN397"
    split_file = "split_zhou_SUN397.json"
    fallback_files = ("SUN397", "ClassName.txt", "Training_01.txt", "Testing_01.txt")
    download = (
        "SUN397.tar.gz extracted into sun397/ (sun397/SUN397/a/abbey/...), Partitions.zip "
        "unpacked directly into sun397/, and split_zhou_SUN397.json into sun397/"
    )

    @classmethod
    def annotation_lists(cls, dataset_dir: str) -> tuple[list[Entry], list[Entry]]:
        lines = read_lines(os.path.join(dataset_dir, "ClassName.txt"))
        labels = {text.lstrip("/"): label for label, (_, text) in enumerate(lines)}
        image_dir = cls.image_dir_of(dataset_dir)
        return (
            sun_list_entries(os.path.join(dataset_dir, "Training_01.txt"), image_dir, labels),
            sun_list_entries(os.path.join(dataset_dir, "Testing_01.txt"), image_dir, labels),
        )
