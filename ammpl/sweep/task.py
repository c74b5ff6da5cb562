"""One run as a child process: what every executor runs, locally or on a cluster node.

The command's output (stdout and stderr) goes to a log file, which the sweep reads back
for the tail of a failed run. On Linux the child is asked to end with its parent, so a
cancelled Slurm job or Ray task never leaves a training process behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # pragma: no cover  (runs in the child before exec)
    # A sweep started in the background (`nohup ammpl-sweep … &`) inherits SIGINT as
    # ignored, and exec passes "ignored" on: its runs would never hear the Ctrl-C that makes
    # train.py save its state, and would be killed after the grace period instead.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


def start(
    command: Sequence[str],
    cwd: str,
    log_path: str,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen:
    """Start `command` in `cwd` with its output appended to `log_path`."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            preexec_fn=_child_setup if os.name == "posix" else None,
        )


def execute(
    command: Sequence[str], cwd: str, log_path: str, env: Mapping[str, str] | None = None
) -> int:
    """Run `command` to the end; its exit code (what the Slurm and Ray tasks return)."""
    process = start(command, cwd, log_path, env)
    try:
        return process.wait()
    except BaseException:
        stop(process)
        raise


def signal_run(process: subprocess.Popen, signum: int, group: bool = False) -> None:
    """Send `signum` to the child, or to its whole process group (data-loader workers too)
    when it was started in a session of its own."""
    if process.poll() is not None:
        return
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop(process: subprocess.Popen, grace_s: float = 30.0, group: bool = False) -> None:
    """Ctrl-C the child (train.py saves its state and says so), then kill it if it lingers."""
    signal_run(process, signal.SIGINT, group)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        signal_run(process, signal.SIGKILL, group)
        process.wait()


def log_tail(log_path: str, lines: int = 20) -> list[str]:
    """The last `lines` lines of a run's log (empty when there is none)."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
