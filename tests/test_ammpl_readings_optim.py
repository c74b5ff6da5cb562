"""AMMPL's learning-rate multipliers for N, f_T and f_I (PAD_LR_MULT, F_T_LR_MULT,
F_I_LR_MULT): one optimiser group each, on the schedule, through a resume on our engine and
on Dassl's, and checkpoints of the two-group layout of before still resume."""

from __future__ import annotations

import math

import pytest
import torch

from ammpl.engine import set_random_seed
from ammpl.integrations.dassl import register_ammpl_trainers
from ammpl.utils import CheckpointError
from tests.test_ammpl_trainer import GEN, TINY, args, make_trainer
from tests.test_integration_dassl import AMMPL_CONFIG, fake_dassl, fork_cfg

MULTS = {"P": 4.0, "pad": 2.0, "f_T": 3.0, "f_I": 0.5}
OPTS = [
    "TRAINER.AMMPL.P_LR_MULT",
    "4.0",
    "TRAINER.AMMPL.PAD_LR_MULT",
    "2.0",
    "TRAINER.AMMPL.F_T_LR_MULT",
    "3.0",
    "TRAINER.AMMPL.F_I_LR_MULT",
    "0.5",
]  # fmt: skip  (floats: Dassl's yacs does not turn an int into a float)
ONE_EPOCH = TINY + ["OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2"]


def group_names(trainer) -> list[set[str]]:
    """The parameter names of each optimiser group, in group order."""
    names = {id(p): n for n, p in trainer.model.prompt_learner.named_parameters()}
    return [{names[id(p)] for p in group["params"]} for group in trainer.optim.param_groups]


def family(name: str) -> str:
    return name.split(".")[0]


def momenta(trainer) -> dict[str, torch.Tensor]:
    state = trainer.optim.state
    return {
        n: state[p]["momentum_buffer"].clone()
        for n, p in trainer.model.prompt_learner.named_parameters()
        if p in state
    }


def check_groups(trainer, weight_decay: float) -> None:
    """Groups [main, P, pad, f_T, f_I]; each lr is its multiplier times the main lr."""
    groups = trainer.optim.param_groups
    names = group_names(trainer)
    assert [{family(n) for n in g} for g in names] == [{"ctx"}, {"P"}, {"pad"}, {"f_T"}, {"f_I"}]
    main_lr = groups[0]["lr"]
    for group, members in zip(groups[1:], names[1:]):
        mult = MULTS[family(next(iter(members)))]
        assert group["lr_mult"] == mult
        assert group["lr"] == pytest.approx(mult * main_lr, rel=1e-12)
        expected_decay = 0.0 if members == {"P"} else weight_decay
        assert group["weight_decay"] == expected_decay


