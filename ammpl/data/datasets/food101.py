"""Food101: 101 dishes; CoOp's random 50/20/30 split replaces the official 750/250 one."""

from __future__ import annotations

from ammpl.data.datasets.dtd import FolderSplitDataset
from ammpl.data.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class Food101(FolderSplitDataset):
    dataset_dir = "food-101"
    image_subdir = "images"
    split_file = "split_zhou_Food101.json"
    fallback_files = ("images",)
    download = (
        "food-101.tar.gz (ETH Zurich) extracted so that food-101/images/<dish>/ exists, "
        "and split_zhou_Food101.json into food-101/"
    )
