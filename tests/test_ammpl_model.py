"""AMMPL's prompt learner and forward: shapes, components, ablations, exact fast paths."""

import pytest
import torch

from ammpl.clip import tokenize
from ammpl.trainers.ammpl import chunking
from ammpl.trainers.ammpl.model import ALL
from ammpl.utils import ConfigError
from tests._ammpl_helpers import (
    CLASSNAMES,
    GRID,
    JOINT_WIDTH,
    PATCH,
    TEXT_WIDTH,
    assert_same_results,
    build_model,
    images,
    logits_and_grads,
    trainable,
)

K = len(CLASSNAMES)
FEW = ["circle", "golden retriever", "sea_turtle"]  # exactness tests: 2 images × 3 classes
ORDERS = ("image_first", "text_first")


@pytest.mark.parametrize("class_specific", [False, True])
def test_parameter_shapes_of_both_variants(class_specific):
    params = trainable(build_model(class_specific=class_specific))
    lead = (K,) if class_specific else ()
    groups = K if class_specific else 1
    hidden = JOINT_WIDTH // 16
    assert {n: tuple(p.shape) for n, p in params.items()} == {
        "ctx": (*lead, 4, TEXT_WIDTH),
        "P": (*lead, GRID, GRID),
        "pad": (*lead, 3, PATCH, PATCH),
        "f_I.weight1": (groups, JOINT_WIDTH, hidden),
        "f_I.bias1": (groups, hidden),
        "f_I.weight2": (groups, hidden, TEXT_WIDTH),
        "f_I.bias2": (groups, TEXT_WIDTH),
        "f_T.weight1": (groups, JOINT_WIDTH, hidden),
        "f_T.bias1": (groups, hidden),
        "f_T.weight2": (groups, hidden, 3 * PATCH * PATCH),
        "f_T.bias2": (groups, 3 * PATCH * PATCH),
    }
    assert all(p.dtype == torch.float32 for p in params.values())


@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("order", ORDERS)
def test_forward_shapes_of_both_variants_and_orders(class_specific, order):
    model = build_model(class_specific=class_specific, interaction_order=order)
    pl = model.prompt_learner
    x = images(2)
    model.train()
    mask = pl.sample_mask(2)
    assert mask.shape == (2, K if class_specific else 1, GRID, GRID)
    h = pl.image_to_text(torch.randn(2, 1, JOINT_WIDTH), ALL)
    assert h.shape == (2, K if class_specific else 1, TEXT_WIDTH)
    assert pl.prompts(ALL, h).shape == (2, K, 77, TEXT_WIDTH)
    assert pl.prompts(ALL).shape == (K, 77, TEXT_WIDTH)
    assert pl.text_to_image(torch.randn(2, K, JOINT_WIDTH), ALL).shape == (2, K, 3, PATCH, PATCH)
    assert model.prompted_images(x).shape == (2, K, 3, 224, 224)
    logits = model(x)
    assert logits.shape == (2, K) and torch.isfinite(logits).all()
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, K)


def test_context_is_initialised_from_the_init_words():
    model = build_model(class_specific=True)
    pl = model.prompt_learner
    assert pl.prompt_prefix == "a photo of a"
    assert pl.scaffolds[2] == "a photo of a golden retriever."
    ids = tokenize(["a photo of a"])[0, 1:5]
    expected = model.text_encoder.token_embedding(ids).float()
    for cls in range(K):
        torch.testing.assert_close(pl.ctx[cls], expected.float())
    random_ctx = build_model(n_ctx=3).prompt_learner
    assert random_ctx.prompt_prefix == "X X X" and random_ctx.ctx.std() < 0.05


def test_straight_through_gradient_reaches_P_through_the_model():
    model = build_model(class_specific=True)
    _, grads = logits_and_grads(model, images(2))
    for name in ("P", "pad", "ctx", "f_I.weight2", "f_T.weight2"):
        assert grads[name].abs().sum() > 0, name


def test_training_masks_are_fresh_and_evaluation_is_deterministic():
    model = build_model()
    x = images(2)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def _set_mask(model, masked):
    """P = 1 everywhere but the given (class, row, col) / (row, col) patches (P = 0)."""
    with torch.no_grad():
        model.prompt_learner.P.fill_(1.0)
        for index in masked:
            model.prompt_learner.P[index] = 0.0


