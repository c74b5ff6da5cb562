"""The `ray` executor: every run a Ray task asking for `--gpus-per-run` GPUs.

Imported only when `--executor ray` is chosen (ray is the optional `cluster` extra). Ray
sets CUDA_VISIBLE_DEVICES for each task; the task starts train.py as a child process (the
same `ammpl.sweep.task.execute` as the other executors), so every run has a fresh process.
The nodes must see the same checkout, data and output folder (a shared file system).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ammpl.sweep.executors import Request, require
from ammpl.sweep.task import execute
from ammpl.utils.errors import ConfigError

ray = require("ray", "ray")


class RayExecutor:
    """Connects to `address` (None: start a Ray on this machine) and submits tasks."""

    capacity: int | None = None

    def __init__(self, address: str | None, gpus_per_run: float = 1, cpus_per_run: float = 1):
        self._started = not ray.is_initialized()
        if self._started:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(log_to_driver=False, include_dashboard=False)
            except Exception as error:  # noqa: BLE001  (Ray raises many kinds here)
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise ConfigError(f"cannot start or reach {where}: {first}") from None
        self.remote = ray.remote(num_gpus=gpus_per_run, num_cpus=cpus_per_run, max_retries=0)(
            execute
        )

    @classmethod
    def from_options(cls, options: Any) -> RayExecutor:
        return cls(options.address, options.gpus_per_run, options.cpus_per_run or 1)

    def submit(self, requests: Sequence[Request]) -> list[Any]:
        return [self.remote.remote(r.command, r.cwd, r.log_path, r.env) for r in requests]

    def poll(self, handle: Any) -> int | None:
        ready, _ = ray.wait([handle], timeout=0)
        if not ready:
            return None
        try:
            return int(ray.get(handle))
        except Exception:  # noqa: BLE001  (a failed or cancelled task is a failed run)
            return 1

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            ray.cancel(handle, force=True)

    def describe(self, handle: Any) -> str:
        return "ray task"

    def close(self) -> None:
        if self._started:
            ray.shutdown()
