"""Reductions between the baselines (BASELINES.md §13: T1, T4, T5, T6, T7) on tiny CLIPs.

Every check compares two independent computations: a method against zero-shot CLIP, CoOp,
a hand-written per-image loop, another method under a parameter map, or block inputs seen
through hooks against `run_block` applied to the previous block's input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ammpl.clip.blocks import run_block
from ammpl.trainers.cocoop import CoCoOpCLIP
from ammpl.trainers.coop import CoOpCLIP
from ammpl.trainers.ivlp import IVLPCLIP
from ammpl.trainers.maple import MaPLeCLIP
from ammpl.trainers.vpt import VPTCLIP
from tests._baselines_helpers import (
    CLASSNAMES,
    assert_close,
    batch_fixture,  # noqa: F401  (pytest fixture `batch`)
    clip3_fixture,  # noqa: F401  (pytest fixture `clip3`)
    method_node,
    normalise,
    record_block_inputs,
    reference_text_features,
    tiny_clip,
)

LABELS = torch.tensor([0, 2, 1])


@pytest.fixture(scope="module")
def clip2():
    return tiny_clip(seed=0, layers=2)


def randomise_(*tensors: torch.Tensor, seed: int = 0, std: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in tensors:
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)


# ------------------------------------------------------------------ T1


def test_t1_text_features_at_init_equal_zero_shot(clip2, batch):
    expected = reference_text_features(clip2, "a photo of a {}.", CLASSNAMES)
    with torch.no_grad():
        coop = CoOpCLIP(method_node("COOP", CTX_INIT="a photo of a"), CLASSNAMES, clip2)
        assert_close(normalise(coop.text_features()), expected)

        cocoop = CoCoOpCLIP(method_node("COCOOP", CTX_INIT="a photo of a"), CLASSNAMES, clip2)
        cocoop.prompt_learner.meta_net.linear2.weight.zero_()
        cocoop.prompt_learner.meta_net.linear2.bias.zero_()
        image_features = normalise(cocoop.image_encoder(batch))
        per_image = cocoop.per_image_text_features(image_features)
        for features in per_image:
            assert_close(features, expected)

        for n_ctx in (2, 4):  # IVLP 2-token text (extra words stay fixed), DLP 4 tokens
            node = method_node("IVLP", N_CTX_TEXT=n_ctx, PROMPT_DEPTH_TEXT=1)
            ivlp = IVLPCLIP(node, CLASSNAMES, clip2)
            assert_close(normalise(ivlp.text_features()), expected)

        maple = MaPLeCLIP(method_node("MAPLE", N_CTX=2, PROMPT_DEPTH=1), CLASSNAMES, clip2)
        assert_close(normalise(maple.text_features()), expected)


# ------------------------------------------------------------------ T4


def cocoop_per_image_loop(model: CoCoOpCLIP, image: torch.Tensor) -> torch.Tensor:
    """The reference computation: one text pass of K prompts per image."""
    learner = model.prompt_learner
    features = normalise(model.image_encoder(image))
    bias = learner.meta_net(features)
    logits = []
    for index in range(image.shape[0]):
        prompts = learner.splice(learner.ctx + bias[index])
        text = normalise(model.text_encoder(prompts, learner.eot_indices))
        logits.append(model.logit_scale.exp() * features[index] @ text.t())
    return torch.stack(logits)


def build_pair(clip_model, seed: int = 0):
    coop = CoOpCLIP(method_node("COOP", CTX_INIT="a photo of a"), CLASSNAMES, clip_model)
    cocoop = CoCoOpCLIP(method_node("COCOOP", CTX_INIT="a photo of a"), CLASSNAMES, clip_model)
    randomise_(coop.prompt_learner.ctx, seed=seed)
    with torch.no_grad():
        cocoop.prompt_learner.ctx.copy_(coop.prompt_learner.ctx)
    return coop, cocoop


def loss_and_grad(logits: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, LABELS[: logits.shape[0]]), param)
    return grad


def test_t4_cocoop_with_zero_meta_net_is_coop(clip2, batch):
    coop, cocoop = build_pair(clip2)
    with torch.no_grad():
        cocoop.prompt_learner.meta_net.linear2.weight.zero_()
        cocoop.prompt_learner.meta_net.linear2.bias.zero_()
    coop_logits, cocoop_logits = coop(batch), cocoop(batch)
    assert_close(cocoop_logits, coop_logits)
    assert_close(
        loss_and_grad(cocoop_logits, cocoop.prompt_learner.ctx),
        loss_and_grad(coop_logits, coop.prompt_learner.ctx),
    )


def test_t4_cocoop_image_i_is_coop_with_shifted_context(clip2, batch):
    coop, cocoop = build_pair(clip2, seed=1)
    randomise_(cocoop.prompt_learner.meta_net.linear2.bias, seed=5, std=0.1)
    with torch.no_grad():
        logits = cocoop(batch)
        bias = cocoop.prompt_learner.meta_net(normalise(cocoop.image_encoder(batch)))
        assert bias.abs().max() > 1e-3
        ctx = cocoop.prompt_learner.ctx.clone()
        for index in range(batch.shape[0]):
            coop.prompt_learner.ctx.copy_(ctx + bias[index])
            assert_close(logits[index], coop(batch[index : index + 1])[0])


@pytest.mark.parametrize("chunk", [1, len(CLASSNAMES), 2 * len(CLASSNAMES), 4096])
def test_t4_batched_text_pass_equals_per_image_loop(clip2, batch, chunk):
    _, cocoop = build_pair(clip2, seed=2)
    randomise_(cocoop.prompt_learner.meta_net.linear2.bias, seed=6, std=0.1)
    with torch.no_grad():  # |W·x| < 1 for unit x: every ReLU unit live, whatever the RNG state
        cocoop.prompt_learner.meta_net.linear1.bias.fill_(1.0)
    cocoop.text_chunk_size = chunk
    learner = cocoop.prompt_learner
    params = [learner.ctx, learner.meta_net.linear1.weight, learner.meta_net.linear2.weight]
    passes = []
    handle = cocoop.text_encoder.register_forward_pre_hook(lambda _m, args: passes.append(1))
    try:
        batched = cocoop(batch)
    finally:
        handle.remove()
    images_per_pass = max(1, chunk // len(CLASSNAMES))
    assert len(passes) == -(-batch.shape[0] // images_per_pass)  # one pass when B·K fits
    looped = cocoop_per_image_loop(cocoop, batch)
    assert_close(batched, looped)
    batched_grads = torch.autograd.grad(F.cross_entropy(batched, LABELS), params)
    looped_grads = torch.autograd.grad(F.cross_entropy(looped, LABELS), params)
    for got, expected in zip(batched_grads, looped_grads):
        assert expected.abs().max() > 0
        assert_close(got, expected)


def test_cocoop_batch_of_one_image(clip2, batch):
    _, cocoop = build_pair(clip2)
    assert_close(cocoop(batch[:1]), cocoop_per_image_loop(cocoop, batch[:1]))


# ------------------------------------------------------------------ T5


def couple(maple: MaPLeCLIP, ivlp: IVLPCLIP) -> None:
    """IVLP parameters = MaPLe's prompts under the coupling map (BASELINES T5), written out
    here rather than taken from MaPLe's own code."""
    learner = maple.prompt_learner
    with torch.no_grad():
        ivlp.prompt_learner.ctx.copy_(learner.ctx)
        ivlp.vision_prompts.shallow.copy_(learner.proj(learner.ctx))
        for block in range(1, learner.depth):
            text = learner.compound_prompts_text[block - 1]
            ivlp.text_prompts.deep[str(block)].copy_(text)
            vision = learner.compound_prompt_projections[block - 1](text)
            ivlp.vision_prompts.deep[str(block)].copy_(vision)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_t5_maple_equals_ivlp_under_the_coupling_map(clip3, batch, depth):
    maple = MaPLeCLIP(method_node("MAPLE", N_CTX=2, PROMPT_DEPTH=depth), CLASSNAMES, clip3)
    learner = maple.prompt_learner
    # Distinct deep projections, so a wrong block ↔ projection pairing shows.
    for index, layer in enumerate(learner.compound_prompt_projections):
        randomise_(layer.weight, layer.bias, seed=10 + index)
    randomise_(learner.ctx, seed=3)
    node = method_node(
        "IVLP",
        N_CTX_TEXT=2,
        N_CTX_VISION=2,
        PROMPT_DEPTH_TEXT=depth,
        PROMPT_DEPTH_VISION=depth,
    )
    ivlp = IVLPCLIP(node, CLASSNAMES, clip3)
    couple(maple, ivlp)
    with torch.no_grad():
        assert_close(maple(batch), ivlp(batch))


