"""The parser and the collector on logs the real engine wrote: CoOp on the built-in Shapes
data with the tiny backbone, 1 epoch, seeds 1 and 2 (run in parallel, train.py started
through the warm fork server of the `fast_python` fixture)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ammpl.data.datasets.shapes import ensure_shapes
from ammpl.results.collect import collect_runs
from ammpl.results.parse import parse_directory, parse_log
from ammpl.results.tables import fewshot_table

SEEDS = (1, 2)


@pytest.fixture(scope="module")
def shapes_runs(repo_root, shapes_root, fast_python, tmp_path_factory):
    ensure_shapes(str(shapes_root))  # once, before two processes would both generate it
    output = tmp_path_factory.mktemp("results_real") / "output"
    experiment = output / "shapes" / "CoOp" / "demo_shapes_2shots"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    processes = [
        subprocess.Popen(
            [
                fast_python,
                str(repo_root / "train.py"),
                "--root",
                str(shapes_root),
                "--seed",
                str(seed),
                "--trainer",
                "CoOp",
                "--dataset-config-file",
                str(repo_root / "configs/datasets/shapes.yaml"),
                "--config-file",
                str(repo_root / "configs/trainers/CoOp/demo_shapes.yaml"),
                "--output-dir",
                str(experiment / f"seed{seed}"),
                "DATASET.NUM_SHOTS",
                "2",
                "MODEL.BACKBONE.NAME",
                "tiny",
                "OPTIM.MAX_EPOCH",
                "1",
                "DATALOADER.NUM_WORKERS",
                "0",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in SEEDS
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    return output, experiment


def recorded(run_dir) -> float:
    return json.loads((run_dir / "results.json").read_text())["results"]["test"]["accuracy"]


def test_parsed_numbers_equal_results_json(shapes_runs):
    _, experiment = shapes_runs
    lines: list[str] = []
    summary = parse_directory(str(experiment), echo=lines.append)
    expected = [recorded(experiment / f"seed{seed}") for seed in SEEDS]
    # the log prints two decimals, results.json keeps full precision
    assert summary.values == [round(value, 2) for value in expected]
    mean = sum(summary.values) / 2
    spread = abs(summary.values[0] - summary.values[1]) / 2  # population std of two values
    assert lines[-2] == f"* accuracy: {mean:.2f}% +- {spread:.2f}%"
    log = experiment / "seed1" / "log.txt"
    assert "Finish training" in log.read_text()
    assert parse_log(log, "macro_f1") == pytest.approx(
        json.loads((experiment / "seed1" / "results.json").read_text())["results"]["test"][
            "macro_f1"
        ],
        abs=0.005,
    )


def test_collected_rows_and_table_match(shapes_runs):
    output, experiment = shapes_runs
    runs = sorted(collect_runs(str(output)), key=lambda r: r.seed)
    assert [(r.protocol, r.dataset, r.trainer, r.shots, r.seed) for r in runs] == [
        ("fewshot", "shapes", "CoOp", 2, seed) for seed in SEEDS
    ]
    assert [r.accuracy for r in runs] == [recorded(experiment / f"seed{s}") for s in SEEDS]
    assert all(r.backbone == "tiny" and r.total == 120 for r in runs)
    table = fewshot_table(runs, seeds=SEEDS)
    cell = table.rows[0][2]
    assert cell.mean == pytest.approx(sum(r.accuracy for r in runs) / 2) and not cell.flagged
