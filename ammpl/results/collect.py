"""Every run's `results.json` under a folder → one tidy CSV, one row per run.

The row joins what the run recorded (trainer, dataset, seed, shots, accuracy, …) with what
its folder says (protocol, base-to-new phase, cross-dataset source, CoOp/ablation variant;
see `layout.py`). Tables and plots read only this CSV, never the log files.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ammpl.results.errors import ResultsError
from ammpl.results.layout import infer_layout, source_from_model_dir
from ammpl.results.names import dataset_stem, method_name

RESULTS_FILE = "results.json"
PREFERRED_SPLIT = "test"


@dataclass
class Run:
    """One row of the tidy CSV (column order = field order)."""

    method: str
    trainer: str
    config: str
    variant: str
    protocol: str
    phase: str
    dataset: str
    dataset_name: str
    source: str
    shots: int | None
    seed: int | None
    subsample: str
    split: str
    accuracy: float | None
    error_rate: float | None
    macro_f1: float | None
    total: int | None
    correct: int | None
    epoch: int | None
    max_epoch: int | None
    eval_only: bool
    backbone: str
    status: str
    wall_time_s: float | None
    git_commit: str
    path: str


COLUMNS = tuple(f.name for f in fields(Run))
_INT_COLUMNS = {"shots", "seed", "total", "correct", "epoch", "max_epoch"}
_FLOAT_COLUMNS = {"accuracy", "error_rate", "macro_f1", "wall_time_s"}


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return kind(value)


def _stem(path: Any) -> str:
    return Path(path).stem if isinstance(path, str) and path else ""


def _backbone_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name", ""))
    return "" if value is None else str(value)


def _pick_split(results: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(results, dict) or not results:
        return "", {}
    split = PREFERRED_SPLIT if PREFERRED_SPLIT in results else sorted(results)[0]
    metrics = results[split]
    return split, metrics if isinstance(metrics, dict) else {}


def run_from_record(record: dict[str, Any], run_dir: str) -> Run:
    """The CSV row of one results.json (`run_dir` is the folder that holds it)."""
    layout = infer_layout(run_dir)
    trainer = str(record.get("trainer") or layout.trainer)
    config = _stem(record.get("config_file")) or layout.config
    dataset_name = str(record.get("dataset") or "")
    dataset = _stem(record.get("dataset_config_file")) or layout.dataset
    if not dataset and dataset_name:
        dataset = dataset_stem(dataset_name)

    shots = layout.shots
    if shots is None:
        recorded = _number(record.get("num_shots"), int)
        shots = recorded if recorded is not None and recorded >= 0 else None
    seed = layout.seed
    if seed is None and layout.protocol != "zeroshot":
        recorded = _number(record.get("seed"), int)
        seed = recorded if recorded is not None and recorded >= 0 else None
    source = ""
    if layout.protocol == "xd_eval":
        source = source_from_model_dir(str(record.get("model_dir") or "")) or layout.source

    split, metrics = _pick_split(record.get("results"))
    return Run(
        method=method_name(trainer, config, layout.variant),
        trainer=trainer,
        config=config,
        variant=layout.variant,
        protocol=layout.protocol,
        phase=layout.phase,
        dataset=dataset,
        dataset_name=dataset_name,
        source=source,
        shots=shots,
        seed=seed,
        subsample=str(record.get("subsample_classes") or "all"),
        split=split,
        accuracy=_number(metrics.get("accuracy"), float),
        error_rate=_number(metrics.get("error_rate"), float),
        macro_f1=_number(metrics.get("macro_f1"), float),
        total=_number(metrics.get("total"), int),
        correct=_number(metrics.get("correct"), int),
        epoch=_number(metrics.get("epoch"), int),
        max_epoch=_number(record.get("max_epoch"), int),
        eval_only=bool(record.get("eval_only", False)),
        backbone=_backbone_name(record.get("backbone")),
        status=str(record.get("status") or ""),
        wall_time_s=_number(record.get("wall_time_s"), float),
        git_commit=str(record.get("git_commit") or ""),
        path=run_dir,
    )


def find_result_files(root: str) -> list[str]:
    """Every results.json under `root` (hidden folders skipped), sorted."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        if RESULTS_FILE in files:
            found.append(os.path.join(folder, RESULTS_FILE))
    return sorted(found)


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def collect_runs(root: str, warn: Callable[[str], None] = _warn_stderr) -> list[Run]:
    """One `Run` per readable results.json under `root`; unreadable ones are reported."""
    if os.path.isfile(root):
        raise ResultsError(
            f"{root} is a file, not a folder of runs: pass the output folder of the runs "
            "(e.g. output)"
        )
    if not os.path.isdir(root):
        raise ResultsError(f"no folder {root}: pass the output folder of the runs (e.g. output)")
    runs = []
    for path in find_result_files(root):
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError) as error:
            warn(f"skipping {path}: not readable JSON ({error})")
            continue
        if not isinstance(record, dict):
            warn(f"skipping {path}: not a results.json object")
            continue
        runs.append(run_from_record(record, os.path.dirname(path)))
    if not runs:
        raise ResultsError(f"no results.json under {root}: run the protocol scripts first")
    return runs


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_runs_csv(runs: Iterable[Run], path: str) -> int:
    """Write the tidy CSV (atomically); returns the number of rows."""
    from ammpl.utils.io import atomic_write

    count = 0
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for run in runs:
            writer.writerow({k: _csv_value(v) for k, v in asdict(run).items()})
            count += 1
    return count


def _typed(column: str, text: str) -> Any:
    if column in _INT_COLUMNS:
        return int(float(text)) if text != "" else None
    if column in _FLOAT_COLUMNS:
        return float(text) if text != "" else None
    if column == "eval_only":
        return text.strip().lower() in ("true", "1", "yes")
    return text


def _not_a_runs_csv(path: str, why: str) -> ResultsError:
    what = "one run's results.json" if os.path.basename(path) == RESULTS_FILE else why
    return ResultsError(
        f"{path} is not a runs CSV ({what}): pass the output folder of the runs (it is "
        "collected on the fly) or a CSV made by `ammpl-results collect OUTPUT --out FILE`"
    )


def read_runs_csv(path: str) -> list[Run]:
    """The rows of a CSV written by `write_runs_csv` (or `ammpl-results collect`)."""
    if not os.path.isfile(path):
        raise ResultsError(
            f"no file or folder {path}: pass the output folder of the runs, or a CSV "
            f"(make it with `ammpl-results collect OUTPUT --out {path}`)"
        )
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return _read_rows(path, handle)
    except UnicodeDecodeError:
        raise _not_a_runs_csv(path, "not UTF-8 text") from None
    except csv.Error as error:
        raise _not_a_runs_csv(path, str(error)) from None


def _read_rows(path: str, handle: Iterable[str]) -> list[Run]:
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    missing = [c for c in COLUMNS if c not in header]
    if len(missing) == len(COLUMNS):
        raise _not_a_runs_csv(path, "its first line is not the header `collect` writes")
    if missing:
        raise ResultsError(
            f"{path} lacks the column(s) {', '.join(missing)}: "
            "make it again with `ammpl-results collect OUTPUT --out FILE`"
        )
    runs = []
    for line, row in enumerate(reader, start=2):
        try:
            runs.append(Run(**{c: _typed(c, row[c] or "") for c in COLUMNS}))
        except (ValueError, OverflowError) as error:  # int("inf") overflows
            raise ResultsError(f"{path}, line {line}: not a number ({error})") from None
    return runs
