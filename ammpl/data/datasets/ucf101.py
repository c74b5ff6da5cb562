"""UCF101: 101 actions, one middle frame per video (the CoOp authors' frame set)."""

from __future__ import annotations

import os
import re

from ammpl.data.datasets.benchmark import Entry, parse_error, read_lines
from ammpl.data.datasets.oxford_pets import TrainvalSplitDataset
from ammpl.data.registry import DATASET_REGISTRY

_WORD = re.compile("[A-Z][^A-Z]*")


def split_camel_case(action: str) -> str:
    """`ApplyEyeMakeup` → `Apply_Eye_Makeup`, `YoYo` → `Yo_Yo` (folder and class name)."""
    return "_".join(_WORD.findall(action))


def ucf_list_entries(path: str, image_dir: str, labels: dict[str, int]) -> list[Entry]:
    """Lines `<Action>/<video>.avi [<id>]`; only the first token is used."""
    entries = []
    for number, text in read_lines(path):
        parts = text.split(" ")[0].split("/")
        if len(parts) != 2 or parts[0] not in labels:
            raise parse_error(
                path, number, "'<Action>/<video>.avi' of an action in classInd.txt", text
            )
        action, video = parts
        renamed = split_camel_case(action)
        impath = os.path.join(image_dir, renamed, video.replace(".avi", ".jpg"))
        entries.append(Entry(impath, labels[action], renamed, path, number))
    return entries


@DATASET_REGISTRY.register()
class UCF101(TrainvalSplitDataset):
    """Labels follow classInd.txt; regenerating the split needs the split-1 lists of the
    official ucfTrainTestlist archive, which CoOp's instructions do not mention."""

    dataset_dir = "ucf101"
    image_subdir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    fallback_files = (
        "UCF-101-midframes",
        "ucfTrainTestlist/classInd.txt",
        "ucfTrainTestlist/trainlist01.txt",
        "ucfTrainTestlist/testlist01.txt",
    )
    download = (
        "UCF-101-midframes.zip from the CoOp authors' Google Drive extracted into ucf101/, "
        "and split_zhou_UCF101.json into ucf101/ (regenerating the split instead needs "
        "ucfTrainTestlist/ of the UCF101 release)"
    )

    @classmethod
    def annotation_lists(cls, dataset_dir: str) -> tuple[list[Entry], list[Entry]]:
        lists = os.path.join(dataset_dir, "ucfTrainTestlist")
        class_ind = os.path.join(lists, "classInd.txt")
        labels = {}
        for number, text in read_lines(class_ind):
            fields = text.split(" ")
            if len(fields) != 2 or not fields[0].isdigit():
                raise parse_error(class_ind, number, "'<id> <Action>'", text)
            labels[fields[1]] = int(fields[0]) - 1
        image_dir = cls.image_dir_of(dataset_dir)
        return (
            ucf_list_entries(os.path.join(lists, "trainlist01.txt"), image_dir, labels),
            ucf_list_entries(os.path.join(lists, "testlist01.txt"), image_dir, labels),
        )
