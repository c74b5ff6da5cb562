"""AMMPL's optimiser groups (P: lr × P_LR_MULT, no weight decay) and its mask statistics."""

from __future__ import annotations

import math

import pytest
import torch

from ammpl.trainers.ammpl.mask_stats import MaskCounter, format_mask_line, mask_statistics
from tests.test_ammpl_trainer import CSC, GEN, TINY, args, make_trainer


def groups_by_tensor(trainer):
    pl = trainer.model.prompt_learner
    groups = trainer.optim.param_groups
    p_group = next(g for g in groups if any(p is pl.P for p in g["params"]))
    others = [g for g in groups if g is not p_group]
    return p_group, others


@pytest.mark.parametrize("mult", [1.0, 4.0])
def test_p_has_its_own_group_without_weight_decay(repo_root, benchmark_root, tmp_path, mult):
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY
    argv += ["DATASET.NUM_SHOTS", "1", "OPTIM.WARMUP_EPOCH", "0"]
    argv += ["TRAINER.AMMPL.P_LR_MULT", str(mult)]
    trainer = make_trainer(argv)
    cfg = trainer.cfg
    p_group, others = groups_by_tensor(trainer)
    assert p_group["params"] == [trainer.model.prompt_learner.P]
    assert p_group["weight_decay"] == 0.0
    assert p_group["lr"] == pytest.approx(cfg.OPTIM.LR * mult)
    assert trainer.optim.param_groups[0] is others[0]  # the logged lr is the main group's
    rest = [p for g in others for p in g["params"]]
    names = {n for n, p in trainer.model.prompt_learner.named_parameters() if p.requires_grad}
    assert len(rest) == len(names) - 1
    for group in others:
        assert group["weight_decay"] == cfg.OPTIM.WEIGHT_DECAY > 0
        assert group["lr"] == pytest.approx(cfg.OPTIM.LR)


@pytest.mark.parametrize("warmup", ["constant", "linear"])
def test_scheduler_keeps_p_at_mult_times_the_lr_every_epoch(
    repo_root, benchmark_root, tmp_path, warmup
):
    mult = 3.0
    argv = args(repo_root, benchmark_root, tmp_path, CSC) + TINY
    argv += ["DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "6", "TRAINER.AMMPL.P_LR_MULT", "3"]
    argv += ["OPTIM.WARMUP_EPOCH", "2", "OPTIM.WARMUP_TYPE", warmup]
    trainer = make_trainer(argv)
    optim = trainer.cfg.OPTIM
    p_group, others = groups_by_tensor(trainer)
    seen = []
    for epoch in range(optim.MAX_EPOCH):
        main_lr = others[0]["lr"]
        seen.append(main_lr)
        assert p_group["lr"] == pytest.approx(mult * main_lr, rel=1e-12), epoch
        trainer.optim.step()  # no gradients: changes nothing, keeps torch's order check quiet
        trainer.sched.step()
    # the main group still follows Dassl's schedule: warm-up, then the recounted cosine
    first = optim.WARMUP_CONS_LR if warmup == "constant" else optim.WARMUP_MIN_LR
    assert seen[0] == pytest.approx(first)
    cosine = [optim.LR * 0.5 * (1 + math.cos(math.pi * e / optim.MAX_EPOCH)) for e in range(4)]
    assert seen[2:] == pytest.approx(cosine)


def test_bad_p_lr_mult_is_a_config_error(repo_root, benchmark_root, tmp_path):
    from ammpl.utils import ConfigError

    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY
    with pytest.raises(ConfigError, match="P_LR_MULT"):
        make_trainer(argv + ["TRAINER.AMMPL.P_LR_MULT", "-1"])


def test_no_mask_no_p_group(repo_root, benchmark_root, tmp_path):
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY
    argv += ["DATASET.NUM_SHOTS", "1", "TRAINER.AMMPL.MASK", "False", "TRAINER.AMMPL.PAD", "False"]
    trainer = make_trainer(argv)
    assert len(trainer.optim.param_groups) == 1
    assert trainer.mask_stats() is None


# -- mask statistics ------------------------------------------------------------------


def test_mask_statistics_of_a_known_p():
    P = torch.tensor([[[0.2, 0.9], [1.3, 0.6]], [[0.4, 0.45], [-0.1, 0.5]]])
    stats = mask_statistics(P, torch.tensor([0.125, 0.375]))
    keep = torch.tensor([0.2, 0.9, 1.0, 0.6, 0.4, 0.45, 0.0, 0.5])
    assert stats["keep_mean"] == pytest.approx(keep.mean().item(), abs=1e-6)
    assert stats["keep_std"] == pytest.approx(keep.std(unbiased=False).item(), abs=1e-6)
    assert stats["below_half"] == pytest.approx(4 / 8)
    assert stats["train_masked"] == 0.25
    assert stats["keep_mean_min"] == pytest.approx((0.4 + 0.45 + 0.0 + 0.5) / 4, abs=1e-6)
    assert stats["keep_mean_max"] == pytest.approx((0.2 + 0.9 + 1.0 + 0.6) / 4, abs=1e-6)
    assert (stats["below_half_min"], stats["below_half_max"]) == (0.25, 0.75)
    assert (stats["train_masked_min"], stats["train_masked_max"]) == (0.125, 0.375)
    shared = mask_statistics(P[0], None)
    assert "keep_mean_min" not in shared and shared["train_masked"] is None
    line = format_mask_line(2, 5, stats)
    assert line.startswith("AMMPL mask epoch [2/5]") and "\n" not in line
    assert "50.00%" in line and "25.00%" in line


def test_mask_counter_counts_masked_patches_per_class():
    counter = MaskCounter()
    assert counter.fraction() is None and counter.per_class() is None
    first = torch.ones(2, 3, 2, 2)  # (B, C, b, b)
    first[0, 0, 0, 0] = first[1, 0, 1, 1] = first[0, 2] = 0  # class 0: 2, class 2: 4 of 8
    counter.update(first)
    counter.update(torch.ones(1, 3, 2, 2))  # 4 more patches per class, none masked
    torch.testing.assert_close(
        counter.per_class(), torch.tensor([2 / 12, 0.0, 4 / 12], dtype=torch.float64)
    )
    assert counter.fraction() == pytest.approx(6 / 36)
    counter.reset()
    assert counter.fraction() is None
