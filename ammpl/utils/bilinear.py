"""c0 + c1·B + c2·k + c3·B·k: how a step's FLOPs and memory grow with batch size B and class
count k (ammpl.trainers.step_cost measures them; the sweep's estimate evaluates them)."""

from __future__ import annotations

from collections.abc import Sequence


def fit_bilinear(points: Sequence[tuple[float, float, float]]) -> list[float]:
    """[c0, c1, c2, c3] through four (B, k, value) points of a 2×2 grid, in the order
    (B1, k1), (B2, k1), (B1, k2), (B2, k2)."""
    (b1, k1, v11), (b2, _, v21), (_, k2, v12), (_, _, v22) = points
    c3 = (v22 - v21 - v12 + v11) / ((b2 - b1) * (k2 - k1))
    c1 = (v21 - v11) / (b2 - b1) - c3 * k1
    c2 = (v12 - v11) / (k2 - k1) - c3 * b1
    c0 = v11 - c1 * b1 - c2 * k1 - c3 * b1 * k1
    return [c0, c1, c2, c3]


def bilinear(coefficients: Sequence[float], batch: float, classes: float) -> float:
    c0, c1, c2, c3 = coefficients
    return c0 + c1 * batch + c2 * classes + c3 * batch * classes
