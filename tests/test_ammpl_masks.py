"""Patch mask: Bernoulli sampling, straight-through gradient, test-time modes."""

import pytest
import torch

from ammpl.trainers.ammpl.masks import (
    eval_mask,
    init_keep_probability,
    mask_to_pixels,
    mask_to_tokens,
    sample_train_mask,
    straight_through,
)


def test_init_has_requested_moments():
    torch.manual_seed(0)
    P = init_keep_probability((200, 14, 14), mean=0.9, std=0.05)
    assert P.shape == (200, 14, 14) and P.dtype == torch.float32
    assert abs(P.mean().item() - 0.9) < 2e-3
    assert abs(P.std().item() - 0.05) < 2e-3


@pytest.mark.parametrize("shape, classes", [((7, 7), 1), ((5, 7, 7), 5)])
def test_train_mask_shapes_and_values(shape, classes):
    P = torch.full(shape, 0.5)
    per_image = sample_train_mask(P, batch_size=4, per_image=True)
    per_batch = sample_train_mask(P, batch_size=4, per_image=False)
    assert per_image.shape == (4, classes, 7, 7)
    assert per_batch.shape == (1, classes, 7, 7)
    assert set(per_image.detach().unique().tolist()) <= {0.0, 1.0}


def test_masks_are_independent_per_image_and_fresh_per_call():
    P = torch.full((7, 7), 0.5)
    torch.manual_seed(0)
    first = sample_train_mask(P, 8)
    second = sample_train_mask(P, 8)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first, second)


def test_sampling_follows_clamped_probabilities():
    P = torch.tensor([[-0.3, 0.0], [1.0, 1.7]])
    torch.manual_seed(0)
    samples = sample_train_mask(P, 64).detach()
    assert torch.equal(samples[:, 0, 0, 0], torch.zeros(64))  # P < 0: always masked
    assert torch.equal(samples[:, 0, 1, 1], torch.ones(64))  # P > 1: always kept
    frequent = sample_train_mask(torch.full((20, 20), 0.9), 50).detach().mean().item()
    assert abs(frequent - 0.9) < 0.02


def test_sampling_leaves_P_unchanged():
    P = torch.nn.Parameter(torch.tensor([[-0.2, 0.4], [0.95, 1.3]]))
    before = P.detach().clone()
    for _ in range(5):
        sample_train_mask(P, 3)
        eval_mask(P, "sample", 3, generator=torch.Generator().manual_seed(0))
        eval_mask(P, "threshold", 3)
    assert torch.equal(P.detach(), before)


def test_straight_through_gradient_reaches_P_and_equals_dL_dM():
    torch.manual_seed(0)
    P = torch.nn.Parameter(torch.rand(5, 7, 7) * 1.4 - 0.2)  # some entries outside [0, 1]
    mask = sample_train_mask(P, batch_size=3)
    mask.retain_grad()
    weights = torch.randn(3, 5, 7, 7)
    (mask * weights).pow(2).sum().backward()
    assert P.grad is not None and P.grad.abs().sum() > 0
    # every image's mask is a broadcast of P, so dL/dP is the sum of dL/dM over images
    torch.testing.assert_close(P.grad, mask.grad.sum(0))
    # and the forward value is the binary sample itself
    torch.testing.assert_close(mask.detach(), mask.detach().round())


def test_straight_through_value_and_identity_gradient():
    P = torch.nn.Parameter(torch.tensor([0.3, 0.8]))
    M = torch.tensor([1.0, 0.0])
    out = straight_through(M, P)
    assert torch.equal(out.detach(), M)
    out.backward(torch.tensor([2.0, -3.0]))
    assert torch.equal(P.grad, torch.tensor([2.0, -3.0]))


def test_threshold_and_expected_modes():
    P = torch.tensor([[0.2, 0.5], [0.49, 1.3]])
    threshold = eval_mask(P, "threshold", batch_size=4)
    assert threshold.shape == (1, 1, 2, 2)
    assert torch.equal(threshold[0, 0], torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    expected = eval_mask(P, "expected", batch_size=4)
    assert torch.equal(expected[0, 0], torch.tensor([[0.2, 0.5], [0.49, 1.0]]))
    assert eval_mask(P, "none", batch_size=4) is None
    with pytest.raises(ValueError):
        eval_mask(P, "random", 4)


def test_sample_mode_is_deterministic_for_a_seed():
    P = torch.full((3, 7, 7), 0.5)
    first = eval_mask(P, "sample", 4, generator=torch.Generator().manual_seed(7))
    again = eval_mask(P, "sample", 4, generator=torch.Generator().manual_seed(7))
    other = eval_mask(P, "sample", 4, generator=torch.Generator().manual_seed(8))
    assert first.shape == (4, 3, 7, 7)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_pixel_and_token_layouts_match_the_vit():
    mask = torch.zeros(1, 1, 3, 3)
    mask[0, 0, 1, 2] = 1.0  # row 1, column 2
    pixels = mask_to_pixels(mask, patch_size=4)
    assert pixels.shape == (1, 1, 1, 12, 12)
    assert pixels[0, 0, 0, 4:8, 8:12].eq(1).all() and pixels.sum() == 16
    tokens = mask_to_tokens(mask)
    assert tokens.shape == (1, 1, 9, 1)
    assert tokens[0, 0, :, 0].nonzero().flatten().tolist() == [1 * 3 + 2]
