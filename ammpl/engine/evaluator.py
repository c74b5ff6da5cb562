"""Dassl's classification evaluator and the exact result block it prints.

Percentages are printed with two decimals (`* accuracy: 91.81%`); Dassl ≥ 0.6.2 prints
one. CoOp's parse_test_res.py regex `\\* accuracy: ([\\.\\deE+-]+)%` reads both, and two
decimals keep seed means precise.

Macro F1 is averaged over the labels present in y_true, as Dassl does (it passes
`labels=np.unique(y_true)` to sklearn; sklearn's own default would use y_true ∪ y_pred).
A label that is never predicted has F1 0. The confusion matrix (TEST.COMPUTE_CMAT) is
row-normalised (rows = true labels, as sklearn's normalize="true"), but indexed by label
over all classes (K × K, rows of absent classes are 0) and saved as a float tensor, so it
loads with `weights_only=True`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import torch

from ammpl.utils.errors import DataError
from ammpl.utils.io import atomic_write
from ammpl.utils.registry import Registry

EVALUATOR_REGISTRY = Registry("Evaluator")


def build_evaluator(cfg: Any, **kwargs: Any) -> EvaluatorBase:
    """`EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)` (kwargs: lab2cname)."""
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)


class EvaluatorBase:
    """Accumulates model outputs batch by batch; `evaluate()` prints and returns metrics."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> OrderedDict[str, float]:
        raise NotImplementedError

    def shard_state(self) -> Any:
        """What this process accumulated, for `load_shards` on a torchrun job's ranks."""
        raise NotImplementedError(f"{type(self).__name__} cannot be gathered over processes")

    def load_shards(self, shards: list[Any]) -> None:
        """Replace the accumulated state by the union of every rank's `shard_state()`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be gathered over processes")


def macro_f1_score(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Unweighted mean F1 over the labels that occur in `y_true` (a fraction in [0, 1])."""
    num_labels = int(max(y_true.max().item(), y_pred.max().item())) + 1
    true_count = torch.bincount(y_true, minlength=num_labels)
    pred_count = torch.bincount(y_pred, minlength=num_labels)
    hits = torch.bincount(y_true[y_true == y_pred], minlength=num_labels)
    present = true_count > 0
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (#pred + #true); #true > 0 for every present label
    f1 = 2.0 * hits[present].double() / (pred_count[present] + true_count[present]).double()
    return f1.mean().item()


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts, rows = true label, normalised per row."""
    flat = y_true * num_classes + y_pred
    counts = torch.bincount(flat, minlength=num_classes * num_classes).double()
    counts = counts.view(num_classes, num_classes)
    row_totals = counts.sum(dim=1, keepdim=True)
    return torch.where(row_totals > 0, counts / row_totals.clamp(min=1), counts)


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Micro accuracy, error, macro F1; optional per-class accuracy and confusion matrix."""

    def __init__(self, cfg: Any, lab2cname: dict[int, str] | None = None, **kwargs: Any) -> None:
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._per_class = bool(cfg.TEST.PER_CLASS_RESULT)
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0
        self._y_true: list[torch.Tensor] = []
        self._y_pred: list[torch.Tensor] = []

    @property
    def total(self) -> int:
        return self._total

    @property
    def correct(self) -> int:
        return self._correct

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """`mo`: (batch, classes) scores; `gt`: (batch,) labels."""
        pred = mo.argmax(dim=1).detach().cpu().long()
        gt = gt.detach().cpu().long().view(-1)
        self._correct += int(pred.eq(gt).sum().item())
        self._total += gt.shape[0]
        self._y_true.append(gt)
        self._y_pred.append(pred)

    def shard_state(self) -> dict[str, torch.Tensor]:
        """Labels and predictions so far (CPU tensors), in processing order."""
        empty = torch.zeros(0, dtype=torch.long)
        return {
            "y_true": torch.cat(self._y_true) if self._y_true else empty,
            "y_pred": torch.cat(self._y_pred) if self._y_pred else empty,
        }

    def load_shards(self, shards: list[dict[str, torch.Tensor]]) -> None:
        """The state of one process that saw every shard, in the given order."""
        self.reset()
        for shard in shards:
            if len(shard["y_true"]):
                self._y_true.append(shard["y_true"])
                self._y_pred.append(shard["y_pred"])
                self._correct += int(shard["y_pred"].eq(shard["y_true"]).sum().item())
                self._total += len(shard["y_true"])

    def _num_classes(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> int:
        seen = int(max(y_true.max().item(), y_pred.max().item())) + 1
        known = len(self._lab2cname) if self._lab2cname else 0
        return max(seen, known)

    def _print_per_class(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
        num_classes = self._num_classes(y_true, y_pred)
        totals = torch.bincount(y_true, minlength=num_classes)
        hits = torch.bincount(y_true[y_true == y_pred], minlength=num_classes)
        labels = torch.nonzero(totals).view(-1).tolist()
        print("=> per-class result")
        accs = []
        for label in labels:
            classname = self._lab2cname.get(label, str(label)) if self._lab2cname else str(label)
            total, correct = int(totals[label]), int(hits[label])
            acc = 100.0 * correct / total
            accs.append(acc)
            print(
                f"* class: {label} ({classname})\t"
                f"total: {total:,}\t"
                f"correct: {correct:,}\t"
                f"acc: {acc:.2f}%"
            )
        mean_acc = sum(accs) / len(accs)
        print(f"* average: {mean_acc:.2f}%")
        return mean_acc

    def _save_cmat(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        cmat = confusion_matrix(y_true, y_pred, self._num_classes(y_true, y_pred))
        save_path = os.path.join(self.cfg.OUTPUT_DIR, "cmat.pt")
        with atomic_write(save_path, "wb") as handle:
            torch.save(cmat, handle)
        print(f"Confusion matrix is saved to {save_path}")

    def evaluate(self) -> OrderedDict[str, float]:
        if self._total == 0:
            raise DataError("Nothing was evaluated: the evaluation split has no samples")
        y_true = torch.cat(self._y_true)
        y_pred = torch.cat(self._y_pred)
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        macro_f1 = 100.0 * macro_f1_score(y_true, y_pred)
        results: OrderedDict[str, float] = OrderedDict()
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1
        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.2f}%\n"
            f"* error: {err:.2f}%\n"
            f"* macro_f1: {macro_f1:.2f}%"
        )
        if self._per_class:
            results["perclass_accuracy"] = self._print_per_class(y_true, y_pred)
        if self.cfg.TEST.COMPUTE_CMAT:
            self._save_cmat(y_true, y_pred)
        return results
