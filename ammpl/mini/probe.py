"""What a mini CLIP knows: zero-shot accuracy per world factor on pretraining-style images.

    python -m ammpl.mini.probe [WEIGHTS] [--per-value N]   (default: the committed weights)

WEIGHTS may also be the resumable state of a pretraining run (`<out>.state.pt`), to watch
a run while it goes on.

For each factor (colour, pattern, background, shape, size) it draws N images per value
(default 12), varying every other factor, and names the value with one prompt; chance is
1 / values. The shapes are also reported one by one, with how many are named at least 60 %
of the time (issue 17's fallback: object datasets of the shapes the model knows).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import torch

from ammpl.mini.pretrain import read_run_state, zero_shot_predictions
from ammpl.mini.world import (
    BACKGROUNDS,
    COLOURS,
    PATTERNS,
    SHAPES,
    SIZES,
    render,
    sample_scene,
)
from ammpl.utils.errors import AmmplError

FACTORS: dict[str, tuple[tuple[str, ...], str]] = {
    "colour": (tuple(COLOURS), "a photo of a {} shape."),
    "pattern": (PATTERNS, "a photo of a {} shape."),
    "background": (BACKGROUNDS, "a photo of a shape on {}."),
    "shape": (SHAPES, "a photo of a {}."),
    "size": (SIZES, "a photo of a {} shape."),
}


KNOWN_SHAPE = 60.0  # % of a shape's images named right for the shape to count as known


@dataclass
class FactorResult:
    accuracy: float  # %
    chance: float  # %
    by_value: dict[str, float]  # % of each value's images named right


@torch.no_grad()
def probe_factors(
    model: torch.nn.Module, per_value: int = 12, seed: int = 5
) -> dict[str, FactorResult]:
    """Every factor's accuracy, chance and per-value accuracy for the model (eval mode)."""
    rng = np.random.default_rng(seed)
    results = {}
    for factor, (values, template) in FACTORS.items():
        images, labels = [], []
        for label, value in enumerate(values):
            for _ in range(per_value):
                images.append(render(sample_scene(rng, count="1", **{factor: value}), rng))
                labels.append(label)
        prompts = [template.format(value) for value in values]
        hits = zero_shot_predictions(model, images, prompts) == np.asarray(labels)
        by_value = {
            v: float(hits[np.asarray(labels) == k].mean() * 100) for k, v in enumerate(values)
        }
        results[factor] = FactorResult(float(hits.mean() * 100), 100 / len(values), by_value)
    return results


def factor_accuracies(model: torch.nn.Module, per_value: int = 12, seed: int = 5) -> dict:
    """{factor: (accuracy %, chance %)} for the model (eval mode)."""
    return {
        factor: (result.accuracy, result.chance)
        for factor, result in probe_factors(model, per_value, seed).items()
    }


def known_shapes(result: FactorResult) -> list[str]:
    """The shapes named at least KNOWN_SHAPE % of the time, best first."""
    ranked = sorted(result.by_value.items(), key=lambda item: -item[1])
    return [shape for shape, accuracy in ranked if accuracy >= KNOWN_SHAPE]


def model_of_state(path: str) -> torch.nn.Module:
    """The model of a running pretraining's resumable state (`<out>.state.pt`), eval mode."""
    from ammpl.mini.model import build_mini_clip

    state = read_run_state(path)
    model = build_mini_clip()
    model.load_state_dict(state["model"])
    print(f"{path}: step {state['step']} of {state['recipe']['steps']}")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ammpl.mini.probe", description=__doc__)
    parser.add_argument("weights", nargs="?", default=None, help="a mini weights file")
    parser.add_argument("--per-value", type=int, default=12, help="images per factor value")
    parser.add_argument("--seed", type=int, default=5, help="seed of the probe images")
    args = parser.parse_args(argv)
    try:
        if args.weights and args.weights.endswith(".state.pt"):
            model = model_of_state(args.weights)
        else:
            from ammpl.clip.backbones import load_backbone

            model = load_backbone("mini", path=args.weights)
    except AmmplError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = probe_factors(model, per_value=args.per_value, seed=args.seed)
    for factor, result in results.items():
        print(f"{factor:<11} {result.accuracy:5.1f} %  (chance {result.chance:.1f} %)")
    shapes = results["shape"]
    ranked = sorted(shapes.by_value.items(), key=lambda item: -item[1])
    print("by shape    " + ", ".join(f"{shape} {accuracy:.0f}" for shape, accuracy in ranked))
    known = known_shapes(shapes)
    print(f"shapes named ≥ {KNOWN_SHAPE:.0f} %: {len(known)} ({' '.join(known) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
