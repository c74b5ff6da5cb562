"""VP (padding prompter): the numerical checks V1–V5 of BASELINES_EXTRA §4 on the tiny
backbone, the per-step schedule inside the trainer, and the one-line config errors."""

from __future__ import annotations

import types

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.trainers.vp import VP, VPCLIP, PadPrompter, effective_warmup, vp_lr
from ammpl.utils import ConfigError
from tests._baselines_helpers import (
    assert_close,
    images,
    method_node,
    normalise,
    tiny_clip,
)

CLASSES = ["Apple_pie", "sweet-pepper", "maple_tree"]


@pytest.fixture(scope="module")
def clip_model():
    return tiny_clip()


def vp_model(clip_model, size=(224, 224), **node_values) -> VPCLIP:
    return VPCLIP(method_node("VP", **node_values), CLASSES, clip_model, size)


def test_v1_zero_prompt_is_the_identity(clip_model):
    model = vp_model(clip_model)
    with torch.no_grad():
        for param in model.prompter.parameters():
            param.zero_()
    x = images()
    assert torch.equal(model.prompter(x), x)
    texts = ["This is a photo of a apple pie", "This is a photo of a sweet pepper",
             "This is a photo of a maple tree"]  # fmt: skip
    with torch.no_grad():
        text = normalise(clip_model.encode_text(open_clip.tokenize(texts)))
        expected = clip_model.logit_scale.exp() * normalise(clip_model.encode_image(x)) @ text.t()
        assert_close(model(x), expected)


@pytest.mark.parametrize(("size", "pad"), [((224, 224), 30), ((64, 64), 5), ((40, 56), 7)])
def test_v2_geometry_and_count(size, pad):
    height, width = size
    prompter = PadPrompter(height, width, pad)
    with torch.no_grad():
        for value, name in enumerate(("pad_up", "pad_down", "pad_left", "pad_right"), start=1):
            getattr(prompter, name).fill_(value)
    canvas = prompter.canvas()[0]
    assert canvas.shape == (3, height, width)
    assert (canvas[:, :pad] == 1).all() and (canvas[:, height - pad :] == 2).all()
    middle = canvas[:, pad : height - pad]
    assert (middle[:, :, :pad] == 3).all() and (middle[:, :, width - pad :] == 4).all()
    assert (middle[:, :, pad : width - pad] == 0).all()
    count = sum(p.numel() for p in prompter.parameters())
    assert count == 2 * 3 * pad * width + 2 * 3 * (height - 2 * pad) * pad
    if size == (224, 224):
        assert count == 69_840


def test_v3_gradient_routing_and_frozen_clip(clip_model):
    model = vp_model(clip_model, PROMPT_SIZE=48)
    x = images(2)
    prompted = model.prompter(x)
    prompted.retain_grad()
    features = model.image_encoder(prompted)
    loss = F.cross_entropy(
        model.logit_scale.exp() * normalise(features) @ normalise(model.text_features).t(),
        torch.tensor([0, 2]),
    )
    loss.backward()
    grad, p, s = prompted.grad.sum(dim=0, keepdim=True), 48, 224
    regions = {
        "pad_up": grad[:, :, :p],
        "pad_down": grad[:, :, s - p :],
        "pad_left": grad[:, :, p : s - p, :p],
        "pad_right": grad[:, :, p : s - p, s - p :],
    }
    for name, expected in regions.items():
        assert_close(getattr(model.prompter, name).grad, expected)
    assert all(not p.requires_grad and p.grad is None for p in clip_model.parameters())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"prompter.{n}" for n in ("pad_up", "pad_down", "pad_left", "pad_right")]


def test_v4_schedule():
    total = 196 * 1000
    assert vp_lr(0, total, 40.0, 1000) == pytest.approx(0.04, abs=1e-9)
    assert vp_lr(999, total, 40.0, 1000) == pytest.approx(40.0, abs=1e-9)
    assert vp_lr(1000, total, 40.0, 1000) == pytest.approx(40.0, abs=1e-9)
    last = vp_lr(total - 1, total, 40.0, 1000)
    assert 0 < last < 1e-6
    middle = 1000 + (total - 1000) // 2
    assert vp_lr(middle, total, 40.0, 1000) == pytest.approx(20.0, abs=1e-3)
    assert effective_warmup(1000, 0.0, 10) == 1000  # the reference: warm-up all run long
    assert effective_warmup(1000, 0.1, 500) == 50
    assert effective_warmup(1000, 0.1, 5) == 1


def test_v4_trainer_sets_the_lr_of_each_global_step():
    """VP.step_lr: global step = epoch·batches + batch, total = batches·epochs."""
    param = torch.nn.Parameter(torch.zeros(1))
    shell = VP.__new__(VP)
    shell.cfg = types.SimpleNamespace(
        TRAINER=types.SimpleNamespace(VP=method_node("VP", WARMUP_STEPS=4)),
        OPTIM=types.SimpleNamespace(LR=40.0),
    )
    shell.optim = torch.optim.SGD([param], lr=0.0)
    shell.num_batches, shell.max_epoch = 3, 5
    seen = []
    for shell.epoch in range(5):
        for shell.batch_idx in range(3):
            seen.append(shell.step_lr())
    assert seen == [vp_lr(s, 15, 40.0, 4) for s in range(15)]
    assert shell.optim.param_groups[0]["lr"] == seen[-1]


def test_v5_patch_embedding_is_linear(clip_model):
    encoder = ImageEncoder(clip_model)
    prompter = PadPrompter(224, 224, 30)
    x = images(2)
    with torch.no_grad():
        canvas = prompter.canvas()
        assert_close(
            encoder.patch_embed(x + canvas), encoder.patch_embed(x) + encoder.patch_embed(canvas)
        )


def test_bad_pad_size_and_method_are_one_line_errors(clip_model):
    with pytest.raises(ConfigError, match=r"TRAINER.VP.PROMPT_SIZE 120 does not fit INPUT.SIZE "
                       r"\(224, 224\): use 1 ≤ PROMPT_SIZE ≤ 112"):  # fmt: skip
        vp_model(clip_model, PROMPT_SIZE=120)
    with pytest.raises(ConfigError, match="PROMPT_SIZE 0"):
        vp_model(clip_model, PROMPT_SIZE=0)
    with pytest.raises(ConfigError, match="TRAINER.VP.METHOD must be one of padding"):
        vp_model(clip_model, METHOD="fixed_patch")
    with pytest.raises(ConfigError, match="WARMUP_MAX_FRACTION in \\[0, 1\\]"):
        vp_model(clip_model, WARMUP_MAX_FRACTION=1.5)
    model = vp_model(clip_model, size=(64, 64), PROMPT_SIZE=8)
    with pytest.raises(ConfigError, match="set INPUT.SIZE"):
        model.prompter(images(1))


def test_init_std_scales_the_initial_pads(clip_model):
    """TRAINER.VP.INIT_STD: the pads start as INIT_STD times the same N(0, 1) draw."""
    torch.manual_seed(0)
    unit = vp_model(clip_model, INIT_STD=1.0).prompter.canvas()
    torch.manual_seed(0)
    scaled = vp_model(clip_model, INIT_STD=0.25).prompter.canvas()
    assert torch.equal(scaled, 0.25 * unit)
