"""MMA (multi-modal adapter): trainable names and counts (tiny and ViT-B/16), the adapter
branch beside the right blocks of both towers against a plain restatement on open_clip's
own blocks (forward and the reference's gradient scaling), config checks, and an
interrupted run resuming exactly."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from ammpl.trainers.mma import MMACLIP
from ammpl.utils import ConfigError
from tests._baselines_helpers import (
    CLASSNAMES,
    D_T,
    D_V,
    assert_close,
    build_fixture_trainer,
    images,
    method_node,
    normalise,
    tiny_clip,
)

R = 8  # adapter width used on the tiny backbone


def tower_count(width: int, r: int = R) -> int:
    return width * r + r + r * width + width


def node(**values):
    base = dict(ADAPTER_START=2, ADAPTER_END=3, ADAPTER_DIM=R, ADAPTER_SCALE=0.5)
    return method_node("MMADAPTER", TEXT_CTX_INIT="a photo of a", **{**base, **values})


@pytest.fixture(scope="module")
def clip3():
    return tiny_clip(seed=1, layers=3)


def test_trainable_names_shapes_and_counts(clip3):
    model = MMACLIP(node(), CLASSNAMES, clip3)
    names = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    expected = {}
    for layer in (2, 3):
        for tower, width in (("text", D_T), ("visual", D_V)):
            expected[f"adapter_learner.{tower}_adapter.{layer}.down.0.weight"] = (R, width)
            expected[f"adapter_learner.{tower}_adapter.{layer}.down.0.bias"] = (R,)
            expected[f"adapter_learner.{tower}_adapter.{layer}.up.weight"] = (width, R)
            expected[f"adapter_learner.{tower}_adapter.{layer}.up.bias"] = (width,)
        expected[f"adapter_learner.shared_adapter.{layer}.0.weight"] = (R, R)
        expected[f"adapter_learner.shared_adapter.{layer}.0.bias"] = (R,)
    assert names == expected
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == 2 * (tower_count(D_T) + tower_count(D_V) + R * R + R)
    assert model(images(2)).shape == (2, len(CLASSNAMES))


def plain_adapter(learner, tower: str, layer: int, normed: torch.Tensor) -> torch.Tensor:
    adapters = getattr(learner, f"{tower}_adapter")
    hidden = adapters[layer].down(normed)
    return adapters[layer].up(learner.shared_adapter[layer](hidden)) * learner.adapter_scale


def plain_blocks(transformer, x, learner, tower, mask=None):
    """open_clip's own blocks (batch-first) with the adapter added beside layers 2..3."""
    for index, block in enumerate(transformer.resblocks):
        layer = index + 1
        out = block(x, attn_mask=mask)
        if learner.text_adapter[layer] is not None:
            out = out + plain_adapter(learner, tower, layer, block.ln_1(x))
        x = out
    return x


def plain_logits(model: MMACLIP, clip_model, image: torch.Tensor) -> torch.Tensor:
    learner = model.adapter_learner
    # image tower, as open_clip's VisionTransformer.forward
    visual = clip_model.visual
    x = visual.conv1(image).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
    x = visual.ln_pre(x + visual.positional_embedding)
    x = plain_blocks(visual.transformer, x, learner, "visual")
    image_features = visual.ln_post(x[:, 0]) @ visual.proj
    # text tower, as open_clip's encode_text on the tokens
    tokens = model.prompt_embeddings + clip_model.positional_embedding
    x = plain_blocks(clip_model.transformer, tokens, learner, "text", clip_model.attn_mask)
    x = clip_model.ln_final(x)
    text = x[torch.arange(x.shape[0]), model.eot_indices] @ clip_model.text_projection
    scale = clip_model.logit_scale.exp()
    return scale * normalise(image_features) @ normalise(text).t()


def test_adapters_sit_beside_the_configured_blocks_of_both_towers(clip3):
    assert clip3.transformer.batch_first and clip3.visual.transformer.batch_first
    torch.manual_seed(0)
    model = MMACLIP(node(), CLASSNAMES, clip3)
    with torch.no_grad():  # adapters off their init (zero biases would hide a misplacement)
        for param in model.adapter_learner.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    learner = model.adapter_learner
    assert [i for i, a in enumerate(learner.visual_adapter) if a is not None] == [2, 3]
    image = images(2)
    model.train()
    logits = model(image)
    expected = plain_logits(model, clip3, image)
    assert_close(logits, expected, 1e-5)
    # the branch changes the output (not a no-op), and only blocks 2..3 carry it
    without = MMACLIP(node(ADAPTER_START=3), CLASSNAMES, clip3)
    without.adapter_learner.load_state_dict(learner.state_dict(), strict=False)
    assert (without(image) - logits).abs().max() > 1e-4

    # gradients: the reference's scaling layers make the adapters' gradients 1/s times the
    # plain ones (as if s were 1)
    label = torch.tensor([0, 2])
    params = dict(learner.named_parameters())
    ours = torch.autograd.grad(F.cross_entropy(logits, label), list(params.values()))
    plain = torch.autograd.grad(F.cross_entropy(expected, label), list(params.values()))
    for got, want in zip(ours, plain):
        assert_close(got, want / learner.adapter_scale, 1e-4)


