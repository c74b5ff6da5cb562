"""Patch padding: tiling, composition, and the exact embedding-mix fast path."""

import torch

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.trainers.ammpl.padding import (
    compose_images,
    embed_patches,
    mix_patch_tokens,
    tile_patch,
)
from tests._ammpl_helpers import GRID, PATCH, images, tiny_clip


def test_tile_repeats_the_patch_at_every_position():
    patch = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 3, 3)
    tiled = tile_patch(patch, 4)
    assert tiled.shape == (2, 12, 12)
    for row in range(4):
        for col in range(4):
            assert torch.equal(tiled[:, 3 * row : 3 * row + 3, 3 * col : 3 * col + 3], patch)


def test_masked_patches_show_the_fill_and_kept_patches_the_image():
    x = images(2)
    mask = torch.ones(2, 3, GRID, GRID)
    mask[0, 1, 2, 4] = 0  # image 0, class 1: patch (2, 4) masked
    mask[1, :, 0, 0] = 0  # image 1, every class: patch (0, 0) masked
    fill = torch.randn(2, 3, 3, PATCH, PATCH)  # per (image, class)
    out = compose_images(x, mask, fill)
    assert out.shape == (2, 3, 3, 224, 224)
    rows, cols = slice(2 * PATCH, 3 * PATCH), slice(4 * PATCH, 5 * PATCH)
    assert torch.equal(out[0, 1, :, rows, cols], fill[0, 1])
    assert torch.equal(out[0, 0, :, rows, cols], x[0, :, rows, cols])
    assert torch.equal(out[1, 2, :, :PATCH, :PATCH], fill[1, 2])
    # everything else is the image
    keep = mask[..., None, :, :].repeat_interleave(PATCH, -2).repeat_interleave(PATCH, -1)
    torch.testing.assert_close(out * keep, x[:, None] * keep)


def test_without_fill_masked_patches_are_zero():
    x = images(1)
    mask = torch.ones(1, 1, GRID, GRID)
    mask[0, 0, 6, 6] = 0
    out = compose_images(x, mask, None)
    assert out[0, 0, :, -PATCH:, -PATCH:].eq(0).all()
    assert torch.equal(out[0, 0, :, :PATCH, :PATCH], x[0, :, :PATCH, :PATCH])


def test_embed_patches_equals_the_encoders_patch_embedding():
    encoder = ImageEncoder(tiny_clip())
    # A fixed draw: with atol 1e-6 on sums of 3,072 products, whether a draw passes must
    # not depend on which tests ran before (the global RNG state).
    patches = torch.randn(2, 5, 3, PATCH, PATCH, generator=torch.Generator().manual_seed(0))
    expected = encoder.patch_embed(patches.flatten(0, 1)).view(2, 5, -1)
    # sums of 3·32·32 products in another order: fp32 rounding up to ~1e-6 of the scale
    scale = expected.abs().max().item()
    torch.testing.assert_close(
        embed_patches(encoder.conv1, patches), expected, rtol=1e-5, atol=1e-5 * scale
    )


def test_embedding_mix_equals_materialised_images_values_and_gradients():
    encoder = ImageEncoder(tiny_clip())
    x = images(2)
    torch.manual_seed(0)
    P = torch.nn.Parameter(torch.rand(3, GRID, GRID))
    fill = torch.nn.Parameter(torch.randn(2, 3, 3, PATCH, PATCH) * 0.5)
    mask = ((torch.rand(2, 3, GRID, GRID) < 0.7).float() - P).detach() + P  # straight-through

    plain = encoder(compose_images(x, mask, fill).flatten(0, 1))
    plain_grads = torch.autograd.grad(plain.pow(2).sum(), [P, fill])

    tokens = mix_patch_tokens(encoder.patch_embed(x), mask, embed_patches(encoder.conv1, fill))
    assert tokens.shape == (2, 3, GRID * GRID, 96)
    fast = encoder.forward_tokens(tokens.flatten(0, 1))
    fast_grads = torch.autograd.grad(fast.pow(2).sum(), [P, fill])

    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    for a, b in zip(fast_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * b.abs().max().item())


def test_mix_broadcasts_a_shared_mask_and_fill():
    tokens = torch.randn(4, GRID * GRID, 8)
    mask = torch.ones(1, 1, GRID, GRID)
    mask[..., 0, 0] = 0
    fill = torch.randn(1, 1, 8)
    out = mix_patch_tokens(tokens, mask, fill)
    assert out.shape == (4, 1, GRID * GRID, 8)
    assert torch.equal(out[:, 0, 0], fill[0].expand(4, 8))
    assert torch.equal(out[:, 0, 1:], tokens[:, 1:])
