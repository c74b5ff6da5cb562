"""Dassl's `build_lr_scheduler`, with a warm-up wrapper that runs on every torch 2.x.

Without warm-up the scheduler is torch's own StepLR / MultiStepLR / CosineAnnealingLR,
exactly as in Dassl. With OPTIM.WARMUP_EPOCH > 0 it is wrapped:

- constant: lr = WARMUP_CONS_LR for epochs 0 … W−1; linear: WARMUP_MIN_LR at epoch 0,
  then LR · e / W for 0 < e < W;
- from epoch W on, the wrapped ("successor") schedule takes over. With WARMUP_RECOUNT
  (default) it starts from its own epoch 0; otherwise its epoch counter starts at W, as
  in Dassl (torch's chained cosine then continues from the full LR at epoch W, i.e. the
  rest of the cosine is scaled by 2 / (1 + cos(πW/MAX_EPOCH)); Dassl gives the same).

Stepping once per epoch (after the epoch's batches) therefore gives, for the CLIP configs
(cosine, constant warm-up of one epoch): lr(0) = 1e-5 and
lr(e) = LR · ½(1 + cos(π(e−1)/MAX_EPOCH)) for e ≥ 1. Dassl's own warm-up class passes
`verbose` to torch's base class, which current torch rejects; this one does not depend on
that argument or on torch's private stepping helpers.

A param group may carry `lr_mult` (AMMPL's P group, TRAINER.AMMPL.P_LR_MULT): its lr is
that factor times the others' at every epoch. The successor schedules get this from the
group's own initial lr; the warm-up's fixed values (WARMUP_CONS_LR, WARMUP_MIN_LR) are
multiplied by it. Groups without `lr_mult` (every Dassl group) behave as in Dassl.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from ammpl.utils.errors import ConfigError
from ammpl.utils.registry import closest_name

AVAILABLE_SCHEDULERS = ("single_step", "multi_step", "cosine")
AVAILABLE_WARMUPS = ("constant", "linear")


class _WarmupScheduler(LRScheduler):
    """Runs its own warm-up for `warmup_epoch` steps, then delegates to `successor`."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, successor: LRScheduler, warmup_epoch: int
    ) -> None:
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer)

    def warmup_lr(self, epoch: int) -> list[float]:
        raise NotImplementedError

    def _fixed_lr(self, lr: float) -> list[float]:
        """A warm-up value for every group, times the group's `lr_mult` (default 1)."""
        return [lr * group.get("lr_mult", 1.0) for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        if self.last_epoch >= self.warmup_epoch:
            return list(self.successor.get_last_lr())
        return self.warmup_lr(self.last_epoch)

    def step(self, epoch: int | None = None) -> None:
        if epoch is not None:
            raise ValueError("warm-up schedulers only support step() without an epoch")
        self._step_count = getattr(self, "_step_count", 0) + 1
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step()
            self._last_lr = list(self.successor.get_last_lr())
            return
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        successor_state = state.pop("successor", None)
        if isinstance(successor_state, LRScheduler):  # Dassl pickles the scheduler object
            successor_state = successor_state.state_dict()
        if successor_state is not None:
            successor_state = {k: v for k, v in successor_state.items() if k != "optimizer"}
            self.successor.load_state_dict(successor_state)
        self.__dict__.update(state)


class ConstantWarmupScheduler(_WarmupScheduler):
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        cons_lr: float,
    ) -> None:
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch)

    def warmup_lr(self, epoch: int) -> list[float]:
        return self._fixed_lr(self.cons_lr)


class LinearWarmupScheduler(_WarmupScheduler):
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        min_lr: float,
    ) -> None:
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch)

    def warmup_lr(self, epoch: int) -> list[float]:
        if epoch == 0:
            return self._fixed_lr(self.min_lr)
        return [lr * epoch / self.warmup_epoch for lr in self.base_lrs]


def _unknown(key: str, value: str, choices: tuple[str, ...]) -> ConfigError:
    hint = closest_name(value, choices)
    hint_text = f"; did you mean '{hint}'?" if hint else ""
    return ConfigError(f"Unknown {key} '{value}'{hint_text} (available: {', '.join(choices)})")


def _base_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: Any) -> LRScheduler:
    name = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    if name == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise ConfigError(
                f"OPTIM.STEPSIZE must be an int (or a one-item list) for single_step, "
                f"got {optim_cfg.STEPSIZE!r}"
            )
        if stepsize <= 0:
            stepsize = optim_cfg.MAX_EPOCH
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize, gamma=optim_cfg.GAMMA)
    if name == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise ConfigError(
                f"OPTIM.STEPSIZE must be a list of epochs for multi_step, got {stepsize!r}"
            )
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(stepsize), gamma=optim_cfg.GAMMA
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=float(optim_cfg.MAX_EPOCH)
        )
    raise _unknown("OPTIM.LR_SCHEDULER", name, AVAILABLE_SCHEDULERS)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: Any) -> LRScheduler:
    """Scheduler from OPTIM.*; call `step()` once per epoch, after its batches."""
    if optim_cfg.LR_SCHEDULER not in AVAILABLE_SCHEDULERS:
        raise _unknown("OPTIM.LR_SCHEDULER", optim_cfg.LR_SCHEDULER, AVAILABLE_SCHEDULERS)
    warmup_epoch = optim_cfg.WARMUP_EPOCH
    if warmup_epoch > 0 and optim_cfg.WARMUP_TYPE not in AVAILABLE_WARMUPS:
        raise _unknown("OPTIM.WARMUP_TYPE", optim_cfg.WARMUP_TYPE, AVAILABLE_WARMUPS)
    scheduler = _base_scheduler(optimizer, optim_cfg)
    if warmup_epoch <= 0:
        return scheduler
    if not optim_cfg.WARMUP_RECOUNT:
        scheduler.last_epoch = warmup_epoch
    if optim_cfg.WARMUP_TYPE == "constant":
        return ConstantWarmupScheduler(optimizer, scheduler, warmup_epoch, optim_cfg.WARMUP_CONS_LR)
    return LinearWarmupScheduler(optimizer, scheduler, warmup_epoch, optim_cfg.WARMUP_MIN_LR)
