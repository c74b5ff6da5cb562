"""Patch padding (paper §2.3.2, Eq. 5, 9): masked patches show a learnable patch N (+ E).

    Î[b, i] = M[b, i] ⊙ I[b] + (1 − M[b, i]) ⊙ tile(N_i + E[b, i])

The mask's straight-through gradient (Eq. 11–12) reaches P through every place M enters.
`mask_grad_to_fill` True (TRAINER.AMMPL.STE "fill") lets it through both terms, so dÎ/dM =
I − fill; False ("image") only through M ⊙ I (Eq. 4 read literally: the fill is added to
the masked image afterwards, Eq. 5), so dÎ/dM = I. The forward values are the same.

Two exact ways to feed Î to the ViT. `compose_images` materialises the B·k images (the
plain path). `mix_patch_tokens` uses that the ViT's patch embedding is linear with no bias,
so per patch embed(Î) = M·embed(I) + (1 − M)·embed(N + E): each image and each padding
patch is embedded once and only the (B, k, P, d) token grid is formed (the fast path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ammpl.trainers.ammpl.masks import mask_to_pixels, mask_to_tokens


def init_padding(shape: tuple[int, ...], std: float) -> torch.Tensor:
    """N ~ N(0, std²), fp32, from the global RNG."""
    return torch.empty(shape).normal_(mean=0.0, std=std)


def tile_patch(patch: torch.Tensor, grid: int) -> torch.Tensor:
    """(..., u, q, q) → (..., u, b·q, b·q): the same patch at every patch position."""
    reps = [1] * (patch.dim() - 2) + [grid, grid]
    return patch.repeat(*reps)


def _pair_shape(images: int, mask: torch.Tensor, fill: torch.Tensor | None) -> tuple[int, int]:
    classes = max(mask.shape[1], fill.shape[1] if fill is not None else 1)
    return images, classes


def compose_images(
    images: torch.Tensor,
    mask: torch.Tensor,
    fill: torch.Tensor | None,
    mask_grad_to_fill: bool = True,
) -> torch.Tensor:
    """Materialised prompted images (B, C, u, H, W).

    images (B, u, H, W); mask (B|1, C|1, b, b); fill (B|1, C|1, u, q, q) or None (masked
    patches become zeros, ablation C1 alone).
    """
    batch, classes = _pair_shape(images.shape[0], mask, fill)
    grid = mask.shape[-1]
    pixel_mask = mask_to_pixels(mask, images.shape[-1] // grid).to(images.dtype)
    out = pixel_mask * images[:, None]
    if fill is not None:
        fill_mask = pixel_mask if mask_grad_to_fill else pixel_mask.detach()
        out = out + (1 - fill_mask) * tile_patch(fill.to(images.dtype), grid)
    return out.expand(batch, classes, *images.shape[1:])


def mix_patch_tokens(
    image_tokens: torch.Tensor,
    mask: torch.Tensor,
    fill_tokens: torch.Tensor | None,
    mask_grad_to_fill: bool = True,
) -> torch.Tensor:
    """Patch tokens of the prompted images (B, C, P, d) without forming the images.

    image_tokens (B, P, d) = patch_embed(images); mask (B|1, C|1, b, b); fill_tokens
    (B|1, C|1, d) = patch_embed of the padding patch, or None for zero padding.
    """
    batch, classes = _pair_shape(image_tokens.shape[0], mask, fill_tokens)
    weights = mask_to_tokens(mask).to(image_tokens.dtype)
    out = weights * image_tokens[:, None]
    if fill_tokens is not None:
        fill_weights = weights if mask_grad_to_fill else weights.detach()
        out = out + (1 - fill_weights) * fill_tokens.to(image_tokens.dtype)[..., None, :]
    return out.expand(batch, classes, *image_tokens.shape[1:])


def embed_patches(patch_conv: nn.Conv2d, patches: torch.Tensor) -> torch.Tensor:
    """Patch embedding of single patches (..., u, q, q) → (..., d_v).

    A q×q convolution with stride q and no bias over one q×q patch is one product with the
    flattened kernel; as a matrix product its backward is several times cheaper on CPU
    than the convolution's. Equals `ImageEncoder.patch_embed` on the same patches.
    """
    weight = patch_conv.weight
    flat = patches.reshape(*patches.shape[:-3], -1).to(weight.dtype)
    return F.linear(flat, weight.reshape(weight.shape[0], -1))


def mean_token_norm(image_tokens: torch.Tensor) -> torch.Tensor:
    """(B, P, d) patch tokens → (B,) mean over the image's patches of ‖token‖, in fp32."""
    return image_tokens.float().norm(dim=-1).mean(dim=-1)


def bound_fill(
    fill: torch.Tensor, patch_conv: nn.Conv2d, reference: torch.Tensor, max_ratio: float
) -> torch.Tensor:
    """The fill scaled down where ‖embed(fill)‖ > max_ratio · reference (TRAINER.AMMPL.
    FILL_MAX_NORM); elsewhere unchanged.

    fill (B|1, C|1, u, q, q); reference (B,), the mean patch-token norm of each image →
    (B, C|1, u, q, q). The embedding is linear, so scaling the pixels scales the token by
    the same factor, on the plain and the fast path alike. The factor is differentiable
    (a bounded fill still learns its direction).
    """
    norm = embed_patches(patch_conv, fill).float().norm(dim=-1)  # (B|1, C|1)
    limit = max_ratio * reference.float()[:, None]  # (B, 1)
    scale = (limit / norm.clamp_min(torch.finfo(torch.float32).tiny)).clamp(max=1.0)
    return fill * scale[..., None, None, None].to(fill.dtype)
