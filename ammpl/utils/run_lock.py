"""One run folder, one writer: the lock a run holds on its output folder.

`<folder>/.ammpl.lock` (JSON: host, pid, start time, command) is created atomically before
anything is written into the folder, and removed when the run ends. While the run lives, a
thread refreshes the file's modification time (the heartbeat) every `HEARTBEAT_S` seconds.
A second run on the folder stops with a `RunLockedError` naming the holder.

A lock is stale, and is taken over with a notice, when its holder is gone: on this host,
its process no longer exists (or its pid now belongs to a later process); on another host
(a file system shared by cluster nodes), when its heartbeat is older than the timeout
(`AMMPL_LOCK_TIMEOUT_S`, default `DEFAULT_TIMEOUT_S`). A lock left by a run that is gone
can also be deleted by hand (`rm <folder>/.ammpl.lock`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ammpl.utils.errors import AmmplError
from ammpl.utils.io import ensure_writable_dir

LOCK_FILE = ".ammpl.lock"
HEARTBEAT_S = 30.0
DEFAULT_TIMEOUT_S = 300.0
ENV_TIMEOUT = "AMMPL_LOCK_TIMEOUT_S"
# a lock file still being written by its creator (unreadable) is given this long
_UNREADABLE_GRACE_S = 10.0


class RunLockedError(AmmplError):
    """Another live run holds the output folder."""


def lock_path(folder: str) -> str:
    return os.path.join(folder, LOCK_FILE)


def timeout_s() -> float:
    """Heartbeat age after which a lock held on another host counts as stale."""
    raw = os.environ.get(ENV_TIMEOUT, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def _process_start(pid: int) -> str | None:
    """The kernel's start time of process `pid` (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, process_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    except OSError:
        return False
    if process_start:
        now = _process_start(pid)
        if now is not None and now != process_start:
            return False
    return True


@dataclass
class Holder:
    """Who holds a folder, as its lock file says."""

    host: str
    pid: int
    started: float
    process_start: str | None
    command: str
    heartbeat_age: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"host {self.host}, pid {self.pid}, started {when}"

    def same_as(self, other: Holder) -> bool:
        return (self.host, self.pid, self.started) == (other.host, other.pid, other.started)

    def stale_reason(self, timeout: float | None = None) -> str | None:
        """Why the holder is gone, or None while it may still run."""
        if self.host == socket.gethostname():
            if not _alive(self.pid, self.process_start):
                return f"process {self.pid} no longer runs on this host"
            return None
        timeout = timeout_s() if timeout is None else timeout
        if self.heartbeat_age > timeout:
            return f"no heartbeat for {self.heartbeat_age:.0f} s (timeout {timeout:.0f} s)"
        return None


def _read(path: str) -> Holder | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        age = max(0.0, time.time() - os.stat(path).st_mtime)
        return Holder(
            host=str(data["host"]),
            pid=int(data["pid"]),
            started=float(data["started"]),
            process_start=data.get("process_start"),
            command=str(data.get("command", "")),
            heartbeat_age=age,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_holder(folder: str) -> Holder | None:
    """The holder named by `folder`'s lock file; None without a (readable) lock."""
    return _read(lock_path(folder))


def live_holder(folder: str) -> Holder | None:
    """The holder of `folder` while it may still run (not stale), else None."""
    holder = read_holder(folder)
    return holder if holder is not None and holder.stale_reason() is None else None


def locked_message(folder: str, holder: Holder) -> str:
    return (
        f"{folder} is being written by another run ({holder.describe()}; heartbeat "
        f"{holder.heartbeat_age:.0f} s ago): wait for it to end or use another output folder; "
        f"if that run is gone, delete {lock_path(folder)}"
    )


class RunLock:
    """The lock of one output folder: `acquire()` (or `with`), heartbeat, `release()`."""

    def __init__(
        self,
        folder: str,
        heartbeat_s: float = HEARTBEAT_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = folder
        self.path = lock_path(folder)
        self.heartbeat_s = heartbeat_s
        self.say = say or (lambda line: print(line, flush=True))
        self.holder: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._created_folder = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _content(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "process_start": _process_start(os.getpid()),
            "command": " ".join(sys.argv),
        }

    def _create(self) -> bool:
        """Create the lock file complete (write aside, hard-link into place); False if held."""
        content = self._content()
        temp = f"{self.path}.{content['host']}.{content['pid']}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(content, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, self.path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create instead
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(content, handle)
        finally:
            try:
                os.remove(temp)
            except OSError:
                pass
        self.holder = Holder(
            content["host"], content["pid"], content["started"], content["process_start"],
            content["command"], 0.0,
        )  # fmt: skip
        return True

    def _take_over(self, stale: Holder, reason: str) -> None:
        """Set the stale lock aside, unless another run took it over meanwhile."""
        aside = f"{self.path}.stale-{socket.gethostname()}-{os.getpid()}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = _read(aside)
        if moved is not None and not moved.same_as(stale):  # a fresh lock: put it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        else:
            self.say(
                f"note: {self.folder}: taking over the lock of a run that is gone "
                f"({stale.describe()}; {reason})"
            )
        try:
            os.remove(aside)
        except OSError:
            pass

    def acquire(self) -> None:
        """Hold the folder, or raise RunLockedError naming the live holder."""
        self._created_folder = not os.path.isdir(self.folder)
        ensure_writable_dir(self.folder)  # one line when it cannot be created or written
        for _ in range(20):
            if self._create():
                self._start_heartbeat()
                return
            holder = read_holder(self.folder)
            if holder is None:  # being written, or damaged: wait a little, then take it
                try:
                    age = time.time() - os.stat(self.path).st_mtime
                except FileNotFoundError:
                    continue
                if age < _UNREADABLE_GRACE_S:
                    time.sleep(0.5)
                    continue
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                self.say(f"note: {self.folder}: removed an unreadable lock file")
                continue
            reason = holder.stale_reason()
            if reason is None:
                raise RunLockedError(locked_message(self.folder, holder))
            self._take_over(holder, reason)
        raise RunLockedError(f"could not take the lock {self.path}: it keeps changing hands")

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="ammpl-lock-heartbeat")
        self._thread.daemon = True
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours (and the folder,
        when this lock created it and nothing was written into it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.holder is None or self.holder.pid != os.getpid():
            return  # not held, or a forked child (a data-loader worker): the parent's lock
        current = read_holder(self.folder)
        if current is not None and current.same_as(self.holder):
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.holder = None
        if self._created_folder:  # a run that wrote nothing leaves no folder behind
            try:
                os.rmdir(self.folder)
            except OSError:
                pass
