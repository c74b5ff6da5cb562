"""PromptSRC and KgCoOp trained by their trainers on fixture data (tiny backbone): GPA's
final model is the weighted sum of the per-epoch prompts and is what is tested and saved;
an interrupted run resumes to exactly the uninterrupted result (GPA state included); the
protocol scripts run end to end (KgCoOp's through tests/test_baselines_scripts.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from ammpl.engine.checkpoint import load_checkpoint
from tests._baselines_helpers import build_fixture_trainer
from tests.test_baselines_scripts import (
    TINY,
    dry_run,
    option,
    recorded_accuracy,
    run_script,
)

METHODS = {
    "PromptSRC": ("PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml", "VLPromptLearner"),
    "KgCoOp": ("KgCoOp/vit_b16_ep100_ctxv1.yaml", "prompt_learner"),
}
EPOCHS = 3


def build(repo_root: Path, data_root: Path, out: Path, method: str, opts: tuple = ()):
    config, _ = METHODS[method]
    gpa = ["TRAINER.PROMPTSRC.GPA_MEAN", "2", "TRAINER.PROMPTSRC.GPA_STD", "1"]
    return build_fixture_trainer(
        repo_root,
        config,
        1,
        [
            "TRAINER.NAME", method,
            "DATASET.ROOT", str(data_root),
            "DATASET.NUM_SHOTS", "4",
            "DATASET.SUBSAMPLE_CLASSES", "base",
            "OUTPUT_DIR", str(out),
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
            "DATALOADER.TEST.BATCH_SIZE", "8",
            "OPTIM.MAX_EPOCH", str(EPOCHS),
            "OPTIM.LR", "0.2",
            "SEED", "1",
        ],
        gpa if method == "PromptSRC" else [],
        opts,
    )  # fmt: skip


def trainable(trainer, method: str) -> dict[str, torch.Tensor]:
    module = trainer._models[METHODS[method][1]]
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def uninterrupted(repo_root, benchmark_root, tmp_path_factory):
    """Each method trained for EPOCHS epochs in one go; PromptSRC's per-epoch prompts kept."""
    runs = {}
    for method in METHODS:
        out = tmp_path_factory.mktemp(method)
        trainer = build(repo_root, benchmark_root, out, method)
        per_epoch = []
        if method == "PromptSRC":
            add = trainer.gpa.add

            def spy(epoch, tensors, add=add, per_epoch=per_epoch):
                per_epoch.append({k: v.detach().clone() for k, v in tensors.items()})
                add(epoch, tensors)

            trainer.gpa.add = spy
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            trainer.train()
        runs[method] = (out, trainer, per_epoch, stdout.getvalue())
    return runs


def test_gpa_final_model_is_the_weighted_sum_and_is_tested_and_saved(uninterrupted):
    out, trainer, per_epoch, log = uninterrupted["PromptSRC"]
    weights = trainer.gpa.weights
    assert len(per_epoch) == EPOCHS and weights.sum() == pytest.approx(1.0, abs=1e-12)
    final = trainable(trainer, "PromptSRC")
    assert set(final) == set(per_epoch[0])
    for name, value in final.items():
        expected = sum(float(w) * epoch[name].double() for w, epoch in zip(weights, per_epoch))
        assert torch.allclose(value.double(), expected, rtol=1e-6, atol=1e-7), name
        assert not torch.allclose(value, per_epoch[-1][name]), name  # not just the last epoch

    saved = load_checkpoint(out / "VLPromptLearner" / f"model.pth.tar-{EPOCHS}")
    for name, value in final.items():
        assert torch.equal(saved["state_dict"][name], value), name
    assert saved["gpa"]["epochs"] == list(range(EPOCHS))
    record = json.loads((out / "results.json").read_text())
    assert record["results"]["test"]["epoch"] == EPOCHS
    assert log.index("Using GPA model for final inference") < log.index("Finish training")
    assert "scl_text" in log and "scl_kl" in log  # the loss parts are logged


@pytest.mark.parametrize("method", sorted(METHODS))
def test_interrupted_run_resumes_exactly(
    repo_root, benchmark_root, tmp_path, uninterrupted, method
):
    _, reference, _, _ = uninterrupted[method]
    trainer = build(repo_root, benchmark_root, tmp_path, method)
    forward_backward = trainer.forward_backward

    def interrupt_in_last_epoch(batch):
        if trainer.epoch == EPOCHS - 1:
            raise KeyboardInterrupt
        return forward_backward(batch)

    trainer.forward_backward = interrupt_in_last_epoch
    with pytest.raises(KeyboardInterrupt):
        trainer.train()

    resumed = build(repo_root, benchmark_root, tmp_path, method)
    added = []
    if method == "PromptSRC":
        add = resumed.gpa.add
        resumed.gpa.add = lambda epoch, tensors: (added.append(epoch), add(epoch, tensors))
    resumed.train()
    assert resumed.start_epoch == EPOCHS - 1  # it resumed, it did not start over
    expected = trainable(reference, method)
    got = trainable(resumed, method)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    if method == "PromptSRC":
        assert added == [EPOCHS - 1]  # the earlier epochs came from the checkpoint
        assert resumed.gpa.epochs == reference.gpa.epochs == list(range(EPOCHS))
        for name, value in reference.gpa.total.items():
            assert torch.equal(resumed.gpa.total[name], value), name


