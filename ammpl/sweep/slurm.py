"""The `slurm` executor: every run a Slurm job through submitit, ready runs as job arrays.

Imported only when `--executor slurm` is chosen (submitit is the optional `cluster` extra).
A job that Slurm preempts or times out is requeued by submitit (the task is
`Checkpointable`); the requeued job runs the same train.py command into the same folder,
and train.py resumes from the last checkpoint there, so no finished epoch is trained twice.
`--slurm-cluster local` runs the jobs as local processes through submitit's own executor
(how the tests exercise this path without a cluster).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ammpl.sweep.executors import Request, require
from ammpl.sweep.task import execute

submitit = require("submitit", "slurm")


class SweepTask(submitit.helpers.Checkpointable):
    """One run as a submitit callable; `checkpoint()` (inherited) requeues the same run."""

    def __init__(self, command: Sequence[str], cwd: str, log_path: str) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.log_path = log_path

    def __call__(self) -> int:
        return execute(self.command, self.cwd, self.log_path)


class SlurmExecutor:
    """Submits through `submitit.AutoExecutor`; several ready runs go out as one job array."""

    capacity: int | None = None

    def __init__(
        self,
        folder: str,
        partition: str | None = None,
        time_min: int = 240,
        gpus_per_run: int = 1,
        cpus_per_run: int | None = None,
        mem_gb: int | None = None,
        array_parallelism: int | None = None,
        cluster: str | None = None,
        name: str = "ammpl-sweep",
    ) -> None:
        self.executor = submitit.AutoExecutor(folder=os.path.join(folder, "%j"), cluster=cluster)
        self.executor.update_parameters(
            name=name,
            timeout_min=int(time_min),
            gpus_per_node=int(gpus_per_run),
            cpus_per_task=cpus_per_run,
            mem_gb=mem_gb,
            slurm_partition=partition,
            slurm_array_parallelism=array_parallelism,
        )

    @classmethod
    def from_options(cls, options: Any) -> SlurmExecutor:
        return cls(
            folder=os.path.abspath(os.path.join(options.log_dir, "submitit")),
            partition=options.partition,
            time_min=options.time,
            gpus_per_run=options.gpus_per_run,
            cpus_per_run=options.cpus_per_run,
            mem_gb=options.mem_gb,
            array_parallelism=options.array_parallelism,
            cluster=options.slurm_cluster,
        )

    def submit(self, requests: Sequence[Request]) -> list[Any]:
        tasks = [SweepTask(r.command, r.cwd, r.log_path) for r in requests]
        if len(tasks) == 1:
            return [self.executor.submit(tasks[0])]
        with self.executor.batch():  # one job array
            jobs = [self.executor.submit(t) for t in tasks]
        return jobs

    def poll(self, handle: Any) -> int | None:
        if not handle.done():
            return None
        try:
            return int(handle.result())
        except Exception:  # noqa: BLE001  (a failed or cancelled job is a failed run)
            return 1

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            handle.cancel(check=False)

    def describe(self, handle: Any) -> str:
        return f"job {handle.job_id}"

    def close(self) -> None:
        pass
