"""Executors: where a sweep's runs execute. All share one small interface.

`submit(requests)` starts runs and returns one handle each; `poll(handle)` gives the exit
code once the run has ended (None while it runs); `cancel(handle)` ends a run; `capacity` is
how many runs may run at once (None: as many as the cluster schedules). `local` is here;
`slurm` (submitit) and `ray` live in their own modules, which import this one;
`ammpl.sweep.choose_executor` imports them only when chosen, since their packages are an
optional extra.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ammpl.sweep import task
from ammpl.utils.errors import ConfigError

CLUSTER_EXTRA = "pip install -e '.[cluster]'"


@dataclass
class Request:
    """One run to start: its command, working folder and log file."""

    command: list[str]
    cwd: str
    log_path: str
    env: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    capacity: int | None

    def submit(self, requests: Sequence[Request]) -> list[Any]: ...

    def poll(self, handle: Any) -> int | None: ...

    def cancel(self, handles: Sequence[Any]) -> None: ...

    def describe(self, handle: Any) -> str: ...

    def close(self) -> None: ...


def require(module: str, executor: str) -> Any:
    """Import an optional package, or a one-line error naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"the {executor} executor needs the '{module}' package: {CLUSTER_EXTRA} "
            f"(or pip install {module})"
        ) from None


def visible_gpus() -> list[str]:
    """The GPUs this machine shows (CUDA_VISIBLE_DEVICES respected); none without CUDA."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001  (no usable CUDA is the same as no GPU here)
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        ids = [part.strip() for part in listed.split(",") if part.strip()]
        return ids[:count]
    return [str(i) for i in range(count)]


@dataclass
class _LocalJob:
    process: subprocess.Popen
    slot: int


class LocalExecutor:
    """Child processes on this machine: `per_gpu` runs on each GPU of `gpus` (each with
    its own CUDA_VISIBLE_DEVICES), or, with no GPU given, `cpu_slots` runs at once with the
    devices of the environment (CUDA_VISIBLE_DEVICES left as it is)."""

    def __init__(self, gpus: Sequence[str], per_gpu: int = 1, cpu_slots: int = 1) -> None:
        if per_gpu < 1 or cpu_slots < 1:
            raise ConfigError("--per-gpu and --slots must be at least 1")
        if gpus:
            self.slots = [str(g) for g in gpus for _ in range(per_gpu)]
        else:
            self.slots = [""] * cpu_slots
        self.capacity = len(self.slots)
        self._busy: set[int] = set()

    def submit(self, requests: Sequence[Request]) -> list[_LocalJob]:
        jobs = []
        for request in requests:
            free = [i for i in range(len(self.slots)) if i not in self._busy]
            if not free:
                raise RuntimeError("LocalExecutor.submit beyond its capacity")
            slot = free[0]
            env = dict(request.env)
            if self.slots[slot]:
                env["CUDA_VISIBLE_DEVICES"] = self.slots[slot]
            process = task.start(request.command, request.cwd, request.log_path, env, True)
            self._busy.add(slot)
            jobs.append(_LocalJob(process, slot))
        return jobs

    def poll(self, handle: _LocalJob) -> int | None:
        code = handle.process.poll()
        if code is not None:
            self._busy.discard(handle.slot)
        return code

    def cancel(self, handles: Sequence[_LocalJob]) -> None:
        for handle in handles:  # all at once, then wait for each
            task.signal_run(handle.process, signal.SIGINT, group=True)
        for handle in handles:
            task.stop(handle.process, group=True)
            self._busy.discard(handle.slot)

    def describe(self, handle: _LocalJob) -> str:
        device = self.slots[handle.slot]
        return f"GPU {device}" if device else f"slot {handle.slot + 1}"

    def close(self) -> None:
        pass
