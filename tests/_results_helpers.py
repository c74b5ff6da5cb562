"""Synthetic run folders for the results tests: Dassl-style logs and results.json files."""

from __future__ import annotations

import json
from pathlib import Path

TRAIN_SIGNAL = "Finish training"


def result_block(accuracy: float, total: int = 1000) -> list[str]:
    """The evaluator's lines for one test, as our engine prints them."""
    correct = round(total * accuracy / 100)
    return [
        "Evaluate on the *test* set",
        "=> result",
        f"* total: {total:,}",
        f"* correct: {correct:,}",
        f"* accuracy: {accuracy:.2f}%",
        f"* error: {100 - accuracy:.2f}%",
        f"* macro_f1: {accuracy - 1:.2f}%",
    ]


def training_log(accuracy: float, signal: str = TRAIN_SIGNAL) -> list[str]:
    """A training log: a validation result before the start signal, the final test after."""
    return [
        "epoch [1/1] batch [1/1] loss 1.0 acc 50.0",
        *result_block(11.11),  # must be ignored: before the signal
        signal,
        "Deploy the last-epoch model",
        *result_block(accuracy),
        "Elapsed: 0:00:01",
    ]


def eval_log(accuracy: float) -> list[str]:
    return ["Loading weights to prompt_learner", *result_block(accuracy)]


def write_log(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "log.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_record(folder: Path, accuracy: float | None = None, **fields) -> Path:
    """A results.json as the engine writes it (only the keys the collector reads)."""
    record = {
        "trainer": "CoOp",
        "dataset": "Caltech101",
        "seed": 1,
        "num_shots": 16,
        "subsample_classes": "all",
        "backbone": {"name": "ViT-B/16", "source": "test"},
        "max_epoch": 5,
        "config_file": "configs/trainers/CoOp/vit_b16.yaml",
        "dataset_config_file": "configs/datasets/caltech101.yaml",
        "eval_only": False,
        "model_dir": "",
        "status": "finished",
        "results": {},
        "wall_time_s": 12.5,
        "git_commit": "abc123",
    }
    record.update(fields)
    if accuracy is not None:
        record["results"] = {
            "test": {
                "accuracy": accuracy,
                "error_rate": 100 - accuracy,
                "macro_f1": accuracy - 1,
                "total": 200,
                "correct": round(2 * accuracy),
                "epoch": record["max_epoch"],
            }
        }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(record))
    return path