def _padding_term(model, x):
    """E computed from the public pieces, image_first order (the default)."""
    pl = model.prompt_learner
    with torch.no_grad():
        x0 = model.image_encoder(x)
        z = model.text_encoder(pl.prompts(ALL, pl.image_to_text(x0[:, None], ALL)), pl.eot_indices)
        return pl.text_to_image(z, ALL)


def _patch(t, row, col):
    return t[..., row * PATCH : (row + 1) * PATCH, col * PATCH : (col + 1) * PATCH]


def test_masked_patch_shows_padding_plus_text_term_and_kept_patch_the_image():
    model = build_model(class_specific=True).eval()
    _set_mask(model, [(1, 2, 3)])  # class 1 masks patch (2, 3)
    x = images(2)
    with torch.no_grad():
        shown = model.prompted_images(x)
    E = _padding_term(model, x)
    N = model.prompt_learner.pad.detach()
    for b in range(2):
        torch.testing.assert_close(_patch(shown[b, 1], 2, 3), N[1] + E[b, 1])
        torch.testing.assert_close(_patch(shown[b, 0], 2, 3), _patch(x[b], 2, 3))
        torch.testing.assert_close(_patch(shown[b, 1], 0, 0), _patch(x[b], 0, 0))
    assert not torch.allclose(E[0, 1], E[1, 1])  # E depends on the image (through h and z)


COMPONENTS = {
    "C1": dict(mask=True, pad=False, interact=False),
    "C1+C2": dict(mask=True, pad=True, interact=False),
    "C3": dict(mask=False, pad=True, interact=True),
    "C1+C3": dict(mask=True, pad=False, interact=True),
    "C1+C2+C3": dict(mask=True, pad=True, interact=True),
    "none": dict(mask=False, pad=False, interact=False),
}
EXPECTED_PARAMS = {
    "C1": {"ctx", "P"},
    "C1+C2": {"ctx", "P", "pad"},
    "C3": {"ctx", "f_I"},
    "C1+C3": {"ctx", "P", "f_I", "f_T"},
    "C1+C2+C3": {"ctx", "P", "pad", "f_I", "f_T"},
    "none": {"ctx"},
}


@pytest.mark.parametrize("combo", list(COMPONENTS))
def test_each_ablation_switch_removes_exactly_its_component(combo):
    model = build_model(class_specific=True, **COMPONENTS[combo])
    params = trainable(model)
    assert {name.split(".")[0] for name in params} == EXPECTED_PARAMS[combo]
    full = trainable(build_model(class_specific=True))
    removed = {n.split(".")[0] for n in full} - EXPECTED_PARAMS[combo]
    count = sum(p.numel() for p in params.values())
    full_count = sum(p.numel() for n, p in full.items())
    removed_count = sum(p.numel() for n, p in full.items() if n.split(".")[0] in removed)
    assert count == full_count - removed_count
    assert model.settings.components() == combo if combo != "none" else "text prompts only"


@pytest.mark.parametrize(
    "combo, masked_value",
    [("C1", "zero"), ("C1+C2", "pad"), ("C1+C3", "E"), ("C1+C2+C3", "pad+E")],
)
def test_what_masked_patches_show_under_each_ablation(combo, masked_value):
    model = build_model(class_specific=True, **COMPONENTS[combo]).eval()
    _set_mask(model, [(0, 6, 6)])
    x = images(2)
    with torch.no_grad():
        shown = _patch(model.prompted_images(x)[:, 0], 6, 6)
    pad = model.prompt_learner.pad
    expected = {
        "zero": lambda: torch.zeros_like(shown),
        "pad": lambda: pad[0].detach().expand_as(shown),
        "E": lambda: _padding_term(model, x)[:, 0],
        "pad+E": lambda: pad[0].detach() + _padding_term(model, x)[:, 0],
    }[masked_value]()
    torch.testing.assert_close(shown, expected)


def test_without_mask_the_model_is_text_prompting_on_unprompted_images():
    x = images(3)
    for combo in ("C3", "none"):
        model = build_model(**COMPONENTS[combo]).eval()
        pl = model.prompt_learner
        with torch.no_grad():
            assert torch.equal(model.prompted_images(x), x[:, None].expand(3, K, 3, 224, 224))
            x0 = model.image_encoder(x)
            shift = pl.image_to_text(x0[:, None], ALL) if pl.f_I is not None else None
            z = model.text_encoder(pl.prompts(ALL, shift), pl.eot_indices)
            x0 = x0 / x0.norm(dim=-1, keepdim=True)
            z = z / z.norm(dim=-1, keepdim=True)
            scale = model.logit_scale.exp()
            expected = scale * (x0 @ z.t() if z.dim() == 2 else (x0[:, None] * z).sum(-1))
            torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def text_encoder_inputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    """The prompt embeddings the text encoder receives during one forward pass."""
    seen: list[torch.Tensor] = []
    hook = model.text_encoder.register_forward_pre_hook(
        lambda _module, args: seen.append(args[0].detach().clone())
    )
    try:
        model(x)
    finally:
        hook.remove()
    return seen


