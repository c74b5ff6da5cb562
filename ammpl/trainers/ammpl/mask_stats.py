"""Mask statistics per epoch: did training move the keep probabilities P at all?

At the initialisation N(0.9, 0.05²) the threshold test mask (keep where P ≥ 0.5) hides
nothing, so masking and padding act only through the training draws until P moves. The
trainer prints one line per epoch into log.txt and stores the same numbers under "mask" in
that epoch's entry of results.json:

- keep_mean, keep_std: mean and std of the keep probabilities clamp(P, 0, 1);
- below_half: fraction of P below 0.5, i.e. what the threshold test mask hides;
- train_masked: fraction of patches the Bernoulli training masks of the epoch masked
  (over every image, class and batch of the epoch; None when no batch was drawn);
- class-specific P only: the min / max over classes of the per-class keep_mean,
  below_half and train_masked.
"""

from __future__ import annotations

import torch


class MaskCounter:
    """Counts, per class, the patches the training masks masked since the last `reset()`.

    Counts stay on the mask's device (no synchronisation per batch).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.masked: torch.Tensor | None = None  # (C,) masked patches per class
        self.total = 0  # patches per class

    def update(self, mask: torch.Tensor) -> None:
        """mask (B|1, C, b, b) of 0/1 values (1 keeps a patch)."""
        masked = (mask.detach() < 0.5).sum(dim=(0, 2, 3))
        self.masked = masked if self.masked is None else self.masked + masked
        self.total += mask.numel() // mask.shape[1]

    def per_class(self) -> torch.Tensor | None:
        """Fraction masked per class (C,), None before any training draw."""
        if self.masked is None or self.total == 0:
            return None
        return self.masked.double().cpu() / self.total

    def fraction(self) -> float | None:
        per_class = self.per_class()
        return None if per_class is None else float(per_class.mean())


def _rounded(value: float) -> float:
    return round(float(value), 6)


@torch.no_grad()
def mask_statistics(P: torch.Tensor, train_masked: torch.Tensor | None) -> dict[str, float | None]:
    """The statistics of P ((b, b) shared or (k, b, b) class-specific) listed above;
    `train_masked` is MaskCounter.per_class() ((C,) or None)."""
    P = P.detach().float()
    keep = P.clamp(0, 1)
    masked = None if train_masked is None else train_masked.double()
    stats: dict[str, float | None] = {
        "keep_mean": _rounded(keep.mean()),
        "keep_std": _rounded(keep.std(unbiased=False)),
        "below_half": _rounded((P < 0.5).float().mean()),
        "train_masked": None if masked is None else _rounded(masked.mean()),
    }
    if P.dim() == 3:
        per_class_keep = keep.flatten(1).mean(1)
        per_class_below = (P < 0.5).flatten(1).float().mean(1)
        stats.update(
            keep_mean_min=_rounded(per_class_keep.min()),
            keep_mean_max=_rounded(per_class_keep.max()),
            below_half_min=_rounded(per_class_below.min()),
            below_half_max=_rounded(per_class_below.max()),
            train_masked_min=None if masked is None else _rounded(masked.min()),
            train_masked_max=None if masked is None else _rounded(masked.max()),
        )
    return stats


def format_mask_line(epoch: int, max_epoch: int, stats: dict[str, float | None]) -> str:
    """One log line, e.g. `AMMPL mask epoch [3/5]: keep prob mean 0.8960 std 0.0500, …`."""
    masked = stats["train_masked"]
    parts = [
        f"AMMPL mask epoch [{epoch}/{max_epoch}]: keep prob mean {stats['keep_mean']:.4f} "
        f"std {stats['keep_std']:.4f}",
        f"P < 0.5 (hidden at test by 'threshold') {100 * stats['below_half']:.2f}%",
        "masked in training " + ("n/a" if masked is None else f"{100 * masked:.2f}%"),
    ]
    if "keep_mean_min" in stats:
        per_class = (
            f"per class: keep mean {stats['keep_mean_min']:.4f}–{stats['keep_mean_max']:.4f}, "
            f"P < 0.5 {100 * stats['below_half_min']:.2f}–{100 * stats['below_half_max']:.2f}%"
        )
        if stats["train_masked_min"] is not None:
            per_class += (
                f", masked in training {100 * stats['train_masked_min']:.2f}–"
                f"{100 * stats['train_masked_max']:.2f}%"
            )
        parts.append(per_class)
    return ", ".join(parts)
