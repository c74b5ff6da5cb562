"""Keep the original Dassl's warm-up schedulers working on torch ≥ 2.10.

Dassl's warm-up base class hands its `verbose` argument on to
`torch.optim.lr_scheduler._LRScheduler.__init__` as a third positional argument. torch 2.10
removed that parameter, so building any Dassl scheduler with `OPTIM.WARMUP_EPOCH > 0`
(CoOp, CoCoOp and MaPLe all warm up) raises a TypeError, which breaks a whole CoOp fork once
installing ammpl has upgraded torch. `repair_warmup_schedulers()` finds out by building one
on a throw-away optimiser and, only if that fails this way, replaces the base class's
constructor with one that drops `verbose`. A Dassl that is already fixed (or an older torch)
is left untouched.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

import torch

__all__ = ["repair_warmup_schedulers"]

BASE_CLASS = "_BaseWarmupScheduler"
PROBE_CLASS = "ConstantWarmupScheduler"
NOTICE = (
    "ammpl: repaired Dassl's warm-up schedulers for torch {torch} (they pass `verbose` to "
    "LRScheduler.__init__, which torch ≥ 2.10 no longer accepts)"
)


def _scheduler_module() -> types.ModuleType | None:
    try:
        return importlib.import_module("dassl.optim.lr_scheduler")
    except ImportError:
        return None


def _fails_on_verbose(module: types.ModuleType) -> bool:
    """Does building a warm-up scheduler raise the `verbose` TypeError?"""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    successor = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    try:
        getattr(module, PROBE_CLASS)(optimizer, successor, 1, 0.01)
    except TypeError as exc:
        return "positional argument" in str(exc) or "verbose" in str(exc)
    return False


def _without_verbose(base: type, original: Any) -> Any:
    """The warm-up base constructor, minus the `verbose` argument torch no longer takes."""

    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super(base, self).__init__(optimizer, last_epoch)

    __init__.__qualname__ = original.__qualname__
    __init__.__doc__ = original.__doc__
    __init__.ammpl_repaired = True  # type: ignore[attr-defined]
    return __init__


def repair_warmup_schedulers() -> bool:
    """Repair the running Dassl's warm-up schedulers if they fail on this torch.

    Returns True when it repaired them (and printed one notice line); False when there was
    nothing to do: no Dassl scheduler module, an already fixed one, or an older torch.
    """
    module = _scheduler_module()
    base = getattr(module, BASE_CLASS, None) if module is not None else None
    if base is None or not hasattr(module, PROBE_CLASS):
        return False
    if getattr(base.__init__, "ammpl_repaired", False) or not _fails_on_verbose(module):
        return False
    original = base.__init__
    base.__init__ = _without_verbose(base, original)
    if _fails_on_verbose(module):  # a change this repair does not know: leave Dassl as it was
        base.__init__ = original
        return False
    print(NOTICE.format(torch=torch.__version__))
    return True
