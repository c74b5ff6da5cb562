"""Fake `dassl.optim`: only the scheduler builder (see lr_scheduler.py)."""

from .lr_scheduler import build_lr_scheduler  # noqa: F401
