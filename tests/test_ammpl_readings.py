"""AMMPL's options for the paper's open readings (AMMPL.md "Readings still open"), model side:
INTERACT_INIT, FILL_MAX_NORM, STE and TEST_DRAWS. Optimiser groups: test_ammpl_readings_optim.
"""

from __future__ import annotations

import pytest
import torch

from ammpl.clip import tokenize
from ammpl.trainers.ammpl import AmmplSettings
from ammpl.trainers.ammpl.model import ALL
from ammpl.trainers.ammpl.padding import (
    bound_fill,
    compose_images,
    embed_patches,
    mean_token_norm,
    mix_patch_tokens,
)
from ammpl.utils import ConfigError
from tests._ammpl_helpers import (
    CLASSNAMES,
    GRID,
    PATCH,
    assert_same_results,
    build_model,
    images,
    logits_and_grads,
    trainable,
)

K = len(CLASSNAMES)
FEW = ["circle", "golden retriever", "sea_turtle"]
ORDERS = ("image_first", "text_first")


def test_defaults_are_the_behaviour_of_before():
    s = AmmplSettings()
    assert (s.interact_init, s.fill_max_norm, s.ste, s.test_draws) == ("default", 0.0, "fill", 1)
    assert s.lr_mults() == {"pad": 1.0, "f_T": 1.0, "f_I": 1.0}


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(interact_init="small"), "INTERACT_INIT must be one of default, zero"),
        (dict(ste="pixel"), "STE must be one of fill, image"),
        (dict(test_draws=0), "TEST_DRAWS must be ≥ 1"),
        (dict(test_draws=4), "TEST_DRAWS 4 needs TEST_MASK sample"),
        (dict(fill_max_norm=-1.0), "FILL_MAX_NORM must be ≥ 0"),
        (dict(pad_lr_mult=-2.0), "PAD_LR_MULT must be ≥ 0"),
        (dict(f_t_lr_mult=float("nan")), "F_T_LR_MULT must be ≥ 0"),
        (dict(f_i_lr_mult=-0.5), "F_I_LR_MULT must be ≥ 0"),
    ],
)
def test_bad_option_values_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        AmmplSettings(**settings)


# -- INTERACT_INIT ------------------------------------------------------------------


@pytest.mark.parametrize("class_specific", [False, True])
def test_zero_init_zeroes_only_the_output_layers_and_draws_the_same_numbers(class_specific):
    default = trainable(build_model(class_specific=class_specific))
    zero = trainable(build_model(class_specific=class_specific, interact_init="zero"))
    assert {n: p.shape for n, p in zero.items()} == {n: p.shape for n, p in default.items()}
    for name, value in zero.items():
        if name.endswith(("weight2", "bias2")):
            assert not value.any(), name
            assert default[name].any(), name
        else:  # same RNG stream: everything else, P and N included, is the default's
            torch.testing.assert_close(value, default[name], rtol=0, atol=0, msg=name)


def _copy_shared(source, target) -> None:
    """Give `target` the context, P and N of `source`."""
    state = {k: v for k, v in source.prompt_learner.state_dict().items() if "f_" not in k}
    target.prompt_learner.load_state_dict(state, strict=False)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_zero_init_first_forward_is_the_coop_prompt_with_fill_n(order, class_specific, train):
    """Step 0 with INTERACT_INIT zero: the text side sees exactly the context ("a photo of
    a"), masked patches show exactly N; so the logits are those of the model without
    interaction (C1+C2: CoOp's prompt and the padding N) for the same mask draw."""
    settings = dict(class_specific=class_specific, interaction_order=order, test_mask="expected")
    zero = build_model(FEW, interact_init="zero", **settings)
    plain = build_model(FEW, interact=False, **settings)
    _copy_shared(zero, plain)
    x = images(2)
    logits_zero, _ = logits_and_grads(zero, x, train=train)
    logits_plain, _ = logits_and_grads(plain, x, train=train)
    torch.testing.assert_close(logits_zero, logits_plain, rtol=1e-5, atol=1e-5)
    # the default initialisation is far from that: the check can fail
    default = build_model(FEW, **settings)
    _copy_shared(zero, default)
    assert not torch.allclose(logits_and_grads(default, x, train=train)[0], logits_plain, atol=1e-2)


