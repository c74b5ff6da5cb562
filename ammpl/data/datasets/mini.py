"""Readers for the mini benchmark (ammpl.mini.benchmark): one registered name per dataset.

The data are an ordinary CoOp-layout dataset (`images/<class>/`, a split file), built by
`ammpl-data mini --root $DATA`; the readers are FolderSplitDataset readers whose class
folders are renamed to the class names in words.
"""

from __future__ import annotations

from ammpl.data.datasets.dtd import FolderSplitDataset
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.mini.benchmark import MINI_DATASETS, MiniDatasetSpec


class MiniDataset(FolderSplitDataset):
    """A dataset of the mini benchmark; subclasses are made per spec below."""

    image_subdir = "images"
    fallback_files = ("images",)
    download = "nothing: build it with `ammpl-data mini --root $DATA` (seconds)"


def _reader_for(spec: MiniDatasetSpec) -> type[MiniDataset]:
    attributes = {
        "__doc__": f"{spec.name}: {len(spec.classes)} classes of the mini benchmark.",
        "__module__": __name__,
        "dataset_dir": spec.folder,
        "split_file": spec.split_file,
        "renames": {cls.folder: cls.name for cls in spec.classes},
    }
    return type(spec.name, (MiniDataset,), attributes)


for _spec in MINI_DATASETS.values():
    globals()[_spec.name] = DATASET_REGISTRY.register(_reader_for(_spec))
