"""Atomic file writes and JSON helpers.

Every file a run produces (checkpoints, results.json, caches) is written to a temporary
file in the same folder and renamed into place, so an interruption never leaves a
half-written file where a complete one is expected.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def mkdir_if_missing(dirname: str | os.PathLike) -> None:
    os.makedirs(dirname, exist_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as handle:
        return json.load(handle)


def write_json(obj: Any, path: str | os.PathLike, indent: int = 4) -> None:
    """Dassl's argument order (obj, path); written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, separators=(",", ": ")) + "\n")
