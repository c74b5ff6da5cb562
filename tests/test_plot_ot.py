"""PLOT's Sinkhorn head against BASELINES_EXTRA §4: P1 marginals, P2/P3 one prompt or one
local feature, P4 ε limits, P5 the detached plan, P10 the stopping rule, and the fp32
option / non-finite error of quirk P-Q3."""

from __future__ import annotations

import pytest
import torch

from ammpl.trainers.plot.ot import (
    SinkhornSettings,
    pair_similarities,
    plot_logits,
    sinkhorn,
    transport_plan,
    transported_similarity,
)
from ammpl.utils import AmmplError


def random_similarity(problems=6, m=5, n=3, seed=0, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(problems, m, n, generator=generator, dtype=torch.float64) * 2 - 1).to(dtype)


def uniform(problems: int, size: int, dtype) -> torch.Tensor:
    return torch.full((problems, size), 1.0 / size, dtype=dtype)


def transcribed_sinkhorn(kernel, u, v, max_iter=100, thresh=1e-2):
    """§3.4 written out as the reference loop (separate from the implementation)."""
    r, c = torch.ones_like(u), torch.ones_like(v)
    for i in range(max_iter):  # noqa: B007  (i is the iteration count)
        r0 = r
        r = u / torch.matmul(kernel, c.unsqueeze(-1)).squeeze(-1)
        c = v / torch.matmul(kernel.permute(0, 2, 1).contiguous(), r.unsqueeze(-1)).squeeze(-1)
        if (r - r0).abs().mean().item() < thresh:
            break
    return torch.matmul(r.unsqueeze(-1), c.unsqueeze(-2)) * kernel, i + 1


def test_p1_marginals():
    sim = random_similarity()
    plan = transport_plan(sim, SinkhornSettings())
    torch.testing.assert_close(plan.sum(dim=1), torch.full((6, 3), 1 / 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.sum(dim=(1, 2)), torch.ones(6), atol=1e-6, rtol=0)
    tight = transport_plan(sim.double(), SinkhornSettings(max_iter=1000, thresh=1e-12))
    torch.testing.assert_close(
        tight.sum(dim=2), torch.full((6, 5), 1 / 5, dtype=torch.float64), atol=1e-9, rtol=0
    )


def test_p2_one_prompt_averages_the_locals():
    sim = random_similarity(n=1)
    plan = transport_plan(sim, SinkhornSettings())
    torch.testing.assert_close(plan[..., 0], torch.full((6, 5), 1 / 5), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(
        transported_similarity(sim, SinkhornSettings()), sim.mean(dim=(1, 2)), atol=1e-6, rtol=0
    )


def test_p3_one_local_feature_averages_the_prompts():
    sim = random_similarity(m=1, n=4)
    plan = transport_plan(sim, SinkhornSettings())
    torch.testing.assert_close(plan[:, 0], torch.full((6, 4), 1 / 4), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(
        transported_similarity(sim, SinkhornSettings()), sim.mean(dim=(1, 2)), atol=1e-6, rtol=0
    )


def test_p4_large_eps_is_uniform():
    sim = random_similarity()
    plan = transport_plan(sim, SinkhornSettings(eps=1e6))
    torch.testing.assert_close(plan, torch.full_like(plan, 1 / 15), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        transported_similarity(sim, SinkhornSettings(eps=1e6)), sim.mean(dim=(1, 2)), atol=1e-5,
        rtol=0,
    )  # fmt: skip


def test_p4_small_eps_recovers_the_permutation():
    size = 4
    permutation = torch.tensor([2, 0, 3, 1])
    match = torch.zeros(size, size, dtype=torch.float64)
    match[torch.arange(size), permutation] = 1
    cost = (1 - match) * 0.5
    sim = (1 - cost).unsqueeze(0)
    plan = transport_plan(sim, SinkhornSettings(eps=0.01, max_iter=1000, thresh=1e-14))
    torch.testing.assert_close(plan[0], match / size, atol=1e-12, rtol=0)


def test_p5_plan_is_a_constant_for_autograd():
    settings = SinkhornSettings()
    sim = random_similarity(problems=2, m=3, n=2, seed=3, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(100 * transported_similarity(sim, settings).sum(), sim)
    plan = transport_plan(sim.detach(), settings)
    torch.testing.assert_close(grad, 100 * plan)

    # The full map S ↦ Σ T(S)·S has another derivative: T does depend on S.
    def full(s: torch.Tensor) -> torch.Tensor:
        return 100 * (transport_plan(s, settings) * s).sum()

    step = 1e-6
    index = (0, 1, 1)
    shifted_up, shifted_down = sim.detach().clone(), sim.detach().clone()
    shifted_up[index] += step
    shifted_down[index] -= step
    finite_difference = (full(shifted_up) - full(shifted_down)) / (2 * step)
    assert abs(finite_difference - grad[index]) > 1e-3


def test_p10_stops_where_the_reference_loop_stops():
    sim = random_similarity(problems=40, m=49, n=4, seed=5)
    kernel = torch.exp(-(1 - sim) / 0.1)
    u, v = uniform(40, 49, torch.float32), uniform(40, 4, torch.float32)
    expected, expected_iterations = transcribed_sinkhorn(kernel, u, v)
    result = sinkhorn(kernel, u, v, max_iter=100, thresh=1e-2)
    assert 1 < result.iterations < 100
    assert result.iterations == expected_iterations
    torch.testing.assert_close(result.plan, expected, atol=1e-6, rtol=1e-6)
    capped = sinkhorn(kernel, u, v, max_iter=1, thresh=1e-2)
    assert capped.iterations == 1


def test_pair_similarity_rows_are_image_major():
    local = torch.randn(5, 2, 8)  # (M, B, e)
    text = torch.randn(3, 4, 8)  # (N, K, e)
    sim = pair_similarities(local, text)
    assert sim.shape == (2 * 4, 5, 3)
    b, c = 1, 2
    torch.testing.assert_close(sim[b * 4 + c], local[:, b] @ text[:, c].T)


def test_fp32_option_and_non_finite_plan():
    """P-Q3: in fp16 a very dissimilar pair overflows the first scaling (r ≈ 1/(M·N·K)),
    the reference then crashes; here that is a one-line error, and OT_FP32 computes it."""
    sim = torch.full((1, 49, 4), -0.9, dtype=torch.float16)
    with pytest.raises(AmmplError, match="OT_FP32"):
        transport_plan(sim, SinkhornSettings())
    scores = transported_similarity(sim, SinkhornSettings(fp32=True))
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, sim.float().mean(dim=(1, 2)), atol=1e-6, rtol=0)


def test_global_term_is_added_only_when_asked():
    generator = torch.Generator().manual_seed(2)
    glob, local, text = (
        torch.randn(s, generator=generator) for s in [(2, 8), (5, 2, 8), (3, 4, 8)]
    )
    scale = torch.tensor(100.0).log()
    settings = SinkhornSettings()
    ot_only = plot_logits(glob, local, text, scale, settings, add_global=False)
    both = plot_logits(glob, local, text, scale, settings, add_global=True)
    pooled = torch.nn.functional.normalize(text.mean(0), dim=1)
    expected = 100 * torch.nn.functional.normalize(glob, dim=1) @ pooled.T
    torch.testing.assert_close(both - ot_only, expected, atol=1e-4, rtol=1e-5)


def test_fp32_option_holds_under_autocast():
    sim = random_similarity(problems=2, m=4, n=3).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = transported_similarity(sim, SinkhornSettings(fp32=True))
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, transported_similarity(sim, SinkhornSettings()))
