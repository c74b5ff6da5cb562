"""OxfordPets (37 breeds) and the 80/20 train/val rule it shares with three other readers."""

from __future__ import annotations

import os

from ammpl.data.base import Datum
from ammpl.data.datasets.benchmark import (
    BenchmarkDataset,
    Entry,
    entries_to_data,
    parse_error,
    read_lines,
)
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.data.splits import split_trainval


class TrainvalSplitDataset(BenchmarkDataset):
    """Datasets with an official train(+val) / test list; a missing split file is rebuilt by
    carving 20 % of each class out of train+val (rule 4.1) and keeping the test list."""

    @classmethod
    def annotation_lists(cls, dataset_dir: str) -> tuple[list[Entry], list[Entry]]:
        """(train+val, test) entries from the raw annotation files."""
        raise NotImplementedError

    def generate_split(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        trainval, test = self.annotation_lists(self.dataset_dir)
        how = f"the annotation files of {type(self).__name__} list images that are not there"
        train, val = split_trainval(entries_to_data(trainval, how), p_val=0.2)
        return train, val, entries_to_data(test, how)

    @classmethod
    def fallback_entries(cls, dataset_dir: str) -> list[Entry]:
        trainval, test = cls.annotation_lists(dataset_dir)
        return trainval + test


def parse_pets_list(path: str, image_dir: str) -> list[Entry]:
    """Lines `<stem> <class id 1..37> <species> <breed id>`; the class name is the stem
    without its trailing `_<n>`, lower-cased (`British_Shorthair_3` → `british_shorthair`)."""
    entries = []
    for number, text in read_lines(path):
        fields = text.split(" ")
        if len(fields) != 4 or not fields[1].isdigit():
            raise parse_error(path, number, "'<image> <class id> <species> <breed id>'", text)
        stem = fields[0]
        classname = "_".join(stem.split("_")[:-1]).lower()
        impath = os.path.join(image_dir, f"{stem}.jpg")
        entries.append(Entry(impath, int(fields[1]) - 1, classname, path, number))
    return entries


@DATASET_REGISTRY.register()
class OxfordPets(TrainvalSplitDataset):
    """Labels are the official class ids (alphabetical ignoring case) minus one."""

    dataset_dir = "oxford_pets"
    image_subdir = "images"
    split_file = "split_zhou_OxfordPets.json"
    fallback_files = ("images", "annotations/trainval.txt", "annotations/test.txt")
    download = (
        "images.tar.gz and annotations.tar.gz (Oxford-IIIT Pet) extracted into oxford_pets/ "
        "(images/, annotations/), and split_zhou_OxfordPets.json into oxford_pets/"
    )

    @classmethod
    def annotation_lists(cls, dataset_dir: str) -> tuple[list[Entry], list[Entry]]:
        image_dir = cls.image_dir_of(dataset_dir)
        annotations = os.path.join(dataset_dir, "annotations")
        return (
            parse_pets_list(os.path.join(annotations, "trainval.txt"), image_dir),
            parse_pets_list(os.path.join(annotations, "test.txt"), image_dir),
        )
