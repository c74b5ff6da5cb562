"""Gaussian prompt aggregation (GPA): the final prompts are a Gaussian-weighted sum of the
prompts at the end of every epoch.

Epoch e = 1..N gets g(e) = exp(−(e − μ)² / 2σ²) / (σ√2π), normalised to sum to 1
(μ = GPA_MEAN, σ = GPA_STD, N = OPTIM.MAX_EPOCH). After epoch e the aggregate gains
w_e · θ_e, in θ's own dtype, as the reference; after the last epoch it replaces the
prompts, so the aggregate is what is tested and saved. The reference sums the whole state
dict (frozen CLIP included, which Σw = 1 leaves unchanged up to rounding); we sum the
trainable tensors only, so the backbone stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ammpl.utils import ConfigError


def gaussian_epoch_weights(mean: float, std: float, n_epochs: int) -> np.ndarray:
    """Normalised Gaussian weights of epochs 1..n_epochs (float64)."""
    if std <= 0:
        raise ConfigError(f"TRAINER.PROMPTSRC.GPA_STD must be > 0, got {std}")
    if n_epochs < 1:
        raise ConfigError(f"GPA needs OPTIM.MAX_EPOCH ≥ 1, got {n_epochs}")
    density = np.array(
        [
            np.exp(-0.5 * ((e - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
            for e in range(1, n_epochs + 1)
        ]
    )
    total = sum(density)
    if not total > 0:
        raise ConfigError(
            f"GPA weights vanish: GPA_MEAN {mean} is too many GPA_STD ({std}) away from "
            f"epochs 1..{n_epochs}; move GPA_MEAN into the run or widen GPA_STD"
        )
    return density / total


class GaussianPromptAggregator:
    """Running Σ w_e θ_e over finished epochs; its state travels in the checkpoints."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        self.epochs: list[int] = []  # 0-based epochs already summed
        self.total: dict[str, torch.Tensor] | None = None

    def add(self, epoch: int, tensors: Mapping[str, torch.Tensor]) -> None:
        """Add epoch `epoch` (0-based)'s tensors with its weight."""
        if epoch in self.epochs:
            raise RuntimeError(f"GPA already holds epoch {epoch + 1}")
        weight = float(self.weights[epoch])
        weighted = {name: tensor.detach() * weight for name, tensor in tensors.items()}
        if self.total is None:
            self.total = weighted
        else:
            self.total = {name: self.total[name] + weighted[name] for name in self.total}
        self.epochs.append(epoch)

    @torch.no_grad()
    def apply(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Overwrite `tensors` with the aggregate."""
        if self.total is None:
            raise RuntimeError("GPA holds no epoch yet")
        for name, tensor in tensors.items():
            tensor.copy_(self.total[name])

    def state_dict(self) -> dict:
        total = {k: v.detach().cpu().clone() for k, v in (self.total or {}).items()}
        return {"epochs": list(self.epochs), "total": total}

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        self.epochs = [int(e) for e in state["epochs"]]
        total = state["total"]
        self.total = {k: v.to(device) for k, v in total.items()} if self.epochs else None