def test_gpa_settings_are_checked_before_anything_is_built(repo_root, benchmark_root, tmp_path):
    from ammpl.utils import ConfigError

    with pytest.raises(ConfigError, match="GPA_STD must be > 0"):
        build(repo_root, benchmark_root, tmp_path, "PromptSRC", ("TRAINER.PROMPTSRC.GPA_STD", "0"))
    off = ("TRAINER.PROMPTSRC.GPA", "False", "TRAINER.PROMPTSRC.GPA_STD", "0")
    assert build(repo_root, benchmark_root, tmp_path, "PromptSRC", off).gpa is None


def test_resuming_without_gpa_state_is_an_error(repo_root, benchmark_root, tmp_path):
    from ammpl.utils import CheckpointError

    trainer = build(repo_root, benchmark_root, tmp_path, "PromptSRC")
    with pytest.raises(CheckpointError, match="holds no GPA state"):
        trainer._restore_extra_checkpoint_state({"epoch": 1})


# ------------------------------------------------------------------ scripts

B2N, XD, FEWSHOT = (
    "vit_b16_c2_ep20_batch4_4+4ctx",
    "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets",
    "vit_b16_c2_ep50_batch4_4+4ctx_few_shot",
)


def test_promptsrc_command_lines(repo_root, tmp_path):
    train = dry_run(repo_root, "promptsrc/base2new_train.sh", ["dtd", 1], tmp_path)
    assert (
        option(train, "--output-dir")
        == f"out/base2new/train_base/dtd/shots_16/PromptSRC/{B2N}/seed1"
    )
    test = dry_run(repo_root, "promptsrc/base2new_test.sh", ["dtd", 1], tmp_path)
    assert option(test, "--load-epoch") == "20"
    xd_train = dry_run(repo_root, "promptsrc/xd_train.sh", [2], tmp_path)
    assert option(xd_train, "--output-dir") == f"out/imagenet/PromptSRC/{XD}_16shots/seed2"
    xd_test = dry_run(repo_root, "promptsrc/xd_test.sh", ["imagenet_a", 2], tmp_path)
    assert option(xd_test, "--model-dir") == f"out/imagenet/PromptSRC/{XD}_16shots/seed2"
    assert option(xd_test, "--load-epoch") == "20"

    # few-shot: the 50-epoch config; GPA N(45, 5) for the fine-grained datasets, before
    # the user's overrides (which win, being later)
    fine = dry_run(repo_root, "promptsrc/fewshot.sh", ["eurosat", 4, 1, "X.Y", "1"], tmp_path)
    assert option(fine, "--output-dir") == f"out/eurosat/PromptSRC/{FEWSHOT}_4shots/seed1"
    assert fine[-8:] == ["DATASET.NUM_SHOTS", "4", "TRAINER.PROMPTSRC.GPA_MEAN", "45",
                         "TRAINER.PROMPTSRC.GPA_STD", "5", "X.Y", "1"]  # fmt: skip
    generic = dry_run(repo_root, "promptsrc/fewshot.sh", ["caltech101", 4, 1], tmp_path)
    assert generic[-2:] == ["DATASET.NUM_SHOTS", "4"]


def test_promptsrc_scripts_end_to_end(repo_root, benchmark_root, fast_python, tmp_path):
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    b2n = f"caltech101/shots_16/PromptSRC/{B2N}/seed1"
    xd = f"PromptSRC/{XD}_2shots"
    gpa = ["TRAINER.PROMPTSRC.GPA_MEAN", "1"]  # a 1-epoch run: keep the weight in range
    steps = [
        ("base2new_train.sh", ["caltech101", 1], f"base2new/train_base/{b2n}"),
        ("base2new_test.sh", ["caltech101", 1], f"base2new/test_new/{b2n}"),
        ("xd_train.sh", [1, 2], f"imagenet/{xd}/seed1"),
        ("xd_test.sh", ["oxford_pets", 1, 2], f"evaluation/{xd}/oxford_pets/seed1"),
        ("fewshot.sh", ["eurosat", 1, 1], f"eurosat/PromptSRC/{FEWSHOT}_1shots/seed1"),
    ]  # fmt: skip
    for script, args, out in steps:
        result = run_script(repo_root, f"promptsrc/{script}", [*args, *TINY, *gpa], env, tmp_path)
        assert result.returncode == 0, f"{script}: {result.stdout[-2000:]}\n{result.stderr}"
        assert 0.0 <= recorded_accuracy(tmp_path / out) <= 100.0, script
    assert "Using GPA model for final inference" in (tmp_path / steps[0][2] / "log.txt").read_text()
    assert "model.pth.tar-1" in (tmp_path / steps[1][2] / "log.txt").read_text()
