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


def ensure_writable_dir(dirname: str | os.PathLike, what: str = "output folder") -> str:
    """Create `dirname` if needed and prove a file can be written there.

    Every run writes log.txt, results.json and checkpoints into its output folder; a folder
    that cannot be created (a file in the way, a read-only parent) or written should stop
    the run at once with one line, not with a traceback from the first write.
    """
    from ammpl.utils.errors import AmmplError

    path = os.path.abspath(os.path.expanduser(os.fspath(dirname)))
    hint = "choose another --output-dir / OUTPUT_DIR"
    if os.path.exists(path) and not os.path.isdir(path):
        raise AmmplError(f"The {what} '{path}' is an existing file, not a folder ({hint})")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AmmplError(f"Cannot write to the {what} '{path}': {reason} ({hint})") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which is not safe to repeat in threads.
_NEW_FILE_MODE = 0o666 & ~_umask()


def _final_mode(path: Path) -> int:
    """The mode a plain `open(path, "w")` would leave: an existing file's, else 0o666 & ~umask
    (mkstemp's 0o600 would hide results and checkpoints from the rest of a group)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return _NEW_FILE_MODE


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path`; on success fsync and rename it over `path`.

    A `path` that exists but is neither a file nor a folder (a FIFO, a terminal,
    `/dev/stdout`) is written straight through: renaming over it would replace the device
    node with a regular file.
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        with open(path, mode) as handle:
            yield handle
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), _final_mode(path))
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