# ------------------------------------------------------------------ T6


def check_block_inputs(blocks, inputs, prompts, slots, causal: bool) -> None:
    """Block i ≥ 1 input = block i−1 applied to its input, except the prompt slots of blocks
    1..len(prompts), which hold that block's prompt exactly (after the fp16 rounding)."""
    assert len(inputs) == len(blocks)
    for index in range(1, len(blocks)):
        expected = run_block(blocks[index - 1], inputs[index - 1], is_causal=causal)
        if index <= len(prompts):
            prompt = prompts[index - 1].detach().half().float()
            assert not torch.equal(prompt, prompts[index - 1].detach().float())  # rounding happened
            assert torch.equal(inputs[index][:, slots], prompt.expand_as(inputs[index][:, slots]))
            expected[:, slots] = prompt
        assert_close(inputs[index], expected)


def run_with_hooks(model, image, text_transformer=None, vision_transformer=None):
    recorded = {}
    handles = []
    if text_transformer is not None:
        recorded["text"], text_handles = record_block_inputs(text_transformer)
        handles += text_handles
    if vision_transformer is not None:
        recorded["vision"], vision_handles = record_block_inputs(vision_transformer)
        handles += vision_handles
    try:
        logits = model(image)
    finally:
        for handle in handles:
            handle.remove()
    return logits, recorded