def test_gradient_reaching_the_block_input_is_the_true_one(clip3):
    """The scaling pair cancels for the frozen tower: d/dx of the branch is unscaled."""
    model = MMACLIP(node(ADAPTER_SCALE=0.25), CLASSNAMES, clip3)
    learner = model.adapter_learner
    normed = torch.randn(2, 5, D_T, requires_grad=True)
    out = learner.text_branch(1, normed)  # block index 1 = layer 2
    (grad,) = torch.autograd.grad(out.square().sum(), normed)
    normed2 = normed.detach().requires_grad_(True)
    plain = plain_adapter(learner, "text", 2, normed2)
    (want,) = torch.autograd.grad(plain.square().sum(), normed2)
    assert_close(grad, want, 1e-5)
    assert learner.text_branch(0, normed) is None  # layer 1 has no adapter


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(ADAPTER_START=0), "layer 0"),
        (dict(ADAPTER_START=3, ADAPTER_END=2), "start"),
        (dict(ADAPTER_DIM=0), "ADAPTER_DIM"),
        (dict(ADAPTER_SCALE=0.0), "ADAPTER_SCALE"),
    ],
)
def test_bad_settings_are_one_line_config_errors(clip3, values, message):
    with pytest.raises(ConfigError, match=message):
        MMACLIP(node(**values), CLASSNAMES, clip3)


def test_paper_layers_beyond_a_shallow_tower_use_its_top_block(clip3, capsys):
    model = MMACLIP(node(ADAPTER_START=5, ADAPTER_END=12), CLASSNAMES, clip3)
    assert list(model.adapter_learner.layers) == [3]
    assert "text adapter layers 5..12 beyond the 3 blocks; using 3..3" in capsys.readouterr().out


EPOCHS = 2


def build(repo_root, data_root, out):
    return build_fixture_trainer(
        repo_root,
        "MMA/vit_b16_ep5.yaml",
        1,
        [
            "TRAINER.NAME", "MMA", "DATASET.ROOT", str(data_root), "DATASET.NUM_SHOTS", "2",
            "OUTPUT_DIR", str(out), "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
            "DATALOADER.TEST.BATCH_SIZE", "8", "OPTIM.MAX_EPOCH", str(EPOCHS),
            "OPTIM.LR", "0.5", "TRAINER.MMADAPTER.PREC", "fp32",
            "TRAINER.MMADAPTER.ADAPTER_START", "1", "TRAINER.MMADAPTER.ADAPTER_SCALE", "0.1",
        ],
    )  # fmt: skip


def weights(trainer) -> dict[str, torch.Tensor]:
    module = trainer._models["adapter_learner"]
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_interrupted_run_resumes_exactly(repo_root, benchmark_root, tmp_path):
    reference = build(repo_root, benchmark_root, tmp_path / "full")
    start = weights(reference)
    with contextlib.redirect_stdout(io.StringIO()):
        reference.train()
    trained = weights(reference)
    assert any(not torch.equal(trained[n], start[n]) for n in start)  # it learned something

    trainer = build(repo_root, benchmark_root, tmp_path / "cut")
    forward_backward = trainer.forward_backward

    def interrupt_in_last_epoch(batch):
        if trainer.epoch == EPOCHS - 1:
            raise KeyboardInterrupt
        return forward_backward(batch)

    trainer.forward_backward = interrupt_in_last_epoch
    with pytest.raises(KeyboardInterrupt), contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    resumed = build(repo_root, benchmark_root, tmp_path / "cut")
    with contextlib.redirect_stdout(io.StringIO()):
        resumed.train()
    assert resumed.start_epoch == EPOCHS - 1
    for name, value in trained.items():
        assert torch.equal(weights(resumed)[name], value), name


def test_the_branch_survives_gradient_checkpointing(clip3):
    """run_blocks passes the adapter through torch.utils.checkpoint unchanged."""
    torch.manual_seed(0)
    model = MMACLIP(node(), CLASSNAMES, clip3)
    model.train()
    image, label = images(2), torch.tensor([1, 0])
    params = list(model.adapter_learner.parameters())
    plain = torch.autograd.grad(F.cross_entropy(model(image), label), params)
    for transformer in (clip3.transformer, clip3.visual.transformer):
        transformer.grad_checkpointing = True
    try:
        checkpointed = torch.autograd.grad(F.cross_entropy(model(image), label), params)
    finally:
        for transformer in (clip3.transformer, clip3.visual.transformer):
            transformer.grad_checkpointing = False
    for got, want in zip(checkpointed, plain):
        assert_close(got, want, 1e-6)