def test_each_multiplier_gives_its_tensors_a_group_on_the_schedule(
    repo_root, benchmark_root, tmp_path
):
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY + OPTS
    argv += ["DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "4", "OPTIM.WARMUP_EPOCH", "1"]
    trainer = make_trainer(argv)
    optim = trainer.cfg.OPTIM
    all_names = {n for n, p in trainer.model.prompt_learner.named_parameters() if p.requires_grad}
    assert set().union(*group_names(trainer)) == all_names
    seen = []
    for _ in range(optim.MAX_EPOCH):
        check_groups(trainer, optim.WEIGHT_DECAY)
        seen.append(trainer.optim.param_groups[0]["lr"])
        trainer.optim.step()
        trainer.sched.step()
    cosine = [optim.LR * 0.5 * (1 + math.cos(math.pi * e / optim.MAX_EPOCH)) for e in range(3)]
    assert seen == pytest.approx([optim.WARMUP_CONS_LR, *cosine])


def test_a_multiplier_of_one_keeps_the_tensor_in_the_main_group(
    repo_root, benchmark_root, tmp_path
):
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY + ["DATASET.NUM_SHOTS", "1"]
    trainer = make_trainer(argv + ["TRAINER.AMMPL.F_T_LR_MULT", "3"])
    assert [{family(n) for n in g} for g in group_names(trainer)] == [
        {"ctx", "pad", "f_I"},
        {"P"},
        {"f_T"},
    ]


def test_a_multiplier_for_a_missing_tensor_is_a_note(repo_root, benchmark_root, tmp_path, capsys):
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY + ["DATASET.NUM_SHOTS", "1"]
    argv += ["TRAINER.AMMPL.INTERACT", "False", "TRAINER.AMMPL.F_I_LR_MULT", "2"]
    trainer = make_trainer(argv)
    assert [{family(n) for n in g} for g in group_names(trainer)] == [{"ctx", "pad"}, {"P"}]
    assert "Note: TRAINER.AMMPL.F_I_LR_MULT 2 has no effect: this model has no f_I" in (
        capsys.readouterr().out
    )


def test_the_groups_survive_a_resume(repo_root, benchmark_root, tmp_path):
    first = make_trainer(args(repo_root, benchmark_root, tmp_path / "a", GEN) + ONE_EPOCH + OPTS)
    first.train()
    saved = momenta(first)
    assert set(saved) == {n for g in group_names(first) for n in g}

    argv = args(repo_root, benchmark_root, tmp_path / "b", GEN) + ONE_EPOCH + OPTS
    argv += ["OPTIM.MAX_EPOCH", "2", "RESUME", str(tmp_path / "a")]
    resumed = make_trainer(argv)
    resumed.before_train()
    assert resumed.start_epoch == 1
    check_groups(resumed, resumed.cfg.OPTIM.WEIGHT_DECAY)
    assert resumed.optim.param_groups[0]["lr"] == pytest.approx(resumed.cfg.OPTIM.LR)
    restored = momenta(resumed)
    assert restored.keys() == saved.keys()
    for name, buffer in saved.items():
        torch.testing.assert_close(restored[name], buffer, rtol=0, atol=0, msg=name)
    resumed.train()  # epoch 2 trains on the restored groups
    check_groups(resumed, resumed.cfg.OPTIM.WEIGHT_DECAY)


def test_a_checkpoint_of_the_two_group_layout_resumes_with_the_defaults(
    repo_root, benchmark_root, tmp_path
):
    """Default multipliers build the optimiser of before (groups [everything but P], [P]),
    so its checkpoints resume; asking for another layout fails in the existing one line."""
    first = make_trainer(args(repo_root, benchmark_root, tmp_path / "a", GEN) + ONE_EPOCH)
    assert [{family(n) for n in g} for g in group_names(first)] == [
        {"ctx", "pad", "f_T", "f_I"},
        {"P"},
    ]
    first.train()
    resume = ["OPTIM.MAX_EPOCH", "2", "RESUME", str(tmp_path / "a")]
    same = make_trainer(args(repo_root, benchmark_root, tmp_path / "b", GEN) + ONE_EPOCH + resume)
    same.before_train()
    assert same.start_epoch == 1
    other = make_trainer(
        args(repo_root, benchmark_root, tmp_path / "c", GEN)
        + ONE_EPOCH
        + resume
        + ["TRAINER.AMMPL.PAD_LR_MULT", "2"]
    )
    with pytest.raises(CheckpointError, match="does not fit this run") as error:
        other.before_train()
    assert "\n" not in str(error.value)


def test_the_groups_survive_a_resume_on_dassl(repo_root, benchmark_root, tmp_path):
    opts = ONE_EPOCH + OPTS
    with fake_dassl() as dassl:
        register_ammpl_trainers(["AMMPL"])
        cfg = fork_cfg(
            dassl, repo_root, benchmark_root, tmp_path / "a", "AMMPL", AMMPL_CONFIG, 1, opts
        )
        set_random_seed(cfg.SEED)
        first = dassl.engine.build_trainer(cfg)
        check_groups(first, cfg.OPTIM.WEIGHT_DECAY)
        first.train()
        saved = momenta(first)

        opts = opts + ["OPTIM.MAX_EPOCH", 2, "RESUME", str(tmp_path / "a")]
        cfg = fork_cfg(
            dassl, repo_root, benchmark_root, tmp_path / "b", "AMMPL", AMMPL_CONFIG, 2, opts
        )
        set_random_seed(cfg.SEED)
        resumed = dassl.engine.build_trainer(cfg)
        resumed.before_train()  # Dassl's resume: optimiser and scheduler state
        assert resumed.start_epoch == 1
        check_groups(resumed, cfg.OPTIM.WEIGHT_DECAY)
        for name, buffer in momenta(resumed).items():
            torch.testing.assert_close(buffer, saved[name], rtol=0, atol=0, msg=name)
        resumed.train()
        check_groups(resumed, cfg.OPTIM.WEIGHT_DECAY)


def test_resuming_with_another_multiplier_set_is_a_one_line_error(
    repo_root, benchmark_root, tmp_path
):
    """f_T and f_I have as many tensors, so torch alone would swap their states."""
    f_t = ["TRAINER.AMMPL.F_T_LR_MULT", "3.0"]
    first = make_trainer(args(repo_root, benchmark_root, tmp_path / "a", GEN) + ONE_EPOCH + f_t)
    first.train()
    f_i = ["TRAINER.AMMPL.F_I_LR_MULT", "3.0", "RESUME", str(tmp_path / "a")]
    other = make_trainer(args(repo_root, benchmark_root, tmp_path / "b", GEN) + ONE_EPOCH + f_i)
    sizes = [len(g["params"]) for g in other.optim.param_groups]
    assert sizes == [len(g["params"]) for g in first.optim.param_groups]
    with pytest.raises(CheckpointError, match="holds f_T in the file and f_I in this run"):
        other.before_train()
