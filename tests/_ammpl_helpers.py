"""Shared pieces of the AMMPL tests: a frozen tiny CLIP, model builders, comparisons."""

from __future__ import annotations

import functools

import torch

from ammpl.clip.tiny import build_tiny_clip
from ammpl.trainers.ammpl.config import AmmplSettings
from ammpl.trainers.ammpl.model import AmmplCLIP

CLASSNAMES = ["circle", "square", "golden retriever", "star", "sea_turtle"]
TEXT_WIDTH, JOINT_WIDTH, GRID, PATCH = 64, 48, 7, 32  # the tiny backbone's geometry


@functools.lru_cache(maxsize=1)
def tiny_clip() -> torch.nn.Module:
    model = build_tiny_clip(0).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def build_model(classnames=CLASSNAMES, seed: int = 0, **settings) -> AmmplCLIP:
    torch.manual_seed(seed)
    return AmmplCLIP(AmmplSettings(**settings), list(classnames), tiny_clip())


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 224, 224, generator=generator)


def trainable(model: AmmplCLIP) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.prompt_learner.named_parameters() if p.requires_grad}


def logits_and_grads(model: AmmplCLIP, x: torch.Tensor, train: bool = True, rng_seed: int = 1):
    """Logits and d(loss)/d(every trainable tensor) for a fixed mask draw."""
    model.train(train)
    torch.manual_seed(rng_seed)
    logits = model(x)
    labels = torch.arange(x.shape[0]) % logits.shape[1]
    loss = torch.nn.functional.cross_entropy(logits, labels)
    params = trainable(model)
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
    return logits.detach(), dict(zip(params, grads))


def assert_same_results(first, second, atol: float = 1e-4) -> None:
    """Same logits, and same gradients relative to their scale."""
    logits_a, grads_a = first
    logits_b, grads_b = second
    torch.testing.assert_close(logits_a, logits_b, rtol=1e-4, atol=atol)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        scale = grads_a[name].abs().max().item()
        torch.testing.assert_close(
            grads_a[name], grads_b[name], rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=name
        )
