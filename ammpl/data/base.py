"""Dassl's data model: one sample (`Datum`) and the train/val/test container (`DatasetBase`).

Readers written for Dassl (`class X(DatasetBase)` calling `super().__init__(train_x=...,
val=..., test=...)`, `self.generate_fewshot_dataset(...)`) work unchanged on these classes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ammpl.data.fewshot import generate_fewshot_dataset, split_dataset_by_label
from ammpl.utils.errors import DataError


class Datum:
    """One labelled image: read-only `impath`, `label`, `domain`, `classname`.

    Construction checks that the image file exists (Dassl asserts it), so a split file that
    lists a missing image fails while the dataset is built, not hours later in a loader.
    """

    __slots__ = ("_impath", "_label", "_domain", "_classname")

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        if not isinstance(impath, str):
            raise DataError(f"Datum impath must be a string path, got {type(impath).__name__}")
        if not os.path.exists(impath):
            raise DataError(f"Image file '{impath}' does not exist")
        self._set(impath, label, domain, classname)

    def _set(self, impath: str, label: int, domain: int, classname: str) -> None:
        self._impath = impath
        self._label = int(label)
        self._domain = int(domain)
        self._classname = classname

    @classmethod
    def _trusted(cls, impath: str, label: int, domain: int = 0, classname: str = "") -> Datum:
        """Build without touching the file system; only for paths already checked."""
        item = cls.__new__(cls)
        item._set(impath, label, domain, classname)
        return item

    def relabel(self, label: int) -> Datum:
        """A copy with another label (used by base/new subsampling; no second file check)."""
        return Datum._trusted(self._impath, label, self._domain, self._classname)

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def _key(self) -> tuple:
        return (self._impath, self._label, self._domain, self._classname)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datum) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, "
            f"classname={self._classname!r})"
        )


def get_num_classes(data_source: Iterable[Datum]) -> int:
    """Largest label + 1 (Dassl's rule: not the number of distinct labels); 0 if empty."""
    labels = {item.label for item in data_source}
    return max(labels) + 1 if labels else 0


def get_lab2cname(data_source: Iterable[Datum]) -> tuple[dict[int, str], list[str]]:
    """Label → class name, and the class names in ascending label order."""
    mapping = {item.label: item.classname for item in data_source}
    labels = sorted(mapping)
    return {label: mapping[label] for label in labels}, [mapping[label] for label in labels]


class DatasetBase:
    """Holds the four splits and derives the class information from `train_x`.

    Subclasses set `dataset_dir` (the folder name under DATASET.ROOT, replaced by the absolute
    path once resolved) and call `super().__init__` with their lists.
    """

    dataset_dir = ""
    domains: list[str] = []

    def __init__(
        self,
        train_x: list[Datum] | None = None,
        train_u: list[Datum] | None = None,
        val: list[Datum] | None = None,
        test: list[Datum] | None = None,
    ) -> None:
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = get_num_classes(train_x or [])
        self._lab2cname, self._classnames = get_lab2cname(train_x or [])

    @property
    def train_x(self) -> list[Datum] | None:
        return self._train_x

    @property
    def train_u(self) -> list[Datum] | None:
        return self._train_u

    @property
    def val(self) -> list[Datum] | None:
        return self._val

    @property
    def test(self) -> list[Datum] | None:
        return self._test

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def lab2cname(self) -> dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> list[str]:
        return self._classnames

    # Dassl exposes these helpers as methods; readers ported from CoOp call them on self.
    @staticmethod
    def get_num_classes(data_source: Iterable[Datum]) -> int:
        return get_num_classes(data_source)

    @staticmethod
    def get_lab2cname(data_source: Iterable[Datum]) -> tuple[dict[int, str], list[str]]:
        return get_lab2cname(data_source)

    @staticmethod
    def split_dataset_by_label(data_source: Iterable[Datum]) -> dict[int, list[Datum]]:
        return split_dataset_by_label(data_source)

    @staticmethod
    def generate_fewshot_dataset(*data_sources, num_shots: int = -1, repeat: bool = False):
        return generate_fewshot_dataset(*data_sources, num_shots=num_shots, repeat=repeat)
