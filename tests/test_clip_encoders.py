"""Text/image encoders and blocks: equality with open_clip, deep-prompt semantics (T6, T8),
and the exact speed-ups (truncation, fused attention, chunking) against the plain path."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from open_clip.transformer import Transformer

from ammpl.clip.blocks import run_block, run_blocks
from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts
from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tiny import TINY_CLIP_CONFIG, build_tiny_clip
from ammpl.utils.errors import BackboneError

SENTENCES = ["a photo of a dog.", "a golden retriever, a type of pet.", "x", "itap of a sea lion."]
D_T, D_V, EMBED = 64, 96, 48


def build_clip(seed: int = 0, layers: int = 2, **vision_overrides) -> open_clip.CLIP:
    """The tiny CLIP, optionally deeper (T6 needs blocks beyond the prompt depth)."""
    return build_tiny_clip(seed, layers, **vision_overrides).eval()


@pytest.fixture(scope="module")
def clip_model():
    return build_tiny_clip(seed=0).eval()


@pytest.fixture(scope="module")
def deep_clip():
    return build_clip(seed=1, layers=4)


@pytest.fixture(scope="module")
def token_ids():
    return open_clip.tokenize(SENTENCES)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    error = (actual.float() - expected.float()).abs().max().item()
    assert error <= tol * expected.abs().max().item(), f"max error {error}"


def record_block_inputs(transformer) -> tuple[list[torch.Tensor], list]:
    """Every block's input, seen through a pre-hook on its ln_1 (called with the input)."""
    inputs: list[torch.Tensor] = []
    handles = [
        block.ln_1.register_forward_pre_hook(lambda _module, args: inputs.append(args[0]))
        for block in transformer.resblocks
    ]
    return inputs, handles


# ---------------------------------------------------------------- blocks


