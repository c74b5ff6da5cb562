"""Listed images before they become `Datum`s: where each was listed, and what is missing.

A reader (or `read_split`) first turns its split or annotation file into `Entry` records
carrying the file and 1-based line that listed each image, then checks every path at once.
So a broken dataset fails with one line saying how many images are missing, the first few
and where they were listed, instead of stopping at the first one; `ammpl-data check`
reports from the same records without building anything.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from ammpl.data.base import Datum
from ammpl.utils.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
MISSING_SHOWN = 3


class Entry(NamedTuple):
    """One image a reader will load, where it was listed, and its split when known."""

    impath: str
    label: int
    classname: str
    source: str = ""
    line: int = 0
    split: str = ""

    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def missing_entries(entries: Sequence[Entry]) -> list[Entry]:
    """Entries whose image does not exist, in list order (one listing per folder)."""
    by_folder: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        by_folder[os.path.dirname(entry.impath)].add(os.path.basename(entry.impath))
    absent: set[str] = set()
    for folder, names in by_folder.items():
        try:
            present = set(os.listdir(folder))
        except OSError:
            present = set()
        absent.update(os.path.join(folder, name) for name in names - present)
    return [entry for entry in entries if entry.impath in absent] if absent else []


def describe_missing(missing: Sequence[Entry], total: int) -> str:
    shown = ", ".join(f"{e.impath} (listed at {e.where()})" for e in missing[:MISSING_SHOWN])
    more = ", …" if len(missing) > MISSING_SHOWN else ""
    return f"{len(missing)} of {total} listed images are missing: {shown}{more}"


def entries_to_data(entries: Sequence[Entry], how_to_fix: str) -> list[Datum]:
    """Datum records for `entries`; one DataError naming all missing images if any are."""
    missing = missing_entries(entries)
    if missing:
        raise DataError(f"{describe_missing(missing, len(entries))} ({how_to_fix})")
    return [Datum._trusted(e.impath, e.label, 0, e.classname) for e in entries]


def split_file_entries(split_path: str, image_dir: str) -> list[Entry]:
    """The entries of a CoOp split JSON, each with its split and the line its path is on."""
    try:
        with open(split_path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise DataError(f"Split file '{split_path}' not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Split file '{split_path}' cannot be read: {exc}") from None
    try:
        split = json.loads(text)
    except ValueError as exc:
        raise DataError(f"Split file '{split_path}' is not valid JSON: {exc}") from None
    if not isinstance(split, dict) or any(not isinstance(split.get(p), list) for p in SPLIT_NAMES):
        raise DataError(f"Split file '{split_path}' must hold train, val and test lists")
    entries: list[Entry] = []
    position, line = 0, 1
    for part in SPLIT_NAMES:
        for index, item in enumerate(split[part], 1):
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise DataError(
                    f"{split_path}: entry {index} of '{part}' (1-based) is not "
                    f"[path, label, classname], got {item!r}"
                )
            found = text.find(json.dumps(item[0]), position)
            if found < 0:  # a file written with raw (non-escaped) Unicode
                found = text.find(json.dumps(item[0], ensure_ascii=False), position)
            if found >= 0:
                line += text.count("\n", position, found)
                position = found
            if isinstance(item[1], bool) or not isinstance(item[1], int):
                raise DataError(f"{split_path}:{line}: label {item[1]!r} is not an integer")
            impath = os.path.join(image_dir, item[0])
            entries.append(Entry(impath, item[1], str(item[2]), split_path, line, part))
    return entries
