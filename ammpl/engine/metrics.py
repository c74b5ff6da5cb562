"""Top-k accuracy as Dassl's `compute_accuracy` (trainers log it per batch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def compute_accuracy(
    output: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    topk: Sequence[int] = (1,),
) -> list[torch.Tensor]:
    """Percent of rows whose target is among the top-k scores, one 1-element tensor per k.

    `output` is (batch, classes); a tuple/list means "use its first element" as in Dassl.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    maxk = max(topk)
    batch_size = target.size(0)
    _, pred = output.topk(maxk, 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand(maxk, -1))
    return [
        correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size) for k in topk
    ]