@pytest.mark.parametrize("additive_mask", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_run_block_equals_open_clip_block(clip_model, additive_mask, fused):
    block = clip_model.transformer.resblocks[0]
    x = torch.randn(3, 9, D_T)
    mask = torch.randn(9, 9) if additive_mask else None
    with torch.no_grad():
        expected = block(x, attn_mask=mask)
        assert_rel_close(run_block(block, x, mask, fused=fused), expected)


@pytest.mark.parametrize("fused", [True, False])
def test_bool_masks_follow_multihead_attention(clip_model, fused):
    block = clip_model.transformer.resblocks[0]
    x = torch.randn(2, 6, D_T)
    blocked = torch.rand(6, 6) > 0.6
    blocked.fill_diagonal_(False)
    with torch.no_grad():
        normed = block.ln_1(x)
        attended = block.attn(normed, normed, normed, attn_mask=blocked, need_weights=False)[0]
        x_mid = x + attended
        expected = x_mid + block.mlp(block.ln_2(x_mid))
        assert_rel_close(run_block(block, x, blocked, fused=fused), expected)


@pytest.mark.parametrize("fused", [True, False])
def test_is_causal_equals_the_causal_mask(clip_model, fused):
    block = clip_model.transformer.resblocks[1]
    x = torch.randn(2, 11, D_T)
    with torch.no_grad():
        expected = block(x, attn_mask=clip_model.attn_mask[:11, :11])
        assert_rel_close(run_block(block, x, fused=fused, is_causal=True), expected)
    with pytest.raises(ValueError, match="not both"):
        run_block(block, x, clip_model.attn_mask[:11, :11], is_causal=True)


@pytest.mark.parametrize("batch_first", [True, False])
def test_run_blocks_is_layout_agnostic_with_layer_scale(batch_first):
    torch.manual_seed(0)
    transformer = Transformer(32, 2, 4, ls_init_value=0.5, batch_first=batch_first).eval()
    x = torch.randn(2, 7, 32)  # open_clip's Transformer takes batch-first input either way
    with torch.no_grad():
        assert_rel_close(run_blocks(transformer, x), transformer(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_run_block_keeps_low_precision_dtypes(clip_model, dtype):
    block = copy.deepcopy(clip_model.transformer.resblocks[0]).to(dtype)
    x = torch.randn(2, 8, D_T, dtype=dtype)
    with torch.no_grad():
        expected = block(x, attn_mask=clip_model.attn_mask[:8, :8])
        out = run_block(block, x, is_causal=True)
    assert out.dtype == dtype
    assert_rel_close(out, expected, tol=2e-2)


def test_grad_checkpointing_gives_same_values_and_grads(clip_model):
    encoder = ImageEncoder(clip_model)
    prompt = torch.randn(2, D_V, requires_grad=True)
    image = torch.randn(1, 3, 224, 224)
    plain = encoder(image, prompt)
    (grad_plain,) = torch.autograd.grad(plain.sum(), prompt)
    clip_model.visual.transformer.grad_checkpointing = True
    try:
        checkpointed = encoder(image, prompt)
        (grad_checkpointed,) = torch.autograd.grad(checkpointed.sum(), prompt)
    finally:
        clip_model.visual.transformer.grad_checkpointing = False
    assert_rel_close(checkpointed, plain)
    assert_rel_close(grad_checkpointed, grad_plain)


# ---------------------------------------------------------------- text encoder, no prompts


@pytest.mark.parametrize("truncate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_encode_token_ids_equals_open_clip(clip_model, token_ids, truncate, fused):
    encoder = TextEncoder(clip_model)
    encoder.truncate, encoder.fused = truncate, fused
    with torch.no_grad():
        assert_rel_close(encoder.encode_token_ids(token_ids), clip_model.encode_text(token_ids))


def test_text_encoder_holds_references_with_reference_keys(clip_model):
    encoder = TextEncoder(clip_model)
    assert encoder.transformer is clip_model.transformer
    assert encoder.positional_embedding is clip_model.positional_embedding
    assert encoder.text_projection is clip_model.text_projection
    assert encoder.token_embedding is clip_model.token_embedding
    keys = set(encoder.state_dict())
    assert {"positional_embedding", "text_projection", "ln_final.weight"} <= keys
    assert not any(key.startswith("token_embedding") for key in keys)


def test_forward_on_embeddings_equals_encode_token_ids(clip_model, token_ids):
    encoder = TextEncoder(clip_model)
    with torch.no_grad():
        from_embeddings = encoder(clip_model.token_embedding(token_ids), token_ids.argmax(-1))
        assert_rel_close(from_embeddings, encoder.encode_token_ids(token_ids))


def test_truncation_and_fusion_equal_the_plain_full_length_path(clip_model, token_ids):
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    plain, fast = TextEncoder(clip_model), TextEncoder(clip_model)
    plain.truncate, plain.fused = False, False
    deep = [torch.randn(2, D_T)]
    with torch.no_grad():
        assert_rel_close(fast(embeddings, eot, deep), plain(embeddings, eot, deep))


def test_chunking_equals_one_pass(clip_model, token_ids):
    encoder = TextEncoder(clip_model)
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    deep = [torch.randn(3, D_T)]
    with torch.no_grad():
        whole = encoder(embeddings, eot, deep)
        encoder.chunk_size = 3
        chunked = encoder(embeddings, eot, deep)
    assert_rel_close(chunked, whole)


def test_leading_dims_are_flattened_and_restored(clip_model, token_ids):
    encoder = TextEncoder(clip_model)
    embeddings = clip_model.token_embedding(token_ids).detach()  # (K, L, d) with K = 4
    batched = torch.stack([embeddings, embeddings.flip(-1)])  # (B=2, K, L, d)
    eot = token_ids.argmax(-1)  # (K,) broadcasts over B
    with torch.no_grad():
        out = encoder(batched, eot)
        assert out.shape == (2, 4, EMBED)
        assert_rel_close(out[0], encoder(embeddings, eot))
        assert_rel_close(out[1], encoder(embeddings.flip(-1), eot))


def test_t8_embeddings_after_eot_change_nothing(clip_model, token_ids):
    encoder = TextEncoder(clip_model)
    encoder.truncate = False
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    changed = embeddings.clone()
    for row, index in enumerate(eot.tolist()):
        changed[row, index + 1 :] = torch.randn_like(changed[row, index + 1 :])
    with torch.no_grad():
        assert_rel_close(encoder(changed, eot), encoder(embeddings, eot))


# ---------------------------------------------------------------- image encoder, no prompts


@pytest.mark.parametrize("fused", [True, False])
def test_image_encoder_equals_open_clip(clip_model, images, fused):
    encoder = ImageEncoder(clip_model)
    encoder.fused = fused
    with torch.no_grad():
        assert_rel_close(encoder(images), clip_model.encode_image(images))


def test_image_encoder_follows_final_ln_after_pool():
    model = build_clip(seed=3, final_ln_after_pool=True)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert_rel_close(ImageEncoder(model)(images), model.encode_image(images))


def test_image_encoder_keys_are_visual_names(clip_model):
    keys = set(ImageEncoder(clip_model).state_dict())
    assert {"conv1.weight", "class_embedding", "positional_embedding", "proj"} <= keys
    assert {"ln_pre.weight", "ln_post.bias", "transformer.resblocks.1.mlp.c_fc.weight"} <= keys


def test_patch_embed_of_single_patches_matches_the_image_grid(clip_model, images):
    encoder = ImageEncoder(clip_model)
    with torch.no_grad():
        tokens = encoder.patch_embed(images)
        assert tokens.shape == (3, 49, D_V)
        patch = images[:, :, 32:64, 64:96]  # row 1, column 2 of the 7 × 7 grid
        single = encoder.patch_embed(patch)
    assert single.shape == (3, 1, D_V)
    assert_rel_close(single[:, 0], tokens[:, 7 + 2])


def test_wrong_grid_size_is_a_backbone_error(clip_model):
    with pytest.raises(BackboneError, match="49"):
        ImageEncoder(clip_model)(torch.randn(1, 3, 160, 160))


# ---------------------------------------------------------------- prompts: depth semantics


def test_depth_one_deep_list_equals_shallow_prompts(clip_model, images, token_ids):
    text, vision = TextEncoder(clip_model), ImageEncoder(clip_model)
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    shallow = torch.randn(3, D_V)
    with torch.no_grad():
        assert torch.equal(text(embeddings, eot, []), text(embeddings, eot))
        assert torch.equal(vision(images, shallow, []), vision(images, shallow))
        per_image = shallow.expand(3, -1, -1)
        assert_rel_close(vision(images, per_image), vision(images, shallow))


def test_deep_prompts_past_the_last_block_are_unused(clip_model, token_ids):
    encoder = TextEncoder(clip_model)  # two blocks: only deep[0] has a block to go to
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    deep = [torch.randn(2, D_T) for _ in range(5)]
    with torch.no_grad():
        assert torch.equal(encoder(embeddings, eot, deep), encoder(embeddings, eot, deep[:1]))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_t6_text_injection(deep_clip, depth):
    n_ctx = 2
    prompts = ClassPrompts(deep_clip, ["dog", "golden retriever"], n_ctx, "a photo of a")
    ctx = torch.randn(n_ctx, D_T, requires_grad=True)
    deep = [torch.randn(n_ctx, D_T, requires_grad=True) for _ in range(depth - 1)]
    encoder = TextEncoder(deep_clip)
    inputs, handles = record_block_inputs(deep_clip.transformer)
    try:
        features = encoder(prompts.splice(ctx), prompts.eot_indices, deep)
    finally:
        for handle in handles:
            handle.remove()
    blocks = deep_clip.transformer.resblocks
    length = int(prompts.eot_indices.max()) + 1
    assert [tuple(x.shape) for x in inputs] == [(2, length, D_T)] * 4
    expected_0 = ctx + deep_clip.positional_embedding[1 : 1 + n_ctx]
    assert torch.equal(inputs[0][:, 1 : 1 + n_ctx], expected_0.expand(2, -1, -1))
    with torch.no_grad():
        for i in range(1, 4):
            previous = run_block(blocks[i - 1], inputs[i - 1], is_causal=True)
            slots = inputs[i][:, 1 : 1 + n_ctx]
            if i < depth:
                assert torch.equal(slots, deep[i - 1].expand(2, -1, -1))
            else:
                assert torch.equal(slots, previous[:, 1 : 1 + n_ctx])
            assert torch.equal(inputs[i][:, :1], previous[:, :1])
            assert torch.equal(inputs[i][:, 1 + n_ctx :], previous[:, 1 + n_ctx :])
    features.sum().backward()
    for prompt in [ctx, *deep]:
        assert prompt.grad is not None and prompt.grad.abs().sum() > 0


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_t6_vision_injection(deep_clip, depth):
    n_v = 3
    shallow = torch.randn(n_v, D_V, requires_grad=True)
    deep = [torch.randn(n_v, D_V, requires_grad=True) for _ in range(depth - 1)]
    encoder = ImageEncoder(deep_clip)
    inputs, handles = record_block_inputs(deep_clip.visual.transformer)
    try:
        features = encoder(torch.randn(2, 3, 224, 224), shallow, deep)
    finally:
        for handle in handles:
            handle.remove()
    blocks = deep_clip.visual.transformer.resblocks
    assert [tuple(x.shape) for x in inputs] == [(2, 50 + n_v, D_V)] * 4
    expected_0 = deep_clip.visual.ln_pre(shallow)
    assert_rel_close(inputs[0][:, -n_v:], expected_0.expand(2, -1, -1))
    with torch.no_grad():
        for i in range(1, 4):
            previous = run_block(blocks[i - 1], inputs[i - 1])
            slots = inputs[i][:, -n_v:]
            if i < depth:
                assert torch.equal(slots, deep[i - 1].expand(2, -1, -1))
            else:
                assert torch.equal(slots, previous[:, -n_v:])
            assert torch.equal(inputs[i][:, :-n_v], previous[:, :-n_v])
    features.sum().backward()
    for prompt in [shallow, *deep]:
        assert prompt.grad is not None and prompt.grad.abs().sum() > 0


def test_vision_deep_prompts_must_match_the_shallow_count(clip_model, images):
    encoder = ImageEncoder(clip_model)
    with pytest.raises(ValueError, match="as many tokens"):
        encoder(images, torch.randn(2, D_V), [torch.randn(3, D_V)])
    with pytest.raises(ValueError, match="as many tokens"):
        encoder(images, None, [torch.randn(3, D_V)])


def test_round_prompts_fp16_rounds_injected_prompts(clip_model, images, token_ids):
    torch.manual_seed(0)
    shallow, deep_v, deep_t = torch.randn(2, D_V), torch.randn(2, D_V), torch.randn(2, D_T)
    rounded = [p.half().float() for p in (shallow, deep_v, deep_t)]
    vision, text = ImageEncoder(clip_model), TextEncoder(clip_model)
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    with torch.no_grad():
        vision_exact = vision(images, shallow, [deep_v])
        text_exact = text(embeddings, eot, [deep_t])
        vision.round_prompts_fp16 = text.round_prompts_fp16 = True
        assert torch.equal(
            vision(images, shallow, [deep_v]), vision(images, *rounded[:1], [rounded[1]])
        )
        assert torch.equal(text(embeddings, eot, [deep_t]), text(embeddings, eot, [rounded[2]]))
        assert not torch.equal(vision(images, shallow, [deep_v]), vision_exact)
        assert not torch.equal(text(embeddings, eot, [deep_t]), text_exact)


def _prompt_grads(encode, n_items: int, prompts: list[torch.Tensor], weight: torch.Tensor):
    """d(Σ w·features)/d(prompts) for the whole batch, and the same summed by hand over
    one-sequence batches (each of whose gradients the rounding hits on its own)."""
    leaves = [p.clone().requires_grad_(True) for p in prompts]
    whole = torch.autograd.grad((encode(slice(None), *leaves) * weight).sum(), leaves)
    by_hand = [torch.zeros_like(p) for p in prompts]
    for i in range(n_items):
        leaves = [p.clone().requires_grad_(True) for p in prompts]
        out = encode(slice(i, i + 1), *leaves)
        grads = torch.autograd.grad((out * weight[i : i + 1]).sum(), leaves)
        by_hand = [total + g for total, g in zip(by_hand, grads)]
    return whole, by_hand


def test_fp16_rounding_hits_each_sequences_gradient_before_the_batch_sum(
    clip_model, images, token_ids
):
    """Quirk Q5, gradients included: the reference expands a prompt over the batch and then
    calls `.half()`, so every sequence's gradient is rounded to fp16 and the rounded pieces
    are summed in fp32. Rounding first and expanding after rounds the sum once instead,
    which differs by about one fp16 step on most elements."""
    torch.manual_seed(0)
    vision, text = ImageEncoder(clip_model), TextEncoder(clip_model)
    vision.round_prompts_fp16 = text.round_prompts_fp16 = True
    embeddings = clip_model.token_embedding(token_ids).detach()
    eot = token_ids.argmax(-1)
    shallow, deep_v, deep_t = torch.randn(2, D_V), torch.randn(2, D_V), torch.randn(2, D_T)

    def encode_images(items, shallow, deep):
        return vision(images[items], shallow, [deep])

    def encode_text(items, deep):
        return text(embeddings[items], eot[items], [deep])

    for encode, n_items, prompts in (
        (encode_images, images.shape[0], [shallow, deep_v]),
        (encode_text, embeddings.shape[0], [deep_t]),
    ):
        weight = torch.randn(n_items, EMBED) * 1e3  # gradients far from fp16's subnormals
        whole, by_hand = _prompt_grads(encode, n_items, prompts, weight)
        for got, expected in zip(whole, by_hand):
            scale = expected.abs().max().item()
            # One sequence alone and inside the batch run through kernels blocked
            # differently, so a per-sequence fp32 gradient can land on the other side of an
            # fp16 rounding boundary: allow that on a few elements (one fp16 step of the
            # largest value), never the ≥ 20 % that rounding the sum once shows.
            close = torch.isclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
            assert close.float().mean() > 0.95
            assert (got - expected).abs().max() <= scale * 2**-10
            rounded_once = expected.half().float()  # what casting before the expand gives
            assert (rounded_once != expected).float().mean() > 0.2


# ---------------------------------------------------------------- autocast, unsupported towers


def test_bf16_autocast_on_cpu_runs_close_to_fp32(clip_model, images):
    prompts = ClassPrompts(clip_model, ["dog", "sea lion"], 2, "a photo of a")
    ctx = torch.randn(2, D_T, requires_grad=True)
    shallow = torch.randn(2, D_V, requires_grad=True)
    deep_t, deep_v = [torch.randn(2, D_T)], [torch.randn(2, D_V)]
    text, vision = TextEncoder(clip_model), ImageEncoder(clip_model)
    with torch.no_grad():
        text_fp32 = text(prompts.splice(ctx), prompts.eot_indices, deep_t)
        image_fp32 = vision(images, shallow, deep_v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        text_bf16 = text(prompts.splice(ctx), prompts.eot_indices, deep_t)
        image_bf16 = vision(images, shallow, deep_v)
    assert text_bf16.dtype == image_bf16.dtype == torch.bfloat16
    assert_rel_close(text_bf16, text_fp32, tol=5e-2)
    assert_rel_close(image_bf16, image_fp32, tol=5e-2)
    (text_bf16.float().sum() + image_bf16.float().sum()).backward()
    assert ctx.grad is not None and shallow.grad is not None


def test_resnet_tower_runs_plain_and_rejects_prompts():
    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg={"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 16},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    ).eval()
    encoder = ImageEncoder(model)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(encoder(images), model.encode_image(images))
    with pytest.raises(BackboneError, match="ResNet"):
        encoder(images, torch.randn(2, 32))
    with pytest.raises(BackboneError, match="ResNet"):
        encoder.patch_embed(images)


def test_attentional_pooling_rejects_prompts():
    model = build_clip(seed=2, attentional_pool=True, attn_pooler_heads=2, attn_pooler_queries=4)
    encoder = ImageEncoder(model)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(encoder(images), model.encode_image(images))
    with pytest.raises(BackboneError, match="attn_pool"):
        encoder(images, torch.randn(2, D_V))


def test_custom_attention_blocks_are_a_backbone_error():
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["text_cfg"]["qk_norm"] = True
    model = open_clip.CLIP(config["embed_dim"], config["vision_cfg"], config["text_cfg"])
    with pytest.raises(BackboneError, match="unsupported transformer block"):
        TextEncoder(model)
