"""Caltech101: 100 object classes (the background and easy-faces folders are ignored)."""

from __future__ import annotations

from ammpl.data.datasets.dtd import FolderSplitDataset
from ammpl.data.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class Caltech101(FolderSplitDataset):
    """Class names are folder names except four renames; the sort is case-sensitive, so the
    capitalised folders (face, leopard, motorbike) get the first labels."""

    dataset_dir = "caltech-101"
    image_subdir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    fallback_files = ("101_ObjectCategories",)
    ignored = ("BACKGROUND_Google", "Faces_easy")
    renames = {
        "airplanes": "airplane",
        "Faces": "face",
        "Leopards": "leopard",
        "Motorbikes": "motorbike",
    }
    download = (
        "101_ObjectCategories.tar.gz (the Caltech101 release) extracted into caltech-101/, "
        "and split_zhou_Caltech101.json into caltech-101/"
    )
