"""Context init rules and the class-prompt scaffold and splices (BASELINES §1.2, §3, T1, T2)."""

from __future__ import annotations

import logging

import open_clip
import pytest
import torch

from ammpl.clip.prompts import ClassPrompts, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tiny import build_tiny_clip
from ammpl.utils.errors import AmmplError, ConfigError

CLASSNAMES = ["dog", "golden_retriever", "sea lion"]
NAMES = ["dog", "golden retriever", "sea lion"]


@pytest.fixture(scope="module")
def clip_model():
    return build_tiny_clip(seed=0).eval()


@pytest.fixture(scope="module")
def text_encoder(clip_model):
    return TextEncoder(clip_model)


def word_embeddings(clip_model, phrase: str) -> torch.Tensor:
    """Token embeddings of the words of `phrase` (no SOT/EOT)."""
    ids = open_clip.tokenize([phrase])[0]
    with torch.no_grad():
        return clip_model.token_embedding(ids[1 : int(ids.argmax())])


def encode_sentences(clip_model, sentences: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return clip_model.encode_text(open_clip.tokenize(sentences))


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    error = (actual.float() - expected.float()).abs().max().item()
    assert error <= tol * expected.abs().max().item(), f"max error {error}"


# ---------------------------------------------------------------- init_context


def test_coop_init_phrase_sets_n_ctx_and_copies_word_embeddings(clip_model):
    ctx, prefix, n_ctx = init_context(clip_model, 16, "a_photo_of_a", "coop")
    assert (n_ctx, prefix) == (4, "a photo of a")
    assert torch.equal(ctx, word_embeddings(clip_model, "a photo of a"))
    assert ctx.dtype == clip_model.visual.conv1.weight.dtype


def test_coop_csc_is_ignored_with_init_phrase(clip_model, caplog):
    with caplog.at_level(logging.WARNING, logger="ammpl.clip.prompts"):
        ctx, _, _ = init_context(clip_model, 16, "a photo of a", "coop", n_cls=5, csc=True)
    assert ctx.shape == (4, 64)
    assert "CSC is ignored" in caplog.text


def test_random_init_shapes_prefix_and_std(clip_model):
    torch.manual_seed(0)
    ctx, prefix, n_ctx = init_context(clip_model, 16, "", "coop")
    assert ctx.shape == (16, 64) and n_ctx == 16
    assert prefix == " ".join(["X"] * 16)
    assert abs(ctx.std().item() - 0.02) < 0.002
    assert abs(ctx.mean().item()) < 0.003
    csc, _, _ = init_context(clip_model, 8, "", "coop", n_cls=3, csc=True)
    assert csc.shape == (3, 8, 64)


def test_maple_rule_keeps_n_ctx_and_uses_first_words(clip_model):
    ctx, prefix, n_ctx = init_context(clip_model, 2, "a photo of a", "maple")
    assert (n_ctx, prefix) == (2, "a photo of a")
    assert torch.equal(ctx, word_embeddings(clip_model, "a photo")[:2])
    ctx_csc, _, _ = init_context(clip_model, 2, "a photo of a", "maple", n_cls=3, csc=True)
    assert ctx_csc.shape == (3, 2, 64) and torch.equal(ctx_csc[2], ctx)


def test_maple_rule_random_when_more_than_four_tokens(clip_model):
    ctx, prefix, n_ctx = init_context(clip_model, 5, "a photo of a", "maple")
    assert n_ctx == 5 and prefix == "X X X X X" and ctx.shape == (5, 64)


def test_maple_rule_rejects_too_few_init_words(clip_model):
    with pytest.raises(ConfigError, match="N_CTX is 4"):
        init_context(clip_model, 4, "a photo", "maple")


def test_init_context_rejects_bad_rule_and_missing_classes(clip_model):
    with pytest.raises(ConfigError, match="rule"):
        init_context(clip_model, 4, "", "ivlp")
    with pytest.raises(ConfigError, match="n_cls"):
        init_context(clip_model, 4, "", "coop", csc=True)


# ---------------------------------------------------------------- ClassPrompts buffers


def test_buffers_shapes_persistence_and_eot(clip_model):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 2, "a photo of a")
    assert prompts.classnames == NAMES
    assert prompts.token_prefix.shape == (3, 1, 64)
    assert prompts.token_suffix.shape == (3, 74, 64)
    assert set(prompts.state_dict()) == {"token_prefix", "token_suffix"}
    ids = open_clip.tokenize([f"a photo of a {name}." for name in NAMES])
    assert torch.equal(prompts.token_ids, ids)
    assert torch.equal(prompts.eot_indices, ids.argmax(dim=-1))
    assert prompts.name_lens == [1, 2, 2]
    # MaPLe layout: SOT · 2 slots · "of" "a" · name · "." · EOT → EOT at 8 for a 2-token name.
    assert prompts.eot_indices.tolist() == [7, 8, 8]