def text_ignores_the_image(model, x: torch.Tensor) -> bool:
    """True when every prompt given to the text encoder is the class prompt alone: no image
    axis, and equal to the prompts spliced from the context without any shift."""
    pl = model.prompt_learner
    seen = text_encoder_inputs(model, x)
    unshifted = pl.prompts(ALL).detach()
    return bool(seen) and all(
        p.dim() == 3 and any(torch.equal(p, unshifted[s : s + len(p)]) for s in range(K))
        for p in seen
    )


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("class_specific", [False, True])
def test_without_interaction_text_features_ignore_the_image(train, class_specific):
    x = images(3)
    for order in ORDERS:
        model = build_model(class_specific=class_specific, interact=False, interaction_order=order)
        model.train(train)
        assert text_ignores_the_image(model, x)
        model = build_model(class_specific=class_specific, interaction_order=order).train(train)
        assert not text_ignores_the_image(model, x)  # interaction on: the check must fail


def test_scalar_text_shift_adds_one_number_to_every_context_entry():
    model = build_model(text_shift="scalar")
    pl = model.prompt_learner
    assert tuple(pl.f_I.weight2.shape[-1:]) == (1,)
    h = pl.image_to_text(torch.randn(2, 1, JOINT_WIDTH), ALL)
    assert h.shape == (2, 1, 1)
    shifted = pl.prompts(ALL, h)[:, :, 1:5]
    base = pl.prompts(ALL)[:, 1:5]
    delta = shifted - base
    torch.testing.assert_close(delta, h[:, :, None].expand_as(delta))
    assert model(images(2)).shape == (2, K)


