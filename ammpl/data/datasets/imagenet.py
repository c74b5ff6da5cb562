"""ImageNet (ILSVRC-2012) and what the four test-only ImageNet variants share with it.

The full lists are frozen in a cache on first use, as CoOp does, because the file-system
listing order decides the few-shot picks. A CoOp-written `preprocessed.pkl` is read (through
the core's restricted unpickler); ours is `preprocessed.ammpl.json` with relative paths.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ammpl.data.base import DatasetBase, Datum
from ammpl.data.datasets.benchmark import (
    BenchmarkDataset,
    Entry,
    Inventory,
    ReaderInfo,
    entries_to_data,
    parse_error,
    read_lines,
    require_files,
)
from ammpl.data.fewshot_cache import (
    dataset_cache_dir,
    find_cached_file,
    read_dassl_pickle,
)
from ammpl.data.registry import DATASET_REGISTRY, dataset_root
from ammpl.data.splits import listdir_nohidden
from ammpl.utils.errors import DataError
from ammpl.utils.io import read_json, write_json

CLASSNAMES_FILE = "classnames.txt"
CLASSNAMES_HOW = "classnames.txt from the CoOp authors' Google Drive (linked in CoOp's DATASETS.md)"
COOP_CACHE = "preprocessed.pkl"
OUR_CACHE = "preprocessed.ammpl.json"
CACHE_FORMAT = "ammpl-imagenet-v1"


def read_classnames(path: str) -> dict[str, str]:
    """wnid → class name from lines `<wnid> <name, may contain spaces>`, in file order."""
    if not os.path.isfile(path):
        raise DataError(f"Expected the class-name list '{path}' (download {CLASSNAMES_HOW})")
    classnames = {}
    for number, text in read_lines(path):
        wnid, _, name = text.partition(" ")
        if not name:
            raise parse_error(path, number, "'<wnid> <class name>'", text)
        classnames[wnid] = name
    return classnames


def wnid_folder_entries(image_dir: str, classnames: dict[str, str]) -> list[Entry]:
    """`<image_dir>/<wnid>/<files>`: label = position of the wnid among the sorted folders,
    files in file-system order (as the reference; it fixes ImageNet's few-shot picks)."""
    wnids = sorted(
        name for name in listdir_nohidden(image_dir) if os.path.isdir(os.path.join(image_dir, name))
    )
    unknown = [wnid for wnid in wnids if wnid not in classnames]
    if unknown:
        raise DataError(
            f"Folders {', '.join(unknown[:3])} in '{image_dir}' are not in {CLASSNAMES_FILE} "
            f"({len(unknown)} unknown); use the 1000-line {CLASSNAMES_HOW}"
        )
    entries = []
    for label, wnid in enumerate(wnids):
        folder = os.path.join(image_dir, wnid)
        name = classnames[wnid]
        entries.extend(
            Entry(os.path.join(folder, f), label, name, folder) for f in listdir_nohidden(folder)
        )
    return entries


def listed_data(entries: list[Entry]) -> list[Datum]:
    """Datum records for entries that come from a directory listing (they exist)."""
    return [Datum._trusted(e.impath, e.label, 0, e.classname) for e in entries]


def read_coop_cache(path: str, dataset_dir: str) -> dict[str, list[Datum]]:
    """`{"train", "test"}` from CoOp's pickle of Dassl Datum objects (no Dassl needed)."""
    return read_dassl_pickle(path, dataset_dir, ("train", "test"))


def read_our_cache(path: str, dataset_dir: str) -> dict[str, list[Entry]]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read {path}: {exc}; delete it to rebuild the lists") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise DataError(f"{path} is not an {CACHE_FORMAT} file; delete it to rebuild the lists")
    try:
        return {
            part: [
                Entry(os.path.join(dataset_dir, rel), int(label), name, path)
                for rel, label, name in data[part]
            ]
            for part in ("train", "test")
        }
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path} is malformed; delete it to rebuild the lists") from None


