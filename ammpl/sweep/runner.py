"""Runs a sweep's runs on an executor: order, retries, progress, Ctrl-C, the final report.

A run starts once the runs it depends on (the training an evaluation loads) have finished;
a failed run is started again up to `retries` times (train.py resumes from its last
checkpoint), then reported with the tail of its log, and the runs that depend on it are
not started. Ctrl-C ends the running runs (train.py records them as interrupted; nothing
unfinished ever holds a test result, so the next sweep redoes exactly those).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ammpl.sweep.done import DONE, read_record, run_state
from ammpl.sweep.executors import Executor, Request
from ammpl.sweep.plan import Run
from ammpl.sweep.task import log_tail
from ammpl.utils.errors import AmmplError
from ammpl.utils.run_lock import live_holder

SKIPPED, PENDING, RUNNING, FINISHED, FAILED, BLOCKED, ELSEWHERE, NOT_STARTED = (
    "skipped",
    "pending",
    "running",
    "finished",
    "failed",
    "blocked",
    "elsewhere",  # another process holds the run folder (ammpl.utils.run_lock): skipped
    "not started",  # the sweep stopped on a failure every run would repeat
)
# the first runs failing with one error that names nothing of the run stop the sweep
SAME_ERROR_STOP = 2


class SubmitError(AmmplError):
    """The executor refused to start runs (the cluster said why)."""


@dataclass
class RunStatus:
    run: Run
    state: str
    log_path: str
    attempts: int = 0
    number: int = 0  # i of "run i/N" (0: not started yet)
    handle: Any = None
    started: float = 0.0
    code: int | None = None
    note: str = ""  # why a run was skipped as running elsewhere


@dataclass
class Summary:
    statuses: list[RunStatus]
    interrupted: bool = False
    wall_s: float = 0.0
    lines: list[str] = field(default_factory=list)

    stopped_on: str = ""  # the error every run repeated, when the sweep stopped on it

    def count(self, *states: str) -> int:
        return sum(s.state in states for s in self.statuses)

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.count(FAILED, BLOCKED, NOT_STARTED)


def log_path_for(log_dir: str, output_root: str, run: Run) -> str:
    """`<log_dir>/<run folder below the output root, / → __>.log`."""
    relative = os.path.relpath(os.path.abspath(run.output_dir), os.path.abspath(output_root))
    name = relative.replace(os.sep, "__").replace("..", "up") or "run"
    return os.path.join(log_dir, f"{name}.log")


def initial_states(runs: Sequence[Run], cwd: str) -> list[str]:
    """SKIPPED for runs already finished with these settings, PENDING for the rest; a
    folder holding a run with other settings raises RunConflictError (before anything
    starts)."""
    return [initial_state(run, cwd) for run in runs]


def initial_state(run: Run, cwd: str) -> str:
    """SKIPPED (finished with these settings) or PENDING; RunConflictError when the folder
    holds a run with other settings."""
    if read_record(os.path.join(cwd, run.output_dir)) is None:  # nothing there yet
        return PENDING
    return SKIPPED if run_state(run.train_args, cwd) == DONE else PENDING


def running_elsewhere(run: Run, cwd: str) -> str:
    """Who holds the run's folder while they may still run ("" when nobody does)."""
    holder = live_holder(os.path.join(cwd, run.output_dir))
    return holder.describe() if holder is not None else ""


