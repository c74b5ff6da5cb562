"""The learnable patch mask (paper §2.3.1, Eq. 3, 11–12).

P holds per patch the probability of KEEPING it (AMMPL.md: the equations, not the prose).
Masks are laid out as (B|1, C|1, b, b): images first, then classes (C = k for a
class-specific P, 1 for the shared one), so they broadcast against (image, class) pairs.
Mask value 1 keeps a patch, 0 masks it.
"""

from __future__ import annotations

import torch

from ammpl.trainers.ammpl.config import TEST_MASK_MODES


def init_keep_probability(shape: tuple[int, ...], mean: float, std: float) -> torch.Tensor:
    """P ~ N(mean, std²), fp32, from the global RNG (so the run seed fixes it)."""
    return torch.empty(shape).normal_(mean=mean, std=std)


def _as_grid(P: torch.Tensor) -> torch.Tensor:
    """P (b, b) or (k, b, b) → (1, C, b, b)."""
    return P.unsqueeze(0) if P.dim() == 3 else P.view(1, 1, *P.shape)


def straight_through(sample: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """M_st = (M − P).detach() + P: forward value M, and dL/dP = dL/dM (Eq. 11–12).

    P enters unclamped, so patches whose P left [0, 1] still get a gradient.
    """
    return (sample - P).detach() + P


def sample_train_mask(
    P: torch.Tensor,
    batch_size: int,
    per_image: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A fresh Bernoulli(clamp(P, 0, 1)) mask with the straight-through gradient.

    Shape (B, C, b, b) with independent draws per image, or (1, C, b, b) when one draw is
    shared by the batch. P itself is never modified.
    """
    grid = _as_grid(P)
    leading = batch_size if per_image else 1
    prob = grid.detach().clamp(0, 1).expand(leading, *grid.shape[1:])
    sample = torch.bernoulli(prob, generator=generator)
    return straight_through(sample, grid)


def eval_mask(
    P: torch.Tensor,
    mode: str,
    batch_size: int,
    per_image: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    """The evaluation mask for TEST_MASK `mode` (AMMPL.md "Test-time mask"); None = no mask.

    threshold: keep where P ≥ 0.5 (the most probable mask); expected: clamp(P, 0, 1) as a
    soft mask; sample: a Bernoulli draw from `generator` (seeded per run); none: None.
    """
    if mode not in TEST_MASK_MODES:
        raise ValueError(f"unknown test mask mode {mode!r}; expected one of {TEST_MASK_MODES}")
    grid = _as_grid(P).detach()
    if mode == "none":
        return None
    if mode == "threshold":
        return (grid >= 0.5).to(grid.dtype)
    if mode == "expected":
        return grid.clamp(0, 1)
    leading = batch_size if per_image else 1
    prob = grid.clamp(0, 1).expand(leading, *grid.shape[1:])
    if generator is not None and generator.device != prob.device:
        return torch.bernoulli(prob.to(generator.device), generator=generator).to(prob.device)
    return torch.bernoulli(prob, generator=generator)


def mask_to_pixels(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Patch mask (..., b, b) → pixel mask (..., 1, b·q, b·q) (each value fills its q×q patch)."""
    pixels = mask.repeat_interleave(patch_size, dim=-2).repeat_interleave(patch_size, dim=-1)
    return pixels.unsqueeze(-3)


def mask_to_tokens(mask: torch.Tensor) -> torch.Tensor:
    """Patch mask (..., b, b) → per-token weights (..., b·b, 1), in the ViT's row-major order."""
    return mask.flatten(-2).unsqueeze(-1)
