"""Exact FLOPs and peak memory of a training step and an evaluation batch, without a GPU.

A method's trainer is built at full backbone size on fake tensors (ammpl.trainers.
fake_device), then one training step (the method's loss, backward, its optimiser step, as
`forward_backward` runs them) and one evaluation batch (`model_inference`) run under
torch's `FlopCounterMode` and `MemoryTracker`, on the fake CPU device (backward needs a
real CUDA context; counts do not depend on the device). FLOPs are those FlopCounterMode
counts: matmuls, convolutions and attention, a multiply-add as 2; element-wise work (the
optimiser update, norms, activations) counts 0. Memory is the largest sum of live tensor
storages: weights, gradients, optimiser state, activations kept for backward, workspaces of
composite operators; a CUDA run adds its context (~0.5 GB) and allocator slack. In AMMPL's
evaluation a boolean read of an unknown value answers False: its test-mask shortcut ("the
mask hides nothing") is not taken, so evaluation costs what it costs once masks hide
patches.

Costs are bilinear in batch size B and class count k for every method here (CoOp-style text
work ∝ k, image work ∝ B, CoCoOp's and AMMPL's per-(image, class) work ∝ B·k), so
`ammpl.utils.bilinear.fit_bilinear` recovers c0 + c1·B + c2·k + c3·B·k from four points;
bench/cost.py checks the fit at a fifth point.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ammpl.trainers.fake_device import (
    FAKE_CUDA,
    TrainerCase,
    autocast_on,
    build_trainer,
    fake_batch,
    fake_mode,
    set_precision,
)


class MemoryTracker(TorchDispatchMode):
    """Bytes of live tensor storages created while active (each storage counted once, freed
    when its last tensor dies); `peak` is the largest total seen, `track` adds tensors that
    existed before (weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.live:
            return
        size = storage.nbytes()
        self.live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def reset_peak(self) -> None:
        self.peak = self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self.track(tensor)
        return out


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


@dataclass
class StepCost:
    """One point: FLOPs and peak bytes of a training step and an evaluation batch of
    `batch` images over `classes` classes (train_* None for methods that learn nothing)."""

    batch: int
    classes: int
    train_flops: int | None
    train_peak: int | None
    eval_flops: int
    eval_peak: int
    weights: int  # bytes of the model's tensors before the step (frozen CLIP included)


def _tensors(trainer) -> list[torch.Tensor]:
    return list(
        {id(t): t for t in [*trainer.model.parameters(), *trainer.model.buffers()]}.values()
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _train_point(trainer, batch: int, cpu: torch.device, known) -> tuple[int, int]:
    images, labels = fake_batch(trainer, batch, cpu, known)

    def step() -> None:  # the trainer's own step (ProGrad: two gradients, projected)
        trainer.set_model_mode("train")
        trainer.forward_backward({"img": images, "label": labels})

    tracker = MemoryTracker()
    for tensor in [*_tensors(trainer), images, labels]:
        tracker.track(tensor)
    for optim in trainer._optims.values():
        for state in optim.state.values() if optim is not None else []:
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    tracker.track(value)
    with tracker:
        flops = count_flops(step)
    return flops, tracker.peak


def _eval_point(trainer, batch: int, cpu: torch.device, known) -> tuple[int, int]:
    trainer.set_model_mode("eval")
    trainer.model.eval()
    for param in trainer.model.parameters():
        param.grad = None
    images, _ = fake_batch(trainer, batch, cpu, known)
    tracker = MemoryTracker()
    for tensor in [*_tensors(trainer), images]:
        tracker.track(tensor)
    # AMMPL: its test mask hides patches (no shortcut); other reads (finiteness checks) pass
    known.unknown_bool = type(trainer).__name__ != "AMMPL"
    try:
        with tracker:
            flops = count_flops(lambda: trainer.model_inference(images))
    finally:
        known.unknown_bool = True
    return flops, tracker.peak


def measure_steps(
    case: TrainerCase,
    prec: str,
    batches: list[int],
    classes: int,
    opts: tuple[str, ...] = (),
) -> list[StepCost]:
    """FLOPs and peak memory of one training step and one evaluation batch for each batch
    size, of the case at full size in `prec` over `classes` classes, on fake tensors. The
    optimiser state counts from the first step on (it is created inside the step)."""
    cpu = torch.device("cpu")
    points = []
    with fake_mode() as mode, _quiet():
        trainer = build_trainer(case, prec, FAKE_CUDA, mode, None, classes, opts)
        precision = set_precision(trainer, prec)
        trainer.model.to(cpu)  # the weights keep the dtypes `prec` gives them on a GPU
        trainer.device = cpu
        trainer.autocast = lambda: autocast_on(cpu, precision)
        trainer.scaler = None
        weights = sum(t.untyped_storage().nbytes() for t in _tensors(trainer))
        learns = any(optim is not None for optim in trainer._optims.values())
        for batch in batches:
            train_flops = train_peak = None
            if learns:
                train_flops, train_peak = _train_point(trainer, batch, cpu, mode.known_values)
            eval_flops, eval_peak = _eval_point(trainer, batch, cpu, mode.known_values)
            points.append(
                StepCost(batch, classes, train_flops, train_peak, eval_flops, eval_peak, weights)
            )
    return points