def check_gradients(logits: torch.Tensor, prompts: list[torch.Tensor]) -> None:
    grads = torch.autograd.grad(F.cross_entropy(logits, LABELS[: logits.shape[0]]), prompts)
    for grad in grads:
        assert grad.abs().max() > 0


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_t6_ivlp_depth_semantics(clip3, batch, depth):
    node = method_node(
        "IVLP",
        N_CTX_TEXT=2,
        N_CTX_VISION=3,
        PROMPT_DEPTH_TEXT=depth,
        PROMPT_DEPTH_VISION=depth,
    )
    model = IVLPCLIP(node, CLASSNAMES, clip3)
    text_blocks = clip3.transformer.resblocks
    vision_blocks = clip3.visual.transformer.resblocks
    logits, seen = run_with_hooks(model, batch, clip3.transformer, clip3.visual.transformer)

    text_deep = model.text_prompts.deep_list()
    vision_deep = model.vision_prompts.deep_list()
    assert len(text_deep) == len(vision_deep) == depth - 1
    ctx = model.prompt_learner.ctx.detach()
    assert_close(seen["text"][0][:, 1:3], (ctx + clip3.positional_embedding[1:3]).expand(3, -1, -1))
    check_block_inputs(text_blocks, seen["text"], text_deep, slice(1, 3), causal=True)

    assert seen["vision"][0].shape[1] == 50 + 3
    shallow = model.vision_prompts.shallow.detach().half().float()
    assert_close(seen["vision"][0][:, -3:], clip3.visual.ln_pre(shallow).expand(3, -1, -1))
    check_block_inputs(vision_blocks, seen["vision"], vision_deep, slice(-3, None), causal=False)

    check_gradients(
        logits, [model.prompt_learner.ctx, model.vision_prompts.shallow, *text_deep, *vision_deep]
    )


