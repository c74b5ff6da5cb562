"""DescribableTextures (DTD) and the folder-split rule it shares with three other readers."""

from __future__ import annotations

from typing import ClassVar

from ammpl.data.base import Datum
from ammpl.data.datasets.benchmark import BenchmarkDataset, Entry, folder_entries
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.data.splits import read_and_split_data


class FolderSplitDataset(BenchmarkDataset):
    """One folder per class; a missing split file is regenerated 50/20/30 (rule 4.2).

    Labels follow the case-sensitive sort of the folder names and are assigned before
    `renames` is applied; split-file paths keep the original folder names.
    """

    ignored: ClassVar[tuple[str, ...]] = ()
    renames: ClassVar[dict[str, str]] = {}

    def generate_split(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        return read_and_split_data(
            self.image_dir, p_trn=0.5, p_val=0.2, ignored=self.ignored, new_cnames=self.renames
        )

    @classmethod
    def fallback_entries(cls, dataset_dir: str) -> list[Entry]:
        return folder_entries(cls.image_dir_of(dataset_dir), cls.ignored, cls.renames)


@DATASET_REGISTRY.register()
class DescribableTextures(FolderSplitDataset):
    """47 texture categories; DTD's ten official folds are not used (CoOp's random split)."""

    dataset_dir = "dtd"
    image_subdir = "images"
    split_file = "split_zhou_DescribableTextures.json"
    fallback_files = ("images",)
    download = (
        "dtd-r1.0.1.tar.gz (the DTD release) extracted so that dtd/images/<category>/ exists, "
        "and split_zhou_DescribableTextures.json into dtd/"
    )
