"""The `--executor` choice → an executor; `slurm` and `ray` are imported only when chosen.

Above the executor modules (they import `ammpl.sweep.executors`, the interface), so the
interface never imports its optional implementations.
"""

from __future__ import annotations

from typing import Any

from ammpl.sweep.executors import Executor, LocalExecutor, visible_gpus
from ammpl.utils.errors import ConfigError

EXECUTORS = ("local", "slurm", "ray")


def make_executor(name: str, options: Any) -> Executor:
    """The executor `name` built from the parsed command-line `options`."""
    if name == "local":
        gpus = options.gpus
        if gpus == "auto":
            found = visible_gpus()
        elif gpus in ("", "none", "cpu"):
            found = []
        else:
            found = [g.strip() for g in gpus.split(",") if g.strip()]
        return LocalExecutor(found, options.per_gpu, options.slots)
    if name == "slurm":
        from ammpl.sweep.slurm import SlurmExecutor

        return SlurmExecutor.from_options(options)
    if name == "ray":
        from ammpl.sweep.ray_executor import RayExecutor

        return RayExecutor.from_options(options)
    raise ConfigError(f"unknown executor '{name}'; use one of: {', '.join(EXECUTORS)}")
