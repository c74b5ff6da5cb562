"""`register_ammpl_trainers()` repairs the original Dassl's warm-up schedulers on torch ≥ 2.10
(issue 9, item 8), tested on the fake Dassl, whose warm-up base class keeps the original's
defect (`verbose` passed positionally to `_LRScheduler.__init__`)."""

from __future__ import annotations

import importlib
import inspect
import math

import pytest
import torch
from test_integration_dassl import fake_dassl
from yacs.config import CfgNode as CN

from ammpl.integrations.dassl import register_ammpl_trainers
from ammpl.integrations.dassl_schedulers import repair_warmup_schedulers

pytestmark = pytest.mark.skipif(
    "verbose" in inspect.signature(torch.optim.lr_scheduler.LRScheduler.__init__).parameters,
    reason="this torch still accepts `verbose`: Dassl's schedulers work unrepaired",
)


def fork_optim(warmup_type: str = "constant") -> CN:
    """The OPTIM node of CoOp's configs (one constant warm-up epoch, then cosine)."""
    optim = CN()
    optim.MAX_EPOCH, optim.WARMUP_EPOCH, optim.WARMUP_TYPE = 3, 1, warmup_type
    optim.WARMUP_CONS_LR, optim.WARMUP_MIN_LR, optim.WARMUP_RECOUNT = 1e-5, 1e-5, True
    return optim


def lr_sequence(build, epochs: int = 3) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build(optimizer, fork_optim())
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_registering_repairs_the_warmup_schedulers_once(capsys):
    with fake_dassl():
        optim = importlib.import_module("dassl.optim")
        with pytest.raises(TypeError, match="positional argument"):
            lr_sequence(optim.build_lr_scheduler)  # what a fork's own CoOp hits on new torch
        capsys.readouterr()
        register_ammpl_trainers()
        notices = [line for line in capsys.readouterr().out.splitlines() if "repaired" in line]
        assert notices == [
            f"ammpl: repaired Dassl's warm-up schedulers for torch {torch.__version__} (they "
            "pass `verbose` to LRScheduler.__init__, which torch ≥ 2.10 no longer accepts)"
        ]
        cosine_epoch_1 = 0.1 * (1 + math.cos(math.pi / 3)) / 2
        assert lr_sequence(optim.build_lr_scheduler) == pytest.approx([1e-5, 0.1, cosine_epoch_1])
        linear = fork_optim("linear")
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        assert optim.build_lr_scheduler(opt, linear).get_last_lr() == [1e-5]

        register_ammpl_trainers()  # again: nothing left to repair, no second notice
        assert "repaired" not in capsys.readouterr().out
        assert repair_warmup_schedulers() is False


def test_an_already_fixed_dassl_is_left_alone(capsys):
    with fake_dassl():
        module = importlib.import_module("dassl.optim.lr_scheduler")
        base = module._BaseWarmupScheduler

        def fixed_init(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
            self.successor, self.warmup_epoch = successor, warmup_epoch
            torch.optim.lr_scheduler._LRScheduler.__init__(self, optimizer, last_epoch)

        base.__init__ = fixed_init
        register_ammpl_trainers()
        assert base.__init__ is fixed_init
        assert "repaired" not in capsys.readouterr().out
        assert lr_sequence(module.build_lr_scheduler)[0] == pytest.approx(1e-5)


def test_without_a_dassl_scheduler_module_nothing_happens(monkeypatch):
    import ammpl.integrations.dassl_schedulers as repair

    monkeypatch.setattr(repair, "_scheduler_module", lambda: None)
    assert repair.repair_warmup_schedulers() is False
