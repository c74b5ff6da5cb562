"""PLOT's optimal-transport head: Sinkhorn between M local image features and N prompts.

For every (image b, class c) pair the N prompt features of class c are matched to the M
local features of image b by entropic optimal transport with uniform marginals; the logit
is the transported similarity Σ T·S. All B·K problems are solved together as one batch of
(M, N) matrices, so the only Python loop is over Sinkhorn iterations, whose stopping test
is one scalar for the whole batch (BASELINES_EXTRA §3.4, quirk P-Q3). The plan is computed
without gradient: backpropagation sees it as a constant.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

from ammpl.utils import AmmplError, ConfigError


@dataclass(frozen=True)
class SinkhornSettings:
    """ε (entropic regularisation), iteration cap, stopping threshold, fp32 switch.

    The stopping test: mean |r − r_prev| over every entry of the batch < `thresh`.
    `fp32` runs the OT block in fp32 even when the model is half (P-Q3 fix; default off).
    """

    eps: float = 0.1
    max_iter: int = 100
    thresh: float = 1e-2
    fp32: bool = False


def add_ot_keys(node: CN) -> None:
    """The OT keys both PLOT nodes share (the reference hard-codes these values)."""
    defaults = SinkhornSettings()
    node.EPS = defaults.eps
    node.MAX_ITER = defaults.max_iter
    node.THRESH = defaults.thresh
    node.OT_FP32 = defaults.fp32


def settings_from_cfg(node: CN, node_name: str) -> SinkhornSettings:
    """The node's OT settings, with one-line errors for values Sinkhorn cannot use."""
    if not node.EPS > 0:
        raise ConfigError(f"TRAINER.{node_name}.EPS must be > 0, got {node.EPS}")
    if node.MAX_ITER < 1:
        raise ConfigError(f"TRAINER.{node_name}.MAX_ITER must be ≥ 1, got {node.MAX_ITER}")
    return SinkhornSettings(float(node.EPS), int(node.MAX_ITER), float(node.THRESH),
                            bool(node.OT_FP32))  # fmt: skip


@dataclass
class SinkhornResult:
    plan: torch.Tensor  # (P, M, N)
    iterations: int  # (r, c) updates run, 1..max_iter


def sinkhorn(
    kernel: torch.Tensor, u: torch.Tensor, v: torch.Tensor, max_iter: int, thresh: float
) -> SinkhornResult:
    """Batched Sinkhorn scaling of `kernel` (P, M, N) to marginals u (P, M), v (P, N).

    r ← u / (K c), c ← v / (Kᵀ r), stopping when the batch-mean absolute change of r falls
    below `thresh` (at least one update); plan = diag(r) K diag(c). Column sums equal v
    exactly after the last update; row sums match u up to convergence.
    """
    r = torch.ones_like(u)
    c = torch.ones_like(v)
    kernel_t = kernel.transpose(1, 2).contiguous()
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        previous = r
        r = u / torch.matmul(kernel, c.unsqueeze(-1)).squeeze(-1)
        c = v / torch.matmul(kernel_t, r.unsqueeze(-1)).squeeze(-1)
        if (r - previous).abs().mean().item() < thresh:
            break
    plan = torch.matmul(r.unsqueeze(-1), c.unsqueeze(-2)) * kernel
    return SinkhornResult(plan, iterations)


def transport_plan(similarity: torch.Tensor, settings: SinkhornSettings) -> torch.Tensor:
    """The detached plan (P, M, N) for similarities S (P, M, N): cost 1 − S, uniform marginals."""
    problems, n_local, n_prompts = similarity.shape
    like = {"dtype": similarity.dtype, "device": similarity.device}
    with torch.no_grad():
        u = torch.full((problems, n_local), 1.0 / n_local, **like)
        v = torch.full((problems, n_prompts), 1.0 / n_prompts, **like)
        kernel = torch.exp(-(1.0 - similarity) / settings.eps)
        result = sinkhorn(kernel, u, v, settings.max_iter, settings.thresh)
    if not torch.isfinite(result.plan).all():
        raise AmmplError(
            "PLOT's transport plan is not finite (the Sinkhorn kernel under- or overflowed "
            f"in {similarity.dtype}, quirk P-Q3); set TRAINER.<PLOT|PLOTPP>.OT_FP32 True or "
            "raise EPS"
        )
    return result.plan


def transported_similarity(similarity: torch.Tensor, settings: SinkhornSettings) -> torch.Tensor:
    """Σ_{m,n} T·S per problem (P,) = 1 − d_OT; the plan T is a constant for autograd."""
    precision = contextlib.nullcontext()
    if settings.fp32:
        similarity = similarity.float()
        precision = torch.autocast(similarity.device.type, enabled=False)  # amp would cast back
    with precision:
        plan = transport_plan(similarity, settings)
        return torch.sum(plan * similarity, dim=(1, 2)).contiguous()


def pair_similarities(local: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Normalised locals (M, B, e) × prompts (N, K, e) → S (B·K, M, N), row b·K + c."""
    n_local, batch = local.shape[:2]
    n_prompts, n_classes = text.shape[:2]
    sim = torch.einsum("mbd,ncd->mnbc", local, text).contiguous()
    return sim.view(n_local, n_prompts, batch * n_classes).permute(2, 0, 1)


def plot_logits(
    global_feature: torch.Tensor,
    local: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    settings: SinkhornSettings,
    add_global: bool,
) -> torch.Tensor:
    """PLOT's logits (B, K) from the global image feature (B, e), the locals (M, B, e) and
    the prompt features (N, K, e), all un-normalised.

    logits = scale · Σ_{m,n} T·S per (b, c), plus scale · cos(g, mean_n t_n) when
    `add_global` (the reference: ImageNet only for PLOT, TRADE_OFF for PLOT++).
    """
    batch, n_classes = global_feature.shape[0], text.shape[1]
    text_pool = text.mean(dim=0)
    local = F.normalize(local, dim=2)
    global_feature = F.normalize(global_feature, dim=1)
    text = F.normalize(text, dim=2)
    text_pool = F.normalize(text_pool, dim=1)

    sim = pair_similarities(local, text)
    ot_similarity = transported_similarity(sim, settings).view(batch, n_classes)

    scale = logit_scale.exp()
    logits = scale * ot_similarity
    if add_global:
        global_logits = scale * global_feature @ text_pool.t()
        logits = logits + global_logits
    return logits
