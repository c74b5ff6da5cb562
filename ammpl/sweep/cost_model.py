"""What one run costs: images, FLOPs, GPU-hours and peak memory, from the measured cost model.

`bench/cost.py --write-model` counts, for every method at its paper config and full
backbone size, the exact FLOPs and peak memory of a training step and an evaluation batch
as bilinear functions of batch size B and class count k (ammpl/resources/cost_model.json).
This module only evaluates them (no torch): a run's training is epochs × ⌊images / B⌋ steps
(Dassl drops the last incomplete batch), its evaluation ⌈images / B_test⌉ batches.

GPU-hours = FLOPs / (device TFLOP/s × utilisation). The defaults: an H100 SXM's dense bf16
peak, 989 TFLOP/s (NVIDIA's data sheet; the 1979 figure assumes 2:4 sparsity), and a
utilisation of 0.3, the model-FLOPs utilisation large-batch transformer training commonly
reaches on H100s (30-50%), taken at its low end because these steps are small (4-32
images, B·k pairs for AMMPL) and evaluation batches are 100 images. It is an assumption
until a GPU calibrates it: bench/gpu_check.sh prints the TFLOP/s a step really reaches.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ammpl.utils.bilinear import bilinear

MODEL_FILE = Path(__file__).resolve().parents[1] / "resources" / "cost_model.json"
DEFAULT_DEVICE_TFLOPS = 989.0
DEFAULT_UTILISATION = 0.3
DEFAULT_DEVICE_MEMORY_GB = 80.0
# ammpl.trainers.ammpl.chunking's automatic CLASS_CHUNK (FREE_MEMORY_FRACTION,
# MAX_AUTO_BUDGET); tests/test_cost.py keeps them in step.
AUTO_FREE_FRACTION = 0.5
AUTO_MAX_PAIRS = 16384


def load_cost_model(path: str | Path | None = None) -> list[dict]:
    """The methods of the cost model file (bench/cost.py --write-model wrote it)."""
    return json.loads(Path(path or MODEL_FILE).read_text())["methods"]


def find_method(model: list[dict], trainer: str, config: str) -> tuple[dict | None, bool]:
    """The entry of `trainer` at `config` (relative to configs/trainers/); else the
    trainer's first entry (exact = False: another config of the same method)."""
    same = [m for m in model if m["trainer"] == trainer]
    for entry in same:
        if entry["config"] == config:
            return entry, True
    return (same[0], False) if same else (None, False)


@dataclass
class RunCost:
    """The predicted cost of one run."""

    train_images: int
    eval_images: int
    flops: float
    peak_bytes: float

    def gpu_hours(self, device_tflops: float, utilisation: float) -> float:
        return self.flops / (device_tflops * 1e12 * utilisation) / 3600


def evaluation_flops(entry: dict, images: int, batch: int, classes: int) -> float:
    """FLOPs of evaluating `images` images in batches of `batch` (the last one smaller)."""
    if images <= 0:
        return 0.0
    full, rest = divmod(images, batch)
    fit = entry["fits"]["eval_flops"]
    flops = full * bilinear(fit, batch, classes)
    return flops + (bilinear(fit, rest, classes) if rest else 0.0)


def pair_budget(entry: dict, class_chunk: int, device_memory_gb: float) -> int | None:
    """(image, class) pairs per block of an AMMPL step: CLASS_CHUNK, or (0) what the
    automatic rule of ammpl.trainers.ammpl.chunking gives on an empty device of that size;
    None for methods without blocks of pairs."""
    pair_bytes = entry.get("pair_bytes")
    if not pair_bytes:
        return None
    if class_chunk > 0:
        return class_chunk
    free = device_memory_gb * 1e9 * AUTO_FREE_FRACTION
    return int(max(1, min(AUTO_MAX_PAIRS, free // pair_bytes)))


def _train_step(fits: dict, batch: int, classes: int, budget: int | None) -> tuple[float, float]:
    """(FLOPs, peak bytes) of one step; above `budget` pairs AMMPL runs blocks of pairs with
    activation checkpointing: memory of one block, one more forward of every pair (half the
    pairs' forward + backward FLOPs, c3·B·k / 2)."""
    flops = bilinear(fits["train_flops"], batch, classes)
    peak = bilinear(fits["train_peak"], batch, classes)
    if budget is not None and batch * classes > budget:
        c0, c1, c2, c3 = fits["train_peak"]
        peak = c0 + c1 * batch + c2 * classes + c3 * budget
        flops += fits["train_flops"][3] * batch * classes / 2
    return flops, peak


def run_cost(
    entry: dict,
    *,
    train_images: int,
    train_batch: int,
    train_classes: int,
    epochs: int,
    eval_images: int,
    eval_batch: int,
    eval_classes: int,
    budget: int | None = None,
) -> RunCost:
    """Images processed, FLOPs and peak memory of a run (train_images 0: evaluation only);
    `budget`: AMMPL's pairs per block (`pair_budget`)."""
    fits = entry["fits"]
    flops = 0.0
    peak = 0.0
    processed = 0
    if train_images > 0 and "train_flops" in fits and epochs > 0:
        batch = min(train_batch, train_images)
        steps = train_images // batch
        processed = steps * batch * epochs
        step_flops, peak = _train_step(fits, batch, train_classes, budget)
        flops += steps * epochs * step_flops
    flops += evaluation_flops(entry, eval_images, eval_batch, eval_classes)
    if eval_images > 0:
        peak = max(peak, bilinear(fits["eval_peak"], min(eval_batch, eval_images), eval_classes))
    return RunCost(processed, eval_images, flops, peak)


def base_new_classes(total: int, subsample: str) -> int:
    """Classes CoOp's `subsample_classes` keeps: the first ⌈n/2⌉ (base) or the rest (new)."""
    base = math.ceil(total / 2)
    return {"base": base, "new": total - base}.get(subsample, total)