def test_zero_init_step_zero_prompt_is_a_photo_of_a_and_the_fill_is_n():
    model = build_model(class_specific=True, interact_init="zero").eval()
    pl = model.prompt_learner
    with torch.no_grad():
        pl.P.fill_(1.0)
        pl.P[2, 3, 4] = 0.0  # class 2 masks patch (3, 4)
    x = images(2)
    with torch.no_grad():
        x0 = model.image_encoder(x)
        h = pl.image_to_text(x0[:, None], ALL)
        shown = model.prompted_images(x)
    assert not h.any()
    words = model.text_encoder.token_embedding(tokenize(["a photo of a"])[0, 1:5]).float()
    context = pl.prompts(ALL, h)[:, :, 1:5]
    torch.testing.assert_close(context, words.expand_as(context), rtol=0, atol=0)
    patch = shown[:, 2, :, 3 * PATCH : 4 * PATCH, 4 * PATCH : 5 * PATCH]
    torch.testing.assert_close(patch, pl.pad[2].detach().expand_as(patch), rtol=0, atol=0)


def test_zero_init_networks_learn_from_step_zero():
    """Only the output layers get a gradient at step 0 (the hidden layer sees a zero
    output weight), so both networks start moving at once."""
    model = build_model(class_specific=True, interact_init="zero")
    _, grads = logits_and_grads(model, images(2))
    for net in ("f_I", "f_T"):
        assert grads[f"{net}.weight2"].abs().sum() > 0, net
        assert not grads[f"{net}.weight1"].any(), net


# -- FILL_MAX_NORM -------------------------------------------------------------------


def test_bound_fill_caps_the_embedding_norm_and_keeps_small_fills():
    model = build_model()
    conv = model.image_encoder.conv1
    fill = torch.randn(1, 3, 3, PATCH, PATCH)  # (1, C, u, q, q)
    fill[0, 1] *= 1e-3  # class 1: a small fill
    norms = embed_patches(conv, fill).norm(dim=-1)  # (1, 3)
    reference = torch.tensor([1.0, 2.0]) * norms[0, 0] / 4  # two images
    bounded = bound_fill(fill, conv, reference, max_ratio=2.0)
    assert bounded.shape == (2, 3, 3, PATCH, PATCH)
    out = embed_patches(conv, bounded).norm(dim=-1)
    torch.testing.assert_close(out[:, 0], 2.0 * reference, rtol=1e-5, atol=0)
    torch.testing.assert_close(bounded[:, 1], fill[:, 1].expand(2, 3, PATCH, PATCH))
    # direction kept
    cos = torch.nn.functional.cosine_similarity(bounded[0, 0].flatten(), fill[0, 0].flatten(), 0)
    assert cos.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("class_specific", [False, True])
def test_fill_max_norm_bounds_what_masked_patches_show(class_specific):
    ratio = 0.1
    model = build_model(class_specific=class_specific, fill_max_norm=ratio).eval()
    with torch.no_grad():
        model.prompt_learner.P.fill_(0.0)  # every patch masked: every patch shows the fill
    x = images(2)
    with torch.no_grad():
        shown = model.prompted_images(x)  # (B, K, u, H, W)
        tokens = model.image_encoder.patch_embed(x)
        reference = mean_token_norm(tokens)
        patches = shown[..., :PATCH, :PATCH]
        norms = embed_patches(model.image_encoder.conv1, patches).norm(dim=-1)  # (B, K)
    # with nn.Linear's default init E is large: every fill sits on the bound
    torch.testing.assert_close(
        norms, ratio * reference[:, None].expand_as(norms), rtol=1e-4, atol=0
    )
    off = build_model(class_specific=class_specific).eval()
    with torch.no_grad():
        off.prompt_learner.P.fill_(0.0)
        unbounded = embed_patches(
            off.image_encoder.conv1, off.prompted_images(x)[..., :PATCH, :PATCH]
        )
    assert (unbounded.norm(dim=-1) > 2 * norms).all()


def test_a_loose_fill_bound_changes_nothing():
    x = images(2)
    off = logits_and_grads(build_model(FEW, class_specific=True), x)
    loose = logits_and_grads(build_model(FEW, class_specific=True, fill_max_norm=1e6), x)
    assert_same_results(loose, off, atol=1e-6)