def write_our_cache(path: str, dataset_dir: str, lists: dict[str, list[Datum]]) -> None:
    start = len(os.path.join(dataset_dir, ""))
    data: dict[str, Any] = {"format": CACHE_FORMAT}
    for part, items in lists.items():
        data[part] = [[d.impath[start:].replace(os.sep, "/"), d.label, d.classname] for d in items]
    print(f"Saving the ImageNet lists to {path}")
    write_json(data, path, indent=None)


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    """1000 classes by sorted wnid; the validation set is the test set (and val).
    Few-shot sampling touches train only; base/new applies to train and test."""

    dataset_dir = "imagenet"
    image_subdir = "images"
    fewshot_has_val = False
    required = (CLASSNAMES_FILE, "images/train", "images/val")
    download = (
        "the ILSVRC-2012 train and val images sorted into imagenet/images/train/<wnid>/ and "
        f"imagenet/images/val/<wnid>/, and {CLASSNAMES_HOW} into imagenet/"
    )

    def read_data(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        cached = self.cached_entries(self.dataset_dir, self.cache_dir)
        if cached is None:
            lists = {
                part: listed_data(e) for part, e in self.folder_lists(self.dataset_dir).items()
            }
            target = os.path.join(dataset_cache_dir(self.dataset_dir, self.cache_dir), OUR_CACHE)
            write_our_cache(target, self.dataset_dir, lists)
        else:
            how = "delete the list cache named above to rebuild it from images/"
            lists = {part: entries_to_data(e, how) for part, e in cached.items()}
        return lists["train"], lists["test"], lists["test"]

    @classmethod
    def cached_entries(cls, dataset_dir: str, cache_dir: str) -> dict[str, list[Entry]] | None:
        """The frozen lists, found in the one cache order (the dataset folder first; within a
        folder CoOp's pickle, whose order made CoOp's picks, before ours)."""
        path = find_cached_file(dataset_dir, (COOP_CACHE, OUR_CACHE), cache_dir)
        if path is None:
            return None
        print(f"Loading preprocessed ImageNet lists from {path}")
        if os.path.basename(path) == OUR_CACHE:
            return read_our_cache(path, dataset_dir)
        return {
            part: [Entry(d.impath, d.label, d.classname, path) for d in items]
            for part, items in read_coop_cache(path, dataset_dir).items()
        }

    @classmethod
    def folder_lists(cls, dataset_dir: str) -> dict[str, list[Entry]]:
        require_files(dataset_dir, cls.required, cls.__name__, cls.download)
        classnames = read_classnames(os.path.join(dataset_dir, CLASSNAMES_FILE))
        image_dir = cls.image_dir_of(dataset_dir)
        return {
            "train": wnid_folder_entries(os.path.join(image_dir, "train"), classnames),
            "test": wnid_folder_entries(os.path.join(image_dir, "val"), classnames),
        }

    @classmethod
    def inventory(cls, dataset_dir: str, cache_dir: str = "") -> Inventory:
        lists = cls.cached_entries(dataset_dir, cache_dir) or cls.folder_lists(dataset_dir)
        return Inventory(lists["train"] + lists["test"])


class ImageNetVariant(ReaderInfo, DatasetBase):
    """Test-only ImageNet variants: no few-shot, no base/new split, train_x = test = all
    images; the class names come from a copy of ImageNet's classnames.txt in the folder."""

    image_subdir: ClassVar[str] = ""

    def __init__(self, cfg: Any) -> None:
        self.dataset_dir = self.locate(dataset_root(cfg))
        ignored = []
        if int(cfg.DATASET.NUM_SHOTS) >= 1:
            ignored.append("DATASET.NUM_SHOTS")
        if cfg.DATASET.get("SUBSAMPLE_CLASSES", "all") != "all":
            ignored.append("DATASET.SUBSAMPLE_CLASSES")
        if ignored:
            print(f"{type(self).__name__} is test-only: ignoring {' and '.join(ignored)}")
        data = listed_data(self.variant_entries(self.dataset_dir))
        super().__init__(train_x=data, test=data)

    @classmethod
    def read_variant_classnames(cls, dataset_dir: str) -> dict[str, str]:
        require_files(dataset_dir, (CLASSNAMES_FILE, cls.image_subdir), cls.__name__, cls.download)
        return read_classnames(os.path.join(dataset_dir, CLASSNAMES_FILE))

    @classmethod
    def variant_entries(cls, dataset_dir: str) -> list[Entry]:
        """Default layout `<image_subdir>/<wnid>/<files>`, labels by sorted wnid."""
        classnames = cls.read_variant_classnames(dataset_dir)
        return wnid_folder_entries(os.path.join(dataset_dir, cls.image_subdir), classnames)

    @classmethod
    def inventory(cls, dataset_dir: str, cache_dir: str = "") -> Inventory:
        return Inventory(cls.variant_entries(dataset_dir))
