"""Checkpoints of the baselines through the real trainers on fixture data (BASELINES.md T10):
train one step on base classes, save, load into a model built for new classes; save → load
→ identical predictions; reference-format (full-model) checkpoints load; Q20 strictness."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from ammpl.trainers.ivlp import REFERENCE_KEY_MAP
from ammpl.utils import CheckpointError
from tests._baselines_helpers import build_fixture_trainer

METHODS = {
    "CoCoOp": ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", "prompt_learner"),
    "IVLP": ("IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml", "VLPromptLearner"),
    "DLP": ("IVLP", "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml", "VLPromptLearner"),
    "VPT": ("VPT", "VPT/vit_b16_c2_ep5_batch4_4.yaml", "prompt_learner"),
    "MaPLe": ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", "MultiModalPromptLearner"),
    "PromptSRC": ("PromptSRC", "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml", "VLPromptLearner"),
    "KgCoOp": ("KgCoOp", "KgCoOp/vit_b16_ep100_ctxv1.yaml", "prompt_learner"),
}
CLASS_BUFFERS = ("token_prefix", "token_suffix")


def build(repo_root: Path, data_root: Path, out: Path, method: str, subsample: str, seed: int):
    trainer, config, _ = METHODS[method]
    return build_fixture_trainer(
        repo_root,
        config,
        seed,
        [
            "TRAINER.NAME", trainer,
            "DATASET.ROOT", str(data_root),
            "DATASET.NUM_SHOTS", "2",
            "DATASET.SUBSAMPLE_CLASSES", subsample,
            "OUTPUT_DIR", str(out),
            "DATALOADER.TEST.BATCH_SIZE", "4",
        ],
    )  # fmt: skip


def one_training_step(trainer) -> None:
    trainer.set_model_mode("train")
    trainer.batch_idx, trainer.num_batches = 0, 2
    trainer.forward_backward(next(iter(trainer.train_loader_x)))


def trainable(trainer, method: str) -> dict[str, torch.Tensor]:
    module = trainer._models[METHODS[method][2]]
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def first_test_images(trainer) -> torch.Tensor:
    return next(iter(trainer.test_loader))["img"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_t10_base_to_new_round_trip(repo_root, benchmark_root, tmp_path, method):
    base = build(repo_root, benchmark_root, tmp_path / "base", method, "base", seed=1)
    before = trainable(base, method)
    one_training_step(base)
    trained = trainable(base, method)
    assert any(not torch.equal(before[n], trained[n]) for n in trained)
    base.save_model(0, str(tmp_path / "base"))

    name = METHODS[method][2]
    saved = torch.load(tmp_path / "base" / name / "model.pth.tar-1", weights_only=False)
    kept = {k for k in saved["state_dict"] if k.rsplit(".", 1)[-1] not in CLASS_BUFFERS}
    assert kept == set(trained)  # only trainable tensors (+ the class buffers)

    new = build(repo_root, benchmark_root, tmp_path / "new", method, "new", seed=2)
    new_module = new._models[name]
    buffers = {
        k: v.clone()
        for k, v in new_module.state_dict().items()
        if k.rsplit(".", 1)[-1] in CLASS_BUFFERS
    }
    new.load_model(str(tmp_path / "base"), epoch=1)
    loaded = trainable(new, method)
    assert set(loaded) == set(trained)
    for key, value in trained.items():
        assert torch.equal(loaded[key], value), key
    for key, value in buffers.items():  # rebuilt from the new class names, not the saved ones
        assert torch.equal(new_module.state_dict()[key], value)
        assert value.shape[0] == new.num_classes != base.num_classes

    again = build(repo_root, benchmark_root, tmp_path / "again", method, "base", seed=3)
    again.load_model(str(tmp_path / "base"), epoch=1)
    base.set_model_mode("eval")
    again.set_model_mode("eval")
    image = first_test_images(base)
    assert torch.equal(again.model_inference(image), base.model_inference(image))


def to_reference_key(key: str) -> str:
    """Our key → the reference repository's (the inverse of REFERENCE_KEY_MAP)."""
    for pattern, target in (
        (r"^vision_prompts\.shallow$", "image_encoder.VPT"),
        (r"^vision_prompts\.deep\.(\d+)$", r"image_encoder.transformer.resblocks.\1.VPT_shallow"),
        (r"^text_prompts\.deep\.(\d+)$", r"text_encoder.transformer.resblocks.\1.VPT_shallow"),
    ):
        if re.match(pattern, key):
            return re.sub(pattern, target, key)
    return key


@pytest.mark.parametrize("method", sorted(METHODS))
def test_reference_format_checkpoint_loads(repo_root, benchmark_root, tmp_path, method):
    """A reference checkpoint: whole model incl. frozen CLIP (MaPLe/IVLP/VPT), fp16 ctx,
    buffers of other classes; frozen tensors in it are ignored, trainables all load."""
    assert len(REFERENCE_KEY_MAP) == 3
    source = build(repo_root, benchmark_root, tmp_path / "src", method, "base", seed=4)
    name = METHODS[method][2]
    generator = torch.Generator().manual_seed(0)
    reference, expected = {}, {}
    for key, value in source._models[name].state_dict().items():
        if key in trainable(source, method):
            new_value = torch.randn(value.shape, generator=generator) * 0.1
            if key.endswith("ctx"):
                new_value = new_value.half()  # the reference's fp16 context
            expected[key] = new_value.float()
            reference[to_reference_key(key)] = new_value
        elif key.startswith(("image_encoder.", "text_encoder.", "logit_scale")) or key.endswith(
            CLASS_BUFFERS
        ):
            reference[key] = torch.zeros_like(value)  # frozen CLIP weights / stale buffers
    folder = tmp_path / "reference" / name
    folder.mkdir(parents=True)
    torch.save({"state_dict": reference, "epoch": 5, "optimizer": None, "scheduler": None,
                "val_result": None}, folder / "model.pth.tar-5")  # fmt: skip

    target = build(repo_root, benchmark_root, tmp_path / "dst", method, "new", seed=5)
    frozen_before = {n: p.clone() for n, p in target._models[name].named_parameters()
                     if not p.requires_grad}  # fmt: skip
    target.load_model(str(tmp_path / "reference"), epoch=5)
    loaded = trainable(target, method)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    for key, value in target._models[name].named_parameters():
        if not value.requires_grad:
            assert torch.equal(value, frozen_before[key]), key

    missing = dict(reference)
    missing.pop(to_reference_key(next(iter(expected))))
    torch.save({"state_dict": missing, "epoch": 6}, folder / "model.pth.tar-6")
    with pytest.raises(CheckpointError):
        target.load_model(str(tmp_path / "reference"), epoch=6)
