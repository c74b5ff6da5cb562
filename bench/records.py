"""Machine-readable bench output (`--json PATH`) and the measurements the benches share.

Every bench writes one JSON object: `{"bench": name, "device": ..., "torch": ...,
"settings": {...}, "rows": [{...}, ...]}`; bench/gpu_summary.py turns a folder of them
into the table of README's Speed section.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import torch

from ammpl.utils.io import write_json


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


def write_records(
    path: str, bench: str, device: torch.device, settings: dict[str, Any], rows: list[dict]
) -> None:
    """Write the bench's rows as JSON (atomically: a reader never sees half a file)."""
    record = {
        "bench": bench,
        "device": device_name(device),
        "torch": torch.__version__,
        "settings": settings,
        "rows": rows,
    }
    write_json(record, path, indent=1)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float | None:
    """CUDA's peak allocated memory since the last reset (None on CPU: not measured here)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of one call of `fn` (matmuls, convolutions, attention), as
    torch's FlopCounterMode counts them (a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())
