"""Optimisers and the per-epoch learning-rate tables (DASSL_API §7, BASELINES §1.6)."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
from torch import nn

from ammpl.engine import build_lr_scheduler, build_optimizer, get_cfg_default
from ammpl.engine.lr_scheduler import ConstantWarmupScheduler, LinearWarmupScheduler
from ammpl.utils.errors import ConfigError


def optim_cfg(**values):
    cfg = get_cfg_default()
    for key, value in values.items():
        cfg.OPTIM[key] = value
    return cfg.OPTIM


def clip_cfg(lr, epochs, warmup_type="constant", warmup=1, **extra):
    """The CLIP trainer configs: sgd, cosine, warm-up."""
    return optim_cfg(
        NAME="sgd",
        LR=lr,
        MAX_EPOCH=epochs,
        LR_SCHEDULER="cosine",
        WARMUP_EPOCH=warmup,
        WARMUP_TYPE=warmup_type,
        **extra,
    )


def lr_per_epoch(cfg, epochs=None):
    """lr read before each epoch, with one optimizer step and one scheduler step per epoch."""
    param = nn.Parameter(torch.zeros(3))
    optimizer = build_optimizer([param], cfg)
    scheduler = build_lr_scheduler(optimizer, cfg)
    values = []
    for _ in range(epochs or cfg.MAX_EPOCH):
        values.append(optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr()[0] == values[-1]
        optimizer.step()
        scheduler.step()
    return values


def cosine_after_warmup(lr, epochs, warm_values):
    """Closed form: the W warm-up values, then LR·½(1+cos(π(e−W)/MAX_EPOCH)) for e ≥ W."""
    warmup = len(warm_values)
    cosine = [lr * 0.5 * (1 + math.cos(math.pi * k / epochs)) for k in range(epochs - warmup)]
    return list(warm_values) + cosine


def assert_close(actual, expected, rel=1e-9):
    assert len(actual) == len(expected)
    for epoch, (a, e) in enumerate(zip(actual, expected)):
        assert a == pytest.approx(e, rel=rel, abs=0), f"epoch {epoch}: {a} != {e}"


# (config, exact per-epoch values, printed values from the spec tables, their rel. precision)
TABLE = {
    "maple_ivlp_0.0035_5ep": (
        clip_cfg(0.0035, 5),
        cosine_after_warmup(0.0035, 5, [1e-5]),
        [1.0000e-05, 3.5000e-03, 3.1658e-03, 2.2908e-03, 1.2092e-03],
    ),
    "dlp_vpt_0.0025_5ep": (
        clip_cfg(0.0025, 5),
        cosine_after_warmup(0.0025, 5, [1e-5]),
        [1.0000e-05, 2.5000e-03, 2.2613e-03, 1.6363e-03, 8.6373e-04],
    ),
    "cocoop_0.002_10ep": (
        clip_cfg(0.002, 10),
        cosine_after_warmup(0.002, 10, [1e-5]),
        [
            1.0000e-05,
            2.0000e-03,
            1.9511e-03,
            1.8090e-03,
            1.5878e-03,
            1.3090e-03,
            1.0000e-03,
            6.9098e-04,
            4.1221e-04,
            1.9098e-04,
        ],
    ),  # fmt: skip
    "maple_xd_0.0026_2ep": (
        clip_cfg(0.0026, 2),
        [1e-5, 0.0026],
        [1.0000e-05, 2.6000e-03],
    ),
    "coop_0.002_200ep": (
        clip_cfg(0.002, 200),
        cosine_after_warmup(0.002, 200, [1e-5]),
        [1e-5, 0.002, 0.0019999, 0.0019995] + [None] * 195 + [4.9344e-07],
    ),
    "sgd_0.01_12ep_linear3": (
        clip_cfg(0.01, 12, warmup_type="linear", warmup=3),
        cosine_after_warmup(0.01, 12, [1e-5, 0.01 / 3, 0.02 / 3]),
        [1e-5, 0.0033333, 0.0066667, 0.01, 0.0098296, 0.0093301, 0.0085355] + [None] * 5,
    ),
    "sgd_0.1_10ep_no_warmup": (
        clip_cfg(0.1, 10, warmup=-1),
        cosine_after_warmup(0.1, 10, []),
        [0.1, 0.0975528, 0.0904508, 0.0793893, 0.0654508, 0.05] + [None] * 4,
    ),
    "adamw_multistep": (
        optim_cfg(
            NAME="adamw",
            LR=0.001,
            MAX_EPOCH=12,
            LR_SCHEDULER="multi_step",
            STEPSIZE=(5, 8),
            GAMMA=0.5,
        ),
        [0.001] * 5 + [0.0005] * 3 + [0.00025] * 4,
        [0.001] * 5 + [0.0005] * 3 + [0.00025] * 4,
    ),  # fmt: skip
    "adam_single_step": (
        optim_cfg(NAME="adam", LR=0.001, MAX_EPOCH=30, LR_SCHEDULER="single_step", STEPSIZE=(10,)),
        [0.001] * 10 + [0.0001] * 10 + [1e-5] * 10,
        [0.001] * 10 + [0.0001] * 10 + [1e-5] * 10,
    ),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_lr_table(name):
    cfg, exact, printed = TABLE[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch deprecation/ordering warnings either
        actual = lr_per_epoch(cfg)
    assert_close(actual, exact)
    for epoch, (a, p) in enumerate(zip(actual, printed)):
        if p is not None:  # the spec prints 5 significant digits
            assert a == pytest.approx(p, rel=6e-5), f"epoch {epoch}: {a} vs table {p}"


def test_baselines_formula_for_clip_configs():
    """BASELINES §1.6: lr(0) = 1e-5, lr(e) = LR·½(1+cos(π(e−1)/MAX_EPOCH)) for e ≥ 1."""
    for lr, epochs in [(0.0035, 5), (0.002, 200), (0.0026, 2)]:
        expected = [1e-5] + [
            lr * 0.5 * (1 + math.cos(math.pi * (e - 1) / epochs)) for e in range(1, epochs)
        ]
        assert_close(lr_per_epoch(clip_cfg(lr, epochs)), expected)


def test_single_step_without_stepsize_uses_max_epoch():
    values = lr_per_epoch(optim_cfg(LR=0.1, MAX_EPOCH=4), epochs=6)
    assert_close(values, [0.1] * 4 + [0.01] * 2)


def test_no_recount_starts_successor_at_warmup_epoch():
    """Dassl's WARMUP_RECOUNT False: torch's chained cosine continues from the full LR."""
    lr, epochs = 0.0035, 5
    values = lr_per_epoch(clip_cfg(lr, epochs, WARMUP_RECOUNT=False))
    scale = 2 / (1 + math.cos(math.pi / epochs))
    expected = [1e-5, lr] + [
        lr * scale * 0.5 * (1 + math.cos(math.pi * e / epochs)) for e in range(2, epochs)
    ]
    assert_close(values, expected)


@pytest.mark.parametrize("warmup_type", ["constant", "linear"])
def test_warmup_state_round_trip_continues_identically(warmup_type):
    cfg = clip_cfg(0.01, 8, warmup_type=warmup_type, warmup=2)
    reference = lr_per_epoch(cfg)

    param = nn.Parameter(torch.zeros(3))
    optimizer = build_optimizer([param], cfg)
    scheduler = build_lr_scheduler(optimizer, cfg)
    assert isinstance(
        scheduler, ConstantWarmupScheduler if warmup_type == "constant" else LinearWarmupScheduler
    )
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    param2 = nn.Parameter(torch.zeros(3))
    optimizer2 = build_optimizer([param2], cfg)
    scheduler2 = build_lr_scheduler(optimizer2, cfg)
    optimizer2.load_state_dict(saved["optimizer"])
    scheduler2.load_state_dict(saved["scheduler"])
    resumed = []
    for _ in range(5):
        resumed.append(optimizer2.param_groups[0]["lr"])
        optimizer2.step()
        scheduler2.step()
    assert_close(resumed, reference[3:])


def test_unknown_scheduler_and_warmup_names():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="cosin"))
    with pytest.raises(ConfigError, match="OPTIM.WARMUP_TYPE 'constnt'; did you mean 'constant'"):
        build_lr_scheduler(optimizer, optim_cfg(WARMUP_EPOCH=1, WARMUP_TYPE="constnt"))
    with pytest.raises(ConfigError, match="list of epochs for multi_step"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=5))


class TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)


@pytest.mark.parametrize(
    "name, cls, checks",
    [
        ("adam", torch.optim.Adam, {"betas": (0.8, 0.95), "amsgrad": False}),
        ("amsgrad", torch.optim.Adam, {"amsgrad": True}),
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "dampening": 0, "nesterov": False}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.99, "momentum": 0.9}),
        ("radam", torch.optim.RAdam, {"betas": (0.8, 0.95)}),
        ("adamw", torch.optim.AdamW, {"betas": (0.8, 0.95)}),
    ],
)
def test_optimizers(name, cls, checks):
    cfg = optim_cfg(NAME=name, LR=0.01, ADAM_BETA1=0.8, ADAM_BETA2=0.95)
    optimizer = build_optimizer(TwoPart(), cfg)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 5e-4
    for key, value in checks.items():
        assert group[key] == value, key


def test_model_params_and_param_groups_are_accepted():
    model = TwoPart()
    cfg = optim_cfg(NAME="sgd", LR=0.1)
    from_module = build_optimizer(model, cfg)
    assert len(from_module.param_groups[0]["params"]) == 4
    from_iterable = build_optimizer(iter(model.head.parameters()), cfg)
    assert len(from_iterable.param_groups[0]["params"]) == 2
    groups = [{"params": model.head.parameters(), "lr": 0.5}]
    from_groups = build_optimizer(model, cfg, param_groups=groups)
    assert from_groups.param_groups[0]["lr"] == 0.5


def test_staged_lr():
    model = TwoPart()
    cfg = optim_cfg(NAME="sgd", LR=0.1, STAGED_LR=True, NEW_LAYERS=("head",), BASE_LR_MULT=0.1)
    optimizer = build_optimizer(model, cfg)
    base, new = optimizer.param_groups
    assert base["lr"] == pytest.approx(0.01) and new["lr"] == 0.1
    assert {id(p) for p in new["params"]} == {id(p) for p in model.head.parameters()}
    with pytest.raises(ConfigError, match="not children of the model"):
        build_optimizer(model, optim_cfg(STAGED_LR=True, NEW_LAYERS=("neck",)))
    with pytest.raises(ConfigError, match="needs an nn.Module"):
        build_optimizer(list(model.parameters()), optim_cfg(STAGED_LR=True))


def test_unknown_optimizer_and_empty_params():
    with pytest.raises(ConfigError, match="Unknown OPTIM.NAME 'sgdd'; did you mean 'sgd'"):
        build_optimizer(TwoPart(), optim_cfg(NAME="sgdd"))
    with pytest.raises(ConfigError, match="no parameters"):
        build_optimizer([], optim_cfg())