def error_line(log_path: str) -> str:
    """The error a failed run ended with: its last `error: ` line (train.py's one-line
    errors), else the last unindented line (a traceback's exception)."""
    lines = [line.rstrip() for line in log_tail(log_path, 40) if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line
    for line in reversed(lines):
        if not line[0].isspace():
            return line
    return ""


def names_the_run(line: str, run: Run) -> bool:
    """Whether an error line mentions the run's own folder or dataset (then another run
    may well not fail the same way)."""
    text = line.lower().replace("-", "_")
    dataset = os.path.splitext(os.path.basename(run.option("--dataset-config-file")))[0]
    words = [run.output_dir, os.path.abspath(run.output_dir), dataset]
    return any(w and w.lower().replace("-", "_") in text for w in words)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The live line (rewritten in place on a terminal, printed on change otherwise)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""
        self._shown = False

    def say(self, line: str) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self._shown = False
        self.stream.write(line + "\n")
        self.stream.flush()

    def status(self, line: str) -> None:
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self._shown = True
            self.stream.flush()
        else:
            self.say(line)

    def end(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class SweepRunner:
    """Drives `runs` on `executor` to the end (or Ctrl-C)."""

    def __init__(
        self,
        runs: Sequence[Run],
        executor: Executor,
        log_dir: str,
        output_root: str,
        retries: int = 0,
        cwd: str | None = None,
        stream: TextIO | None = None,
        poll_s: float = 0.2,
        tail_lines: int = 12,
    ) -> None:
        self.runs = list(runs)
        self.executor = executor
        self.retries = max(0, retries)
        self.cwd = cwd or os.getcwd()
        self.progress = Progress(stream or sys.stderr)
        self.poll_s = poll_s
        self.tail_lines = tail_lines
        states = initial_states(self.runs, self.cwd)
        self.statuses = [
            RunStatus(run, state, log_path_for(log_dir, output_root, run))
            for run, state in zip(self.runs, states)
        ]
        self.total = sum(s.state == PENDING for s in self.statuses)
        self._numbered = 0
        self._durations: list[float] = []
        self._first_errors: list[str] = []  # the errors of the first failed runs
        self._watch_errors = True  # until a run succeeds or fails in a way of its own
        self.stopped_on = ""

    # -- scheduling ----------------------------------------------------------------------
    def _ready(self, status: RunStatus) -> bool | None:
        """True: may start; False: wait; None: never (a run it needs failed, or runs
        elsewhere: then this one is skipped with it)."""
        for index in status.run.depends_on:
            needed = self.statuses[index]
            if needed.state == ELSEWHERE:
                status.state = ELSEWHERE
                status.note = f"needs {needed.run.output_dir}, which runs elsewhere"
                return None
            if needed.state in (FAILED, BLOCKED):
                return None
            if needed.state not in (FINISHED, SKIPPED):
                return False
        return True

    def _elsewhere(self, status: RunStatus, holder: str) -> None:
        status.state, status.note = ELSEWHERE, f"running elsewhere: {holder}"
        self.progress.say(f"skipped: {status.run.output_dir} ({status.note})")

    def _start(self, batch: list[RunStatus]) -> None:
        requests = [
            Request(s.run.command, self.cwd, os.path.join(self.cwd, s.log_path)) for s in batch
        ]
        try:
            handles = self.executor.submit(requests)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:  # sbatch refused
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise SubmitError(f"could not start {len(requests)} run(s): {first}") from None
        now = time.time()
        for status, handle in zip(batch, handles):
            status.handle, status.state, status.started = handle, RUNNING, now
            status.attempts += 1
            if not status.number:
                self._numbered += 1
                status.number = self._numbered
            again = f" (attempt {status.attempts})" if status.attempts > 1 else ""
            self.progress.say(
                f"run {status.number}/{self.total}: {status.run.output_dir}{again} "
                f"[{self.executor.describe(handle)}; log {status.log_path}]"
            )

    def _finish(self, status: RunStatus, code: int) -> None:
        status.code = code
        if code == 0:
            status.state = FINISHED
            self._watch_errors = False
            self._durations.append(time.time() - status.started)
            return
        holder = running_elsewhere(status.run, self.cwd)
        if holder:  # train.py found the folder taken by a run started elsewhere
            self._elsewhere(status, holder)
            return
        label = f"run {status.number}/{self.total}"
        if status.attempts <= self.retries:
            status.state = PENDING
            self.progress.say(
                f"{label} failed (exit code {code}); retry {status.attempts}/{self.retries}"
            )
        else:
            status.state = FAILED
            self.progress.say(f"{label} failed (exit code {code}): {status.run.output_dir}")
            self._note_failure(status)

    def _note_failure(self, status: RunStatus) -> None:
        """Stop starting runs once the first ones all failed with one error that names
        nothing of the run (missing weights, a broken install, a full disk ...)."""
        if not self._watch_errors or self.stopped_on:
            return
        line = error_line(status.log_path)
        if not line or names_the_run(line, status.run):
            self._watch_errors = False  # a failure of its own: the others may well work
            return
        self._first_errors.append(line)
        if len(self._first_errors) >= SAME_ERROR_STOP and len(set(self._first_errors)) == 1:
            self.stopped_on = line
            for other in self.statuses:
                if other.state == PENDING:
                    other.state = NOT_STARTED

    def _status_line(self) -> str:
        done = sum(s.state in (FINISHED, SKIPPED, ELSEWHERE) for s in self.statuses)
        running = sum(s.state == RUNNING for s in self.statuses)
        failed = sum(s.state == FAILED for s in self.statuses)
        blocked = sum(s.state == BLOCKED for s in self.statuses)
        pending = sum(s.state == PENDING for s in self.statuses)
        line = (
            f"sweep: {done}/{len(self.statuses)} done, {running} running, "
            f"{failed} failed, {pending} pending"
        )
        if blocked:
            line += f", {blocked} not run (a run they need failed)"
        if self.stopped_on:
            line += f", {sum(s.state == NOT_STARTED for s in self.statuses)} not started"
        if self._durations and (pending or running):
            mean = sum(self._durations) / len(self._durations)
            parallel = max(1, min(self.executor.capacity or running or 1, pending + running))
            line += f", ETA {_duration(mean * (pending + running) / parallel)}"
        return line

    def _step(self) -> bool:
        """One round: collect ended runs, start ready ones; False when all are settled."""
        for status in self.statuses:
            if status.state == RUNNING:
                code = self.executor.poll(status.handle)
                if code is not None:
                    self._finish(status, code)
        ready = []
        for status in self.statuses:
            if status.state != PENDING:
                continue
            verdict = self._ready(status)
            if verdict is None and status.state == PENDING:
                status.state = BLOCKED
            elif verdict:
                ready.append(status)
        running = sum(s.state == RUNNING for s in self.statuses)
        capacity = self.executor.capacity
        free = len(ready) if capacity is None else max(0, capacity - running)
        batch = []
        for status in ready:
            if len(batch) >= free:
                break
            holder = running_elsewhere(status.run, self.cwd)
            if holder:
                self._elsewhere(status, holder)
            else:
                batch.append(status)
        if batch:
            self._start(batch)
        self.progress.status(self._status_line())
        return any(s.state in (PENDING, RUNNING) for s in self.statuses)

    def run(self) -> Summary:
        start = time.time()
        skipped = sum(s.state == SKIPPED for s in self.statuses)
        if skipped:
            self.progress.say(f"{skipped} run(s) already finished with these settings: skipped")
        summary = Summary(self.statuses)
        try:
            while self._step():
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            summary.interrupted = True
            self.progress.end()
            running = [s for s in self.statuses if s.state == RUNNING]
            self.progress.say(f"interrupted: ending {len(running)} running run(s) ...")
            self.executor.cancel([s.handle for s in running])
            for status in running:
                status.state = PENDING
        finally:
            self.progress.end()
            self.executor.close()
        summary.wall_s = time.time() - start
        summary.stopped_on = self.stopped_on
        summary.lines = self.report(summary)
        return summary

    # -- report --------------------------------------------------------------------------
    def report(self, summary: Summary) -> list[str]:
        lines = []
        if summary.stopped_on:
            return self._stop_report(summary)
        for status in self.statuses:
            if status.state == FAILED:
                lines.append(
                    f"failed: {status.run.output_dir} (exit code {status.code} after "
                    f"{status.attempts} attempt(s)); log {status.log_path}, last lines:"
                )
                lines += [f"    {line}" for line in log_tail(status.log_path, self.tail_lines)]
            elif status.state == ELSEWHERE:
                lines.append(f"skipped: {status.run.output_dir} ({status.note})")
            elif status.state == BLOCKED:
                needed = ", ".join(self.statuses[i].run.output_dir for i in status.run.depends_on)
                lines.append(f"not run: {status.run.output_dir} (needs {needed}, which failed)")
        counts = (
            f"{summary.count(FINISHED)} finished now, {summary.count(SKIPPED)} already "
            f"finished, {summary.count(FAILED)} failed, {summary.count(BLOCKED)} not run"
        )
        if summary.count(ELSEWHERE):
            counts += f", {summary.count(ELSEWHERE)} skipped (running elsewhere)"
        if summary.count(NOT_STARTED):
            counts += f", {summary.count(NOT_STARTED)} not started"
        if summary.interrupted:
            lines.append(
                f"sweep interrupted after {_duration(summary.wall_s)}: {counts}, "
                f"{summary.count(PENDING)} left; run the same command again to resume"
            )
        else:
            lines.append(
                f"sweep of {len(self.statuses)} run(s) in {_duration(summary.wall_s)}: {counts}"
            )
        return lines

    def _stop_report(self, summary: Summary) -> list[str]:
        """The error once, the runs it failed, and how many were not started."""
        failed = [s for s in self.statuses if s.state == FAILED]
        lines = [
            f"sweep stopped: its first {len(failed)} run(s) failed with the same error, "
            "which is not about one run:",
            f"    {summary.stopped_on}",
        ]
        lines += [f"failed: {s.run.output_dir} (log {s.log_path})" for s in failed]
        lines.append(
            f"{summary.count(NOT_STARTED)} run(s) not started, "
            f"{summary.count(FINISHED, SKIPPED)} finished; fix the error and run the same "
            "command again (finished runs are skipped)"
        )
        return lines