# -- STE -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["plain", "fast"])
def test_ste_image_gives_p_the_gradient_of_the_image_term_only(path):
    """d(Σ g·Î)/dM per patch: Σ g·(I − fill) with STE "fill", Σ g·I with STE "image"."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, GRID * PATCH, GRID * PATCH)
    model = build_model()
    conv = model.image_encoder.conv1
    tokens = model.image_encoder.patch_embed(x).detach()
    g_pixels = torch.randn(2, 3, 3, GRID * PATCH, GRID * PATCH)
    g_tokens = torch.randn(2, 3, GRID * GRID, tokens.shape[-1])

    def compose(mask, fill, through_fill, probe=False):
        if path == "plain":
            return g_pixels if probe else compose_images(x, mask, fill, through_fill)
        if probe:
            return g_tokens
        return mix_patch_tokens(tokens, mask, embed_patches(conv, fill), through_fill)

    fill = torch.randn(1, 3, 3, PATCH, PATCH)
    torch.manual_seed(0)
    expected = {}
    if path == "plain":
        image = x[:, None].expand(2, 3, *x.shape[1:])
        tiled = fill.repeat(1, 1, 1, GRID, GRID)
        per_pixel = {"image": g_pixels * image, "fill": g_pixels * (image - tiled)}
        for key, value in per_pixel.items():
            expected[key] = value.sum(2).unflatten(-1, (GRID, PATCH)).unflatten(-3, (GRID, PATCH))
            expected[key] = expected[key].sum((-3, -1))
    else:
        fill_tokens = embed_patches(conv, fill)[..., None, :]
        per_token = {
            "image": g_tokens * tokens[:, None],
            "fill": g_tokens * (tokens[:, None] - fill_tokens),
        }
        for key, value in per_token.items():
            expected[key] = value.sum(-1).view(2, 3, GRID, GRID)
    mask = torch.rand(2, 3, GRID, GRID).round().requires_grad_(True)
    for key, through_fill in (("fill", True), ("image", False)):
        out = compose(mask, fill, through_fill)
        (grad,) = torch.autograd.grad(
            (out * compose(mask, fill, through_fill, probe=True)).sum(), mask
        )
        torch.testing.assert_close(grad, expected[key], rtol=1e-4, atol=1e-4, msg=key)
    assert not torch.allclose(expected["fill"], expected["image"])


@pytest.mark.parametrize("class_specific", [False, True])
def test_ste_changes_only_the_gradient_of_p(class_specific):
    x = images(2)
    fill_logits, fill_grads = logits_and_grads(build_model(FEW, class_specific=class_specific), x)
    image_logits, image_grads = logits_and_grads(
        build_model(FEW, class_specific=class_specific, ste="image"), x
    )
    torch.testing.assert_close(image_logits, fill_logits, rtol=0, atol=0)
    for name, grad in fill_grads.items():
        if name == "P":
            assert not torch.allclose(image_grads[name], grad, atol=1e-6)
        else:
            torch.testing.assert_close(image_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


# -- TEST_DRAWS ----------------------------------------------------------------------


@pytest.mark.parametrize("per_image", [True, False])
def test_test_draws_average_the_logits_of_successive_seeded_draws(per_image):
    settings = dict(class_specific=True, test_mask="sample", mask_per_image=per_image, seed=5)
    many = build_model(FEW, test_draws=3, **settings).eval()
    one = build_model(FEW, **settings).eval()
    one.prompt_learner.load_state_dict(many.prompt_learner.state_dict())
    x = images(2)
    with torch.no_grad():
        singles = [one(x) for _ in range(3)]  # the generator's first three draws
        averaged = many(x)
        expected = torch.stack(singles).mean(dim=0)
        torch.testing.assert_close(averaged, expected, rtol=0, atol=0)
        assert not torch.equal(averaged, singles[0])
        assert not torch.equal(many(x), averaged)  # the next batch: draws 4-6
        many.eval()  # a new evaluation starts again from the run seed
        assert torch.equal(many(x), averaged)


def test_test_draws_leave_training_alone():
    x = images(2)
    one = logits_and_grads(build_model(FEW, test_mask="sample"), x)
    many = logits_and_grads(build_model(FEW, test_mask="sample", test_draws=4), x)
    assert_same_results(many, one, atol=0)


# -- every option on the fast and the plain path -------------------------------------

READINGS = [
    dict(class_specific=True, interact_init="zero"),
    dict(class_specific=False, interact_init="zero", interaction_order="text_first"),
    dict(class_specific=True, fill_max_norm=0.2),
    dict(class_specific=False, fill_max_norm=0.2, interaction_order="text_first"),
    dict(class_specific=False, fill_max_norm=0.2, interact=False),
    dict(class_specific=True, fill_max_norm=0.2, interact=False),
    dict(class_specific=True, ste="image"),
    dict(class_specific=False, ste="image", interact=False),
    dict(class_specific=True, test_mask="sample", test_draws=3),
    dict(class_specific=False, test_mask="sample", test_draws=2, mask_per_image=False),
    dict(
        class_specific=True,
        interact_init="zero",
        fill_max_norm=0.2,
        ste="image",
        test_mask="sample",
        test_draws=2,
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    "settings", READINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_every_reading_gives_the_same_results_on_the_fast_and_the_plain_path(settings):
    model = build_model(FEW, **settings)
    x = images(2)
    model.fast = False
    plain = logits_and_grads(model, x)
    plain_eval = logits_and_grads(model, x, train=False)
    model.fast = True
    assert_same_results(logits_and_grads(model, x), plain)
    assert_same_results(logits_and_grads(model, x, train=False), plain_eval)