@pytest.mark.parametrize("depth", [1, 3])
def test_t6_maple_depth_semantics(clip3, batch, depth):
    model = MaPLeCLIP(method_node("MAPLE", N_CTX=2, PROMPT_DEPTH=depth), CLASSNAMES, clip3)
    learner = model.prompt_learner
    logits, seen = run_with_hooks(model, batch, clip3.transformer, clip3.visual.transformer)
    vision_prompt, deep_vision = learner.vision_prompts()
    check_block_inputs(
        clip3.transformer.resblocks,
        seen["text"],
        list(learner.compound_prompts_text),
        slice(1, 3),
        causal=True,
    )
    assert seen["vision"][0].shape[1] == 50 + 2
    shallow = vision_prompt.detach().half().float()
    assert_close(seen["vision"][0][:, -2:], clip3.visual.ln_pre(shallow).expand(3, -1, -1))
    check_block_inputs(
        clip3.visual.transformer.resblocks, seen["vision"], deep_vision, slice(-2, None), False
    )
    params = [learner.ctx, learner.proj.weight, *learner.compound_prompts_text]
    params += [layer.weight for layer in learner.compound_prompt_projections]
    check_gradients(logits, params)


def test_t6_vpt_depth_semantics(clip3, batch):
    node = method_node("VPT", N_CTX_VISION=4, PROMPT_DEPTH_VISION=2)
    model = VPTCLIP(node, CLASSNAMES, clip3)
    logits, seen = run_with_hooks(model, batch, vision_transformer=clip3.visual.transformer)
    deep = model.vision_prompts.deep_list()
    assert seen["vision"][0].shape[1] == 50 + 4 and len(deep) == 1
    check_block_inputs(
        clip3.visual.transformer.resblocks, seen["vision"], deep, slice(-4, None), False
    )
    check_gradients(logits, [model.vision_prompts.shallow, *deep])


# ------------------------------------------------------------------ T7


@pytest.mark.parametrize("ctx_init", ["a photo of a", ""])
def test_t7_ivlp_text_only_shallow_equals_coop(clip2, batch, ctx_init):
    n_ctx = 4
    coop = CoOpCLIP(method_node("COOP", N_CTX=n_ctx, CTX_INIT=ctx_init), CLASSNAMES, clip2)
    node = method_node(
        "IVLP",
        N_CTX_TEXT=n_ctx,
        CTX_INIT=ctx_init,
        N_CTX_VISION=2,
        PROMPT_DEPTH_TEXT=1,
        PROMPT_DEPTH_VISION=0,
    )
    ivlp = IVLPCLIP(node, CLASSNAMES, clip2)
    assert ivlp.prompt_learner.scaffolds == coop.prompt_learner.scaffolds
    randomise_(coop.prompt_learner.ctx, seed=4)
    with torch.no_grad():
        ivlp.prompt_learner.ctx.copy_(coop.prompt_learner.ctx)
    coop_logits, ivlp_logits = coop(batch), ivlp(batch)
    assert_close(ivlp_logits, coop_logits)
    assert_close(
        loss_and_grad(ivlp_logits, ivlp.prompt_learner.ctx),
        loss_and_grad(coop_logits, coop.prompt_learner.ctx),
    )


def test_t7_vpt_without_tokens_is_zero_shot(clip2, batch):
    model = VPTCLIP(method_node("VPT", N_CTX_VISION=0, PROMPT_DEPTH_VISION=12), CLASSNAMES, clip2)
    assert not [p for p in model.parameters() if p.requires_grad]
    text = reference_text_features(clip2, "a photo of a {}.", CLASSNAMES)
    with torch.no_grad():
        expected = clip2.logit_scale.exp() * normalise(clip2.encode_image(batch)) @ text.t()
        assert_close(model(batch), expected)


# ------------------------------------------------------------------ evaluation cache


@pytest.mark.parametrize("method", ["IVLP", "MAPLE"])
def test_eval_text_cache_is_exact_and_follows_parameter_updates(clip2, method):
    build = {"IVLP": IVLPCLIP, "MAPLE": MaPLeCLIP}[method]
    model = build(method_node(method), CLASSNAMES, clip2)
    model.eval()
    with torch.no_grad():
        first = model.text_features()
        assert model.text_features() is first  # reused while nothing changed
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.5)  # what an optimiser step does: in place
        cached = model.text_features()
    fresh = model.text_features().detach()  # grads on: never cached
    assert_close(cached, fresh)
    assert (cached - first).abs().max() > 1e-3
