"""Fake `dassl.optim.lr_scheduler`, written from Dassl's contract: a successor schedule
(cosine here) wrapped in a constant or linear warm-up for the first WARMUP_EPOCH epochs.

It keeps the one defect of the original that matters on new torch: the warm-up base class
passes its `verbose` argument positionally to `_LRScheduler.__init__`, which torch ≥ 2.10
rejects with a TypeError. `ammpl.integrations.dassl` must repair that when it registers.
"""

import torch
from torch.optim.lr_scheduler import _LRScheduler


class _BaseWarmupScheduler(_LRScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch, verbose)  # the defect, kept on purpose

    def step(self, epoch=None):
        if self.last_epoch < self.warmup_epoch:
            super().step(epoch)
            return
        self.successor.step(epoch)
        self._last_lr = self.successor.get_last_lr()


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1, verbose=False):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch, verbose)

    def get_lr(self):
        if self.last_epoch < self.warmup_epoch:
            return [self.cons_lr] * len(self.base_lrs)
        return self.successor.get_last_lr()


class LinearWarmupScheduler(_BaseWarmupScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, min_lr, last_epoch=-1, verbose=False):
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch, verbose)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        if self.last_epoch == 0:
            return [self.min_lr] * len(self.base_lrs)
        return [base * self.last_epoch / self.warmup_epoch for base in self.base_lrs]


def build_lr_scheduler(optimizer, optim_cfg):
    """Cosine over MAX_EPOCH, wrapped in the configured warm-up (the CoOp configs' choice)."""
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(optim_cfg.MAX_EPOCH))
    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        if optim_cfg.WARMUP_TYPE == "constant":
            return ConstantWarmupScheduler(
                optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_CONS_LR
            )
        if optim_cfg.WARMUP_TYPE == "linear":
            return LinearWarmupScheduler(
                optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_MIN_LR
            )
        raise ValueError(f"unknown warm-up type {optim_cfg.WARMUP_TYPE}")
    return scheduler