def test_end_splice_with_init_words_rebuilds_the_scaffold_embedding(clip_model):
    ctx, prefix, n_ctx = init_context(clip_model, 2, "a photo of a", "maple")
    prompts = ClassPrompts(clip_model, CLASSNAMES, n_ctx, prefix)
    with torch.no_grad():
        expected = clip_model.token_embedding(prompts.token_ids)
    assert torch.equal(prompts.splice(ctx), expected)


def test_default_prefix_is_placeholder_words(clip_model):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 3)
    assert prompts.scaffolds[1] == "X X X golden retriever."
    assert prompts.eot_indices.tolist() == [6, 7, 7]


def test_too_long_class_name_is_a_user_error(clip_model):
    with pytest.raises(AmmplError, match="more than the context length"):
        ClassPrompts(clip_model, ["dog " * 80], 4)


def test_splice_shapes_and_batched_forms(clip_model):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 4)
    ctx = torch.randn(4, 64)
    unified = prompts.splice(ctx)
    assert unified.shape == (3, 77, 64)
    per_class = torch.randn(3, 4, 64)
    assert prompts.splice(per_class).shape == (3, 77, 64)
    per_image = torch.randn(2, 1, 4, 64)
    batched = prompts.splice(per_image)
    assert batched.shape == (2, 3, 77, 64)
    assert torch.equal(batched[1], prompts.splice(per_image[1, 0]))
    per_pair = torch.randn(2, 3, 4, 64)
    assert torch.equal(prompts.splice(per_pair)[0], prompts.splice(per_pair[0]))
    with pytest.raises(ValueError, match="n = 4"):
        prompts.splice(torch.randn(5, 64))
    with pytest.raises(ConfigError, match="position"):
        prompts.splice(ctx, "left")


# ---------------------------------------------------------------- T1 / T2 through the encoder


@pytest.mark.parametrize(("rule", "n_ctx"), [("coop", 16), ("maple", 2), ("maple", 4)])
def test_t1_init_from_words_equals_zero_shot_text(clip_model, text_encoder, rule, n_ctx):
    ctx, prefix, n_ctx = init_context(clip_model, n_ctx, "a photo of a", rule)
    prompts = ClassPrompts(clip_model, CLASSNAMES, n_ctx, prefix)
    with torch.no_grad():
        features = text_encoder(prompts.splice(ctx), prompts.eot_indices)
    expected = encode_sentences(clip_model, [f"a photo of a {name}." for name in NAMES])
    assert_rel_close(features, expected)


@pytest.mark.parametrize(
    ("position", "template"),
    [
        ("end", "red green blue dark {}."),
        ("middle", "red green {} blue dark."),
        ("front", "{} red green blue dark."),
    ],
)
@pytest.mark.parametrize("class_specific", [False, True])
def test_t2_class_token_positions(clip_model, text_encoder, position, template, class_specific):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 4)
    ctx = word_embeddings(clip_model, "red green blue dark")
    if class_specific:
        ctx = ctx.expand(3, -1, -1).clone()
    sentences = [template.format(name) for name in NAMES]
    assert torch.equal(prompts.eot_indices, open_clip.tokenize(sentences).argmax(dim=-1))
    with torch.no_grad():
        embedded = prompts.splice(ctx, position)
        expected_embedding = clip_model.token_embedding(open_clip.tokenize(sentences))
        features = text_encoder(embedded, prompts.eot_indices)
    assert torch.equal(embedded, expected_embedding)
    assert_rel_close(features, encode_sentences(clip_model, sentences))


def test_middle_and_front_splices_are_batched_too(clip_model):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 4)
    ctx = torch.randn(2, 3, 4, 64)
    for position in ("middle", "front"):
        batched = prompts.splice(ctx, position)
        assert torch.equal(batched[1], prompts.splice(ctx[1], position))


def test_splice_carries_gradient_to_ctx(clip_model, text_encoder):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 4)
    ctx = torch.randn(4, 64, requires_grad=True)
    for position in ("end", "middle", "front"):
        ctx.grad = None
        text_encoder(prompts.splice(ctx, position), prompts.eot_indices).sum().backward()
        assert ctx.grad is not None and bool((ctx.grad.abs().sum(dim=-1) > 0).all())


def test_splice_of_a_class_slice_equals_the_slice_of_the_full_splice(clip_model):
    prompts = ClassPrompts(clip_model, CLASSNAMES, 4)
    ctx = torch.randn(2, 1, 4, 64)
    for position in ("end", "middle", "front"):
        full = prompts.splice(ctx, position)
        assert torch.equal(prompts.splice(ctx, position, classes=slice(1, 3)), full[:, 1:3])
    per_class = torch.randn(2, 4, 64)  # ctx rows for classes 1..2 only
    expected = prompts.splice(torch.cat([torch.randn(1, 4, 64), per_class]), "front")[1:]
    assert torch.equal(prompts.splice(per_class, "front", classes=slice(1, 3)), expected)
