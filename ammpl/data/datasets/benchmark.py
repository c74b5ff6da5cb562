"""What the 15 benchmark readers share: the §2 pipeline and an inventory for `ammpl-data check`.

A reader turns its annotation files into `Entry` records (path, label, class name and the
file/line that listed the image) before any `Datum` is built. The reader then checks all
paths at once, so a broken dataset fails with one line saying how many images are missing
and where they were listed; `ammpl-data check` uses the same records to report every
problem without building the dataset or writing anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ammpl.data.base import DatasetBase, Datum
from ammpl.data.entries import (  # noqa: F401  (re-exported for the readers and the check)
    MISSING_SHOWN,
    Entry,
    describe_missing,
    entries_to_data,
    missing_entries,
    split_file_entries,
)
from ammpl.data.fewshot_cache import dataset_cache_dir, find_cached_file, load_or_create_fewshot
from ammpl.data.registry import dataset_root, require_dir
from ammpl.data.splits import (
    listdir_nohidden,
    read_split,
    save_split,
    subsample_classes,
)
from ammpl.utils.errors import DataError

COOP_DRIVE = "the CoOp authors' Google Drive (linked in CoOp's DATASETS.md)"


@dataclass
class Inventory:
    """Every image a reader would load in the data's current state, plus remarks for users."""

    entries: list[Entry]
    notes: list[str] = field(default_factory=list)


def require_files(dataset_dir: str, relpaths: Iterable[str], reader: str, how: str) -> None:
    """DataError naming every missing file or folder among `relpaths` (under `dataset_dir`)."""
    missing = [p for p in relpaths if not os.path.exists(os.path.join(dataset_dir, p))]
    if missing:
        raise DataError(
            f"{reader}: expected {', '.join(missing)} in '{dataset_dir}' (download {how})"
        )


def read_lines(path: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines of a text file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [(n, text.strip()) for n, text in enumerate(handle, 1) if text.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read the text file '{path}': {exc}") from None


def parse_error(path: str, number: int, expected: str, text: str) -> DataError:
    return DataError(f"{path}:{number}: expected {expected}, got {text!r}")


# ---------------------------------------------------------------- shared reader behaviour


class ReaderInfo:
    """Class-level facts `ammpl-data check` needs, shared by every bundled reader."""

    dataset_dir: ClassVar[str] = ""  # folder under DATASET.ROOT (instances: absolute path)
    download: ClassVar[str] = ""  # one line: what to download and where to put it
    generated_on_first_use: ClassVar[bool] = False  # True: no folder to find before a run

    @classmethod
    def locate(cls, root: str) -> str:
        """`<root>/<folder>`, or DataError saying what to download."""
        path = os.path.join(root, cls.dataset_dir)
        return require_dir(path, f"{cls.__name__} folder", f"download {cls.download}")

    @classmethod
    def inventory(cls, dataset_dir: str, cache_dir: str = "") -> Inventory:
        """Every image the reader would load; DataError if a required file is missing."""
        raise NotImplementedError


def cache_dir_of(cfg: Any) -> str:
    return str(cfg.DATASET.get("CACHE_DIR", "") or "")


class BenchmarkDataset(ReaderInfo, DatasetBase):
    """DATASETS.md §2: full splits → few-shot (cached) → base/new subsampling.

    Subclasses with a split file set `split_file`, `image_subdir` (the split's path prefix)
    and `fallback_files`, and implement `generate_split` (the rule that wrote the official
    split, used only when the file is absent) and `fallback_entries` (for `check`).
    """

    split_file: ClassVar[str] = ""
    image_subdir: ClassVar[str] = ""
    fallback_files: ClassVar[tuple[str, ...]] = ()
    fewshot_has_val: ClassVar[bool] = True

    def __init__(self, cfg: Any) -> None:
        self.dataset_dir = self.locate(dataset_root(cfg))
        self.cache_dir = cache_dir_of(cfg)
        train, val, test = self.read_data()
        train, val = load_or_create_fewshot(
            self.dataset_dir,
            train,
            val,
            num_shots=int(cfg.DATASET.NUM_SHOTS),
            seed=int(cfg.SEED),
            cache_dir=self.cache_dir,
            has_val=self.fewshot_has_val,
        )
        subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
        train, val, test = subsample_classes(train, val, test, subsample=subsample)
        super().__init__(train_x=train, val=val, test=test)

    @classmethod
    def image_dir_of(cls, dataset_dir: str) -> str:
        return os.path.join(dataset_dir, cls.image_subdir) if cls.image_subdir else dataset_dir

    @property
    def image_dir(self) -> str:
        return self.image_dir_of(self.dataset_dir)

    def read_data(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        """The official split if present; else regenerate it and save it (CoOp's fallback)."""
        split_path = find_cached_file(self.dataset_dir, self.split_file, self.cache_dir)
        if split_path:
            return read_split(split_path, self.image_dir)
        self.require_fallback_files(self.dataset_dir)
        print(f"{self.split_file} not found: generating a random split from the raw data")
        train, val, test = self.generate_split()
        target = os.path.join(dataset_cache_dir(self.dataset_dir, self.cache_dir), self.split_file)
        save_split(train, val, test, target, self.image_dir)
        return train, val, test

    @classmethod
    def require_fallback_files(cls, dataset_dir: str) -> None:
        how = f"{cls.download}; or get {cls.split_file} from {COOP_DRIVE}"
        require_files(dataset_dir, cls.fallback_files, cls.__name__, how)

    def generate_split(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        raise NotImplementedError

    @classmethod
    def fallback_entries(cls, dataset_dir: str) -> list[Entry]:
        raise NotImplementedError

    @classmethod
    def inventory(cls, dataset_dir: str, cache_dir: str = "") -> Inventory:
        split_path = find_cached_file(dataset_dir, cls.split_file, cache_dir)
        if split_path:
            return Inventory(split_file_entries(split_path, cls.image_dir_of(dataset_dir)))
        cls.require_fallback_files(dataset_dir)
        note = (
            f"{cls.split_file} is absent: the reader will generate a random split (results "
            f"will not match published ones); get the official file from {COOP_DRIVE}"
        )
        return Inventory(cls.fallback_entries(dataset_dir), [note])


def folder_entries(
    image_dir: str, ignored: Sequence[str] = (), renames: dict[str, str] | None = None
) -> list[Entry]:
    """Rule-4.2 layout `<image_dir>/<category>/<file>` as entries (labels by sorted folder)."""
    categories = sorted(c for c in listdir_nohidden(image_dir) if c not in ignored)
    entries = []
    for label, category in enumerate(categories):
        folder = os.path.join(image_dir, category)
        classname = (renames or {}).get(category, category)
        for name in listdir_nohidden(folder):
            entries.append(Entry(os.path.join(folder, name), label, classname, folder))
    return entries
