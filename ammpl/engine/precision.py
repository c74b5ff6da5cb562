"""What a PREC string ("fp32" | "fp16" | "amp" | "bf16") means on a given device.

- fp32: everything in float32.
- fp16: the reference ("faithful") mode: the model itself is half precision on CUDA, no
  autocast and no loss scaling (trainers cast the model; see BASELINES.md §1.5).
- amp: float32 weights, float16 autocast on CUDA, with a GradScaler.
- bf16: float32 weights, bfloat16 autocast (CUDA or CPU), no scaler needed.

Half precision is not usable for training on CPU, so fp16 and amp fall back to fp32 there,
with one notice line per mode and process.
"""

from __future__ import annotations

import contextlib

import torch

from ammpl.utils.errors import ConfigError
from ammpl.utils.registry import closest_name

PRECISIONS = ("fp32", "fp16", "amp", "bf16")
_NOTIFIED: set[str] = set()


def _device_type(device: torch.device | str) -> str:
    return torch.device(device).type


def resolve_precision(prec: str, device: torch.device | str) -> str:
    """The mode actually used for `prec` on `device` (fp16/amp become fp32 on CPU)."""
    if prec not in PRECISIONS:
        hint = closest_name(prec, PRECISIONS)
        hint_text = f"; did you mean '{hint}'?" if hint else ""
        raise ConfigError(
            f"Unknown precision PREC '{prec}'{hint_text} (available: {', '.join(PRECISIONS)})"
        )
    if prec in ("fp16", "amp") and _device_type(device) != "cuda":
        if prec not in _NOTIFIED:
            _NOTIFIED.add(prec)
            print(f'Note: PREC "{prec}" needs a CUDA device; running in fp32 on {device}')
        return "fp32"
    return prec


def param_dtype(prec: str, device: torch.device | str) -> torch.dtype:
    """dtype of the (frozen) model weights: float16 only in the faithful fp16 mode on CUDA."""
    return torch.float16 if resolve_precision(prec, device) == "fp16" else torch.float32


def autocast_context(prec: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast for the forward pass: fp16 for amp on CUDA, bf16 for bf16, else nothing."""
    mode = resolve_precision(prec, device)
    device_type = _device_type(device)
    if mode == "amp":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if mode == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def needs_grad_scaler(prec: str, device: torch.device | str) -> bool:
    """Loss scaling is needed only for float16 autocast (amp on CUDA)."""
    return resolve_precision(prec, device) == "amp"


def make_grad_scaler(prec: str, device: torch.device | str) -> torch.amp.GradScaler | None:
    """A GradScaler for amp on CUDA, None otherwise."""
    return torch.amp.GradScaler("cuda") if needs_grad_scaler(prec, device) else None