def test_scalar_text_shift_is_removed_by_the_pre_ln_text_encoder():
    """The paper's literal scalar h (Eq. 7–8) shifts all l entries of a context token
    equally; LayerNorm subtracts it before every attention/MLP and before the projection,
    so the text features do not change: TEXT_SHIFT "scalar" is a no-op on CLIP."""
    model = build_model(text_shift="scalar")
    pl, encoder = model.prompt_learner, model.text_encoder
    shift = torch.tensor([[[0.0]], [[0.3]], [[-0.8]]])  # (B, 1, 1)
    with torch.no_grad():
        z = encoder(pl.prompts(ALL, shift), pl.eot_indices)
    torch.testing.assert_close(z[1], z[0], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(z[2], z[0], rtol=1e-3, atol=1e-4)
    vector = torch.randn(3, 1, TEXT_WIDTH) * 0.5
    with torch.no_grad():
        moved = encoder(pl.prompts(ALL, vector), pl.eot_indices)
    assert not torch.allclose(moved[1], moved[0], atol=1e-3)


@pytest.mark.parametrize("mode", ["threshold", "expected", "sample", "none"])
def test_every_test_mask_mode_is_deterministic_and_means_what_it_says(mode):
    model = build_model(class_specific=True, test_mask=mode, seed=3).eval()
    pl = model.prompt_learner
    x = images(2)
    with torch.no_grad():
        first, second = model(x), model(x)
        mask = pl.sample_mask(2)
    if mode == "sample":
        assert not torch.equal(first, second)  # a new draw per batch …
        model.eval()  # … but the same sequence again from the run seed
        with torch.no_grad():
            assert torch.equal(model(x), first)
        assert mask.shape == (2, K, GRID, GRID) and set(mask.unique().tolist()) <= {0.0, 1.0}
    else:
        assert torch.equal(first, second)
    if mode == "threshold":
        assert torch.equal(mask[0], (pl.P >= 0.5).float())
    if mode == "expected":
        assert torch.equal(mask[0], pl.P.detach().clamp(0, 1))
    if mode == "none":
        assert mask is None


def test_sample_mode_depends_on_the_run_seed():
    x = images(2)
    outs = []
    for seed in (1, 2):
        model = build_model(test_mask="sample").eval()
        model.prompt_learner.settings = model.settings.__class__(test_mask="sample", seed=seed)
        with torch.no_grad():
            outs.append(model(x))
    assert not torch.equal(*outs)


CONFIGS = [
    dict(class_specific=True),
    dict(class_specific=False),
    dict(class_specific=True, interaction_order="text_first"),
    dict(class_specific=False, interaction_order="text_first"),
    dict(class_specific=True, mask_per_image=False, pad=False),
    dict(class_specific=False, interact=False),
    dict(class_specific=True, interact=False),
    dict(class_specific=True, mask=False),
]


@pytest.mark.parametrize(
    "settings", CONFIGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_fast_path_equals_plain_path(settings):
    model = build_model(FEW, **settings)
    x = images(2)
    model.fast = False
    plain = logits_and_grads(model, x)
    plain_eval = logits_and_grads(model, x, train=False)
    model.fast = True
    assert_same_results(logits_and_grads(model, x), plain)
    assert_same_results(logits_and_grads(model, x, train=False), plain_eval)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("class_specific", [True, False])
def test_chunked_equals_unchunked(order, class_specific):
    x = images(2)
    model = build_model(
        FEW, class_specific=class_specific, interaction_order=order, class_chunk=10**6
    )
    whole = logits_and_grads(model, x)
    whole_eval = logits_and_grads(model, x, train=False)
    for chunk in (1, 4):
        model.settings = model.settings.__class__(
            class_specific=class_specific, interaction_order=order, class_chunk=chunk
        )
        assert_same_results(logits_and_grads(model, x), whole)
        assert_same_results(logits_and_grads(model, x, train=False), whole_eval)


def test_chunked_equals_unchunked_without_interaction():
    x = images(2)
    model = build_model(FEW, class_specific=True, interact=False, class_chunk=10**6)
    whole = logits_and_grads(model, x)
    model.settings = model.settings.__class__(class_specific=True, interact=False, class_chunk=2)
    assert_same_results(logits_and_grads(model, x), whole)


def test_automatic_chunk_follows_free_memory(monkeypatch):
    model = build_model(FEW, class_chunk=0)
    x = images(2)
    reference = logits_and_grads(model, x)
    per_pair = chunking.pair_bytes(
        model.image_encoder, model.text_encoder, model.prompt_learner.text_tokens(), True
    )
    monkeypatch.setattr(chunking, "free_memory_bytes", lambda device: 2 * 3 * per_pair)
    budget = chunking.auto_budget(
        model.image_encoder, model.text_encoder, model.prompt_learner.text_tokens(), True
    )
    assert budget == 3  # half of the free memory, in pairs
    plan = chunking.BlockPlan.for_budget(2, len(FEW), budget)
    assert plan.n_blocks == 3
    assert_same_results(logits_and_grads(model, x), reference)


def test_free_memory_is_read_on_cpu():
    assert chunking.free_memory_bytes(torch.device("cpu")) > 0


def test_block_plan_covers_every_pair_once():
    for n_images, n_classes, budget in [(3, 5, 1), (3, 5, 4), (3, 5, 100), (100, 397, 64)]:
        plan = chunking.BlockPlan.for_budget(n_images, n_classes, budget)
        covered = torch.zeros(n_images, n_classes, dtype=torch.int64)
        for i in plan.image_slices():
            for c in plan.class_slices():
                covered[i, c] += 1
                assert covered[i, c].numel() <= max(budget, 1)
        assert covered.eq(1).all()


@pytest.mark.parametrize("settings", [dict(), dict(interaction_order="text_first")])
def test_eot_cut_equals_full_length_text(settings):
    model = build_model(FEW, **settings)
    x = images(2)
    cut = logits_and_grads(model, x)
    model.text_encoder.truncate = False
    full = logits_and_grads(model, x)
    model.text_encoder.truncate = True
    assert_same_results(cut, full)


def test_evaluation_caches_class_text_features_and_notices_updates():
    model = build_model(FEW, interact=False).eval()
    x = images(2)
    calls = []
    original = model._text_features
    model._text_features = lambda *a, **k: calls.append(1) or original(*a, **k)
    with torch.no_grad():
        first = model(x)
        model(x)
        assert len(calls) == 1  # cached for the second batch
        model.prompt_learner.ctx.add_(0.5)  # an optimiser step / load changes ctx in place
        changed = model(x)
    assert len(calls) == 2 and not torch.equal(first, changed)
    model.train()
    model(x)
    model(x)
    assert len(calls) == 4  # never cached while training


def test_settings_are_validated():
    for bad in (
        dict(test_mask="random"),
        dict(text_shift="matrix"),
        dict(interaction_order="both"),
        dict(class_chunk=-1),
        dict(n_ctx=0),
    ):
        with pytest.raises(ConfigError):
            build_model(FEW, **bad)


def count_image_sequences(model, monkeypatch) -> list[int]:
    """Sequences through the image tower, per call of forward_tokens."""
    seen: list[int] = []
    original = model.image_encoder.forward_tokens

    def counting(tokens, *args, **kwargs):
        seen.append(tokens.shape[0])
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(model.image_encoder, "forward_tokens", counting)
    return seen


def plain_eval_logits(model, x):
    model.fast = False
    with torch.no_grad():
        out = model(x)
    model.fast = True
    return out


SHORTCUT_CONFIGS = [
    dict(class_specific=True),
    dict(class_specific=False),
    dict(class_specific=True, interaction_order="text_first"),
    dict(class_specific=False, interaction_order="text_first"),
    dict(class_specific=True, interact=False),
    dict(class_specific=True, test_mask="expected", p_init_mean=1.5),
]


@pytest.mark.parametrize(
    "settings", SHORTCUT_CONFIGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_eval_encodes_each_image_once_when_the_test_mask_hides_nothing(settings, monkeypatch):
    """At P ~ N(0.9, 0.05²) the threshold mask keeps every patch: every class sees the same
    image, so the image tower runs B times (the unprompted pass), not B + B·k."""
    model = build_model(FEW, **settings).eval()
    x = images(2)
    assert bool((model.prompt_learner.sample_mask(2) == 1).all())
    expected = plain_eval_logits(model, x)
    seen = count_image_sequences(model, monkeypatch)
    with torch.no_grad():
        got = model(x)
    assert sum(seen) == 2
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_eval_shares_the_encoding_when_every_class_hides_the_same_patches(monkeypatch):
    """Class-specific P with equal masks, no interaction and no padding: the prompted image
    does not depend on the class, so each image is encoded once (plus its unprompted pass
    for nothing: no interaction needs none)."""
    model = build_model(FEW, class_specific=True, interact=False, pad=False).eval()
    pl = model.prompt_learner
    with torch.no_grad():
        pl.P.copy_(pl.P[0].expand_as(pl.P))
        pl.P[:, 2:4, 1:5] = 0.1  # the same hidden patches for every class
    x = images(2)
    expected = plain_eval_logits(model, x)
    seen = count_image_sequences(model, monkeypatch)
    with torch.no_grad():
        got = model(x)
    assert sum(seen) == 2
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        pl.P[1, 0, 0] = 0.2  # one class differs: back to one encoding per pair
    expected = plain_eval_logits(model, x)
    seen.clear()
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    assert sum(seen) == 2 * len(FEW)


def test_training_never_takes_the_shortcut(monkeypatch):
    """In training, P's straight-through gradient needs every (image, class) pair."""
    model = build_model(FEW, class_specific=True, p_init_mean=5.0, p_init_std=0.0).train()
    seen = count_image_sequences(model, monkeypatch)
    model(images(2)).sum().backward()
    assert sum(seen) == 2 + 2 * len(FEW)  # the unprompted pass (for f_I), then every pair
    assert model.prompt_learner.P.grad.abs().sum() > 0


def test_bf16_autocast_fast_path_equals_plain_path_and_every_gradient_is_finite():
    """AMMPL under CPU bf16 autocast (PREC "bf16"): the paths round differently (bf16 keeps
    8 significant bits, ~4e-3 relative), so they agree to bf16 accuracy, not exactly.
    Tolerances: logits within 2e-2 · max|logit|, each gradient within 5e-2 of its largest
    entry (measured: 5e-3 and at most 1.5e-2, torch 2.14 on x86_64)."""
    x = images(2)
    results = {}
    for fast in (False, True):
        model = build_model(FEW, class_specific=True)
        model.fast = fast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results[fast] = logits_and_grads(model, x)
    (plain_logits, plain_grads), (fast_logits, fast_grads) = results[False], results[True]
    scale = plain_logits.abs().max().item()
    torch.testing.assert_close(fast_logits, plain_logits, rtol=0, atol=2e-2 * scale)
    assert plain_grads.keys() == fast_grads.keys() == set(trainable(model))
    for name in plain_grads:
        for grads in (plain_grads, fast_grads):
            assert torch.isfinite(grads[name]).all(), name
            assert grads[name].abs().sum() > 0, name
        g_scale = plain_grads[name].abs().max().item()
        torch.testing.assert_close(
            fast_grads[name], plain_grads[name], rtol=0, atol=5e-2 * g_scale, msg=name
        )
