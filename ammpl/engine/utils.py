"""Small helpers of Dassl's `dassl.utils` that trainers call by name."""

from __future__ import annotations

import platform
import random
from collections import defaultdict
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

from ammpl.utils.io import mkdir_if_missing, read_json, write_json

__all__ = [
    "AverageMeter",
    "MetricMeter",
    "capture_rng_state",
    "collect_env_info",
    "count_num_param",
    "mkdir_if_missing",
    "read_json",
    "restore_rng_state",
    "set_random_seed",
    "write_json",
]


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy, torch and every GPU, in Dassl's order (few-shot picks depend on it)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def count_num_param(model: nn.Module | None = None, params: Iterable[Any] | None = None) -> int:
    """Number of elements in a model's parameters, or in a list of tensors / param groups."""
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is None:
        return 0
    total = 0
    for item in params:
        if isinstance(item, dict):
            group = item["params"]
            group = [group] if isinstance(group, torch.Tensor) else group
            total += sum(p.numel() for p in group)
        else:
            total += item.numel()
    return total


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect_env_info() -> str:
    """A few lines naming the versions that decide numbers (no heavy imports)."""
    lines = [
        f"Python: {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"PyTorch: {torch.__version__}",
        f"torchvision: {_package_version('torchvision')}",
        f"open_clip: {_package_version('open_clip_torch')}",
    ]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"CUDA: {torch.version.cuda} ({names})")
    else:
        lines.append("CUDA: not available")
    return "\n".join(lines)


class AverageMeter:
    """Latest value and running (or exponential moving) average."""

    def __init__(self, ema: bool = False) -> None:
        self.ema = ema
        self.reset()

    def reset(self) -> None:
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float | torch.Tensor, n: int = 1) -> None:
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        if self.ema:
            self.avg = self.avg * 0.9 + self.val * 0.1
        else:
            self.avg = self.sum / self.count


class MetricMeter:
    """Named AverageMeters printed as Dassl does: `loss 1.2345 (1.3456) acc 50.0000 (45.0000)`."""

    def __init__(self, delimiter: str = " ") -> None:
        self.meters: defaultdict[str, AverageMeter] = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: dict[str, float | torch.Tensor] | None) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError("Input to MetricMeter.update() must be a dictionary")
        for name, value in input_dict.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self.meters[name].update(value)

    def __str__(self) -> str:
        return self.delimiter.join(
            f"{name} {meter.val:.4f} ({meter.avg:.4f})" for name, meter in self.meters.items()
        )


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, storable with `weights_only=True`."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`; CUDA states are skipped when the GPU count differs."""
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
    if "numpy" in state:
        np_state = state["numpy"]
        np.random.set_state(
            (
                np_state["kind"],
                np_state["keys"].numpy().astype(np.uint32),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["cached_gaussian"],
            )
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
