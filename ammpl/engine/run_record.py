"""`<output>/results.json`: the machine-readable summary of one run folder.

Written atomically at the end of every epoch and of every `test()`, so a collector never
reads half a file and an interrupted run still says how far it got. A resumed run keeps
the epochs recorded before the interruption; `wall_time_s` adds up every session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import ammpl
from ammpl.engine import distributed
from ammpl.utils.io import read_json, write_json

RESULTS_FILE = "results.json"


def git_commit(cwd: str | None = None) -> str | None:
    """HEAD of the git checkout at `cwd` (None outside a checkout or without git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _cfg_get(cfg: Any, dotted: str, default: Any = None) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, "get") or part not in node:
            return default
        node = node[part]
    return node


def _plain(value: Any) -> Any:
    """JSON-safe copy (tuples → lists, tensors/numpy scalars → numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class RunRecord:
    """Collects what a run did; `save()` writes results.json into the output folder."""

    def __init__(self, cfg: Any, output_dir: str | None = None) -> None:
        self.cfg = cfg
        self.output_dir = output_dir if output_dir is not None else cfg.OUTPUT_DIR
        self.path = os.path.join(self.output_dir, RESULTS_FILE)
        # filled by the CLI: config_file, dataset_config_file, argv, …
        self.meta: dict[str, Any] = {"argv": list(sys.argv)}
        self.eval_only = False
        self.status = "created"
        self.epochs: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}
        # the trainer's data: how many distinct images DATASET.SKIP_BAD_IMAGES skipped so far
        self.skipped_images: Callable[[], int] | None = None
        self._session_start = time.time()
        self._previous_wall_time = 0.0
        self._previous_skipped = 0
        self._commit = git_commit()
        self._load_previous()

    def _load_previous(self) -> None:
        """Keep the epochs and results of an earlier session in the same folder."""
        if not os.path.isfile(self.path):
            return
        try:
            previous = read_json(self.path)
        except (OSError, ValueError):
            return
        if not isinstance(previous, dict):
            return
        self.epochs = [e for e in previous.get("epochs", []) if isinstance(e, dict)]
        results = previous.get("results", {})
        self.results = results if isinstance(results, dict) else {}
        skipped = previous.get("skipped_images", 0)
        self._previous_skipped = skipped if isinstance(skipped, int) else 0
        wall = previous.get("wall_time_s", 0.0)
        self._previous_wall_time = float(wall) if isinstance(wall, (int, float)) else 0.0

    def record_epoch(self, epoch: int, metrics: dict[str, float], lr: float | None) -> None:
        """Metrics of 1-based `epoch` (averages over its batches) and the lr it trained with."""
        entry = {"epoch": epoch, "lr": lr, **{k: _plain(v) for k, v in metrics.items()}}
        self.epochs = [e for e in self.epochs if e.get("epoch") != epoch] + [entry]
        self.epochs.sort(key=lambda e: e.get("epoch", 0))

    def record_test(
        self, split: str, metrics: dict[str, float], total: int, correct: int, epoch: int
    ) -> None:
        """The latest evaluation on `split` (`epoch` = epochs trained when it ran)."""
        self.results[split] = {
            **{k: _plain(v) for k, v in metrics.items()},
            "total": total,
            "correct": correct,
            "epoch": epoch,
        }

    def as_dict(self) -> dict[str, Any]:
        """Config facts, then `meta` (which may refine them, e.g. a backbone dict), then
        what the engine measured."""
        cfg = self.cfg
        record = {
            "trainer": _cfg_get(cfg, "TRAINER.NAME"),
            "dataset": _cfg_get(cfg, "DATASET.NAME"),
            "output_dir": self.output_dir,
            "seed": _cfg_get(cfg, "SEED"),
            "num_shots": _cfg_get(cfg, "DATASET.NUM_SHOTS"),
            "subsample_classes": _cfg_get(cfg, "DATASET.SUBSAMPLE_CLASSES"),
            "backbone": _cfg_get(cfg, "MODEL.BACKBONE.NAME"),
            "max_epoch": _cfg_get(cfg, "OPTIM.MAX_EPOCH"),
        }
        record.update(self.meta)
        record.update(
            {
                "eval_only": bool(self.eval_only or self.meta.get("eval_only", False)),
                "status": self.status,
                "epochs": self.epochs,
                "results": self.results,
                "wall_time_s": round(
                    self._previous_wall_time + time.time() - self._session_start, 3
                ),
                "torch_version": torch.__version__,
                "ammpl_version": ammpl.__version__,
                "git_commit": self._commit,
                "updated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
        if self.skipped_images is not None:  # a resumed run may not meet them all again
            record["skipped_images"] = max(self.skipped_images(), self._previous_skipped)
        return record

    def save(self) -> str:
        """Write results.json (rank 0 only under torchrun); returns its path."""
        if not distributed.is_main_process():
            return self.path
        os.makedirs(self.output_dir, exist_ok=True)
        write_json(_plain(self.as_dict()), self.path)
        return self.path
