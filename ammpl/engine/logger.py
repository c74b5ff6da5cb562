"""Tee stdout and stderr into `<output>/log.txt`.

Unlike Dassl (which starts `log.txt-<timestamp>` when log.txt exists, so parse_test_res.py
keeps reading the first run), a re-run appends to the same log.txt after a line
`==== new run YYYY-MM-DD HH:MM:SS ====`; the parser then sees the newest result last.
Progress bars should write to `terminal_stream()` so that they never reach the log.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import IO, Any

from ammpl.utils.io import ensure_writable_dir

__all__ = ["LogSession", "close_logger", "log_only", "setup_logger", "terminal_stream"]


class _TeeStream:
    """Writes to the original stream and to the shared log file; asks the original for the rest."""

    def __init__(self, stream: IO[str], sink: IO[str]) -> None:
        self.stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        if not self._sink.closed:
            self._sink.write(text)
        return written

    def flush(self) -> None:
        self.stream.flush()
        if not self._sink.closed:
            self._sink.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class LogSession:
    """One open log file and the two tees that feed it."""

    def __init__(self, path: str) -> None:
        self.path = path
        existed = os.path.isfile(path) and os.path.getsize(path) > 0
        needs_newline = existed and not _ends_with_newline(path)
        self._file = open(path, "a", buffering=1, encoding="utf-8")
        if existed:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._file.write(("\n" if needs_newline else "") + f"==== new run {stamp} ====\n")
        self._stdout = _TeeStream(sys.stdout, self._file)
        self._stderr = _TeeStream(sys.stderr, self._file)
        sys.stdout = self._stdout
        sys.stderr = self._stderr

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        """Flush, put the original streams back (if nobody replaced ours since), close the file."""
        if self._file.closed:
            return
        for tee, name in ((self._stdout, "stdout"), (self._stderr, "stderr")):
            try:
                tee.stream.flush()
            except (ValueError, OSError):
                pass
            if getattr(sys, name) is tee:
                setattr(sys, name, tee.stream)
        self._file.close()


_ACTIVE: LogSession | None = None


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _log_path(output: str | os.PathLike) -> str:
    output = os.fspath(output)
    if output.endswith(".txt") or output.endswith(".log"):
        return output
    return os.path.join(output, "log.txt")


def setup_logger(output: str | os.PathLike | None = None) -> LogSession | None:
    """Start teeing into `<output>/log.txt` (or `output` itself if it ends in .txt/.log).

    Calling it again with the same file keeps the running session; another file closes
    the old session first. Returns the session (None when `output` is empty).
    """
    global _ACTIVE
    if not output:
        return None
    path = _log_path(output)
    if _ACTIVE is not None and not _ACTIVE.closed:
        if os.path.realpath(_ACTIVE.path) == os.path.realpath(path):
            return _ACTIVE
        _ACTIVE.close()
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)))
    _ACTIVE = LogSession(path)
    return _ACTIVE


def close_logger() -> None:
    """Stop teeing and close log.txt (also run at interpreter exit)."""
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.close()
        _ACTIVE = None


def log_only(text: str) -> bool:
    """Write `text` (plus a newline) into log.txt but not onto the terminal.

    For what a run must record but a reader of the terminal does not need (the full
    config). Returns False when no log is open, so the caller can print it instead.
    """
    if _ACTIVE is None or _ACTIVE.closed:
        return False
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    _ACTIVE._file.write(text if text.endswith("\n") else text + "\n")
    return True


def terminal_stream() -> IO[str]:
    """The real stderr behind any tee: where transient output such as progress bars goes."""
    stream = sys.stderr
    while isinstance(stream, _TeeStream):
        stream = stream.stream
    return stream


atexit.register(close_logger)
