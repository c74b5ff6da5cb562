"""`ammpl-sweep` checks before it starts and stops repeating a failure: configs, weights and
data checked once before the first run; the first runs failing alike stop the sweep; a dry
run without DATA or with a folder of other settings still lists every run; method names
case-insensitive, with "did you mean" and each protocol's own list."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ammpl.sweep.executors import LocalExecutor
from ammpl.sweep.plan import Run
from ammpl.sweep.runner import FAILED, NOT_STARTED, SweepRunner

TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


def fewshot(data, *more: str) -> list[str]:
    return ["fewshot", "--methods", "ammpl", "--datasets", "dtd", "--seeds", "1", "2",
            "--shots", "1", "--data", str(data), "--gpus", "none", "--output-root", "out",
            *more]  # fmt: skip


def nothing_ran(cwd: Path) -> bool:
    return not (cwd / "out").exists()


def test_a_mistyped_override_stops_before_the_first_run(benchmark_root, tmp_path, sweep):
    code, _, err = sweep(tmp_path, *fewshot(benchmark_root), "--", *TINY, "OPTIM.MAX_EPOCHS", "1")
    assert code == 2 and nothing_ran(tmp_path)
    (line,) = err.strip().splitlines()
    assert "Unknown config key 'OPTIM.MAX_EPOCHS'" in line and "'OPTIM.MAX_EPOCH'" in line


def test_missing_weights_stop_before_the_first_run(benchmark_root, tmp_path, sweep):
    code, _, err = sweep(tmp_path, *fewshot(benchmark_root), "--", "OPTIM.MAX_EPOCH", "1")
    assert code == 2 and nothing_ran(tmp_path)
    (line,) = err.strip().splitlines()
    assert "ViT-B/16 weights not found" in line and "To fix:" in line


def test_a_missing_dataset_folder_stops_before_the_first_run(tmp_path, sweep):
    data = tmp_path / "data"
    data.mkdir()
    code, _, err = sweep(tmp_path, *fewshot(data), "--", *TINY)
    assert code == 2 and nothing_ran(tmp_path)
    (line,) = err.strip().splitlines()
    assert f"'{data / 'dtd'}' does not exist" in line and "download" in line


def shell_run(index: int, folder: Path, code: str) -> Run:
    return Run(index, ["bash", "-c", code], str(folder))


def run_all(tmp_path: Path, runs: list[Run]):
    runner = SweepRunner(runs, LocalExecutor([], cpu_slots=1), str(tmp_path / "logs"),
                         str(tmp_path), poll_s=0.02, stream=io.StringIO())  # fmt: skip
    return runner.run()


def test_the_first_runs_failing_alike_stop_the_sweep(tmp_path):
    error = "error: no space left on device: /scratch"
    runs = [
        shell_run(i, tmp_path / f"r{i}", f"echo start; echo '{error}'; exit 2") for i in range(5)
    ]
    summary = run_all(tmp_path, runs)
    assert [s.state for s in summary.statuses] == [FAILED] * 2 + [NOT_STARTED] * 3
    text = "\n".join(summary.lines)
    assert text.count(error) == 1 and "3 run(s) not started" in text
    assert not summary.ok


def test_failures_that_name_their_run_do_not_stop_the_sweep(tmp_path):
    runs = [
        shell_run(i, tmp_path / f"r{i}", f"echo 'error: {tmp_path / f'r{i}'} is broken'; exit 2")
        for i in range(3)
    ]
    summary = run_all(tmp_path, runs)
    assert [s.state for s in summary.statuses] == [FAILED] * 3


def test_dry_run_needs_no_data_and_marks_a_folder_of_other_settings(tmp_path, sweep):
    taken = tmp_path / "out/dtd/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc_1shots/seed2"
    taken.mkdir(parents=True)
    record = {"settings": {"config": {"TRAINER.NAME": "CoOp"}}, "results": {}}
    (taken / "results.json").write_text(json.dumps(record))
    code, out, err = sweep(tmp_path, *fewshot(tmp_path / "nowhere"), "--dry-run")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 2  # both commands
    assert f"warning: DATA={tmp_path / 'nowhere'} is not a folder" in err
    assert "[pending] out/dtd/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc_1shots/seed1" in err
    conflict = next(line for line in err.splitlines() if line.startswith("[conflict]"))
    assert "seed2" in conflict and "trainer (TRAINER.NAME): CoOp there, AMMPL requested" in conflict
    assert "2 run(s): 1 pending, 0 done, 1 conflict" in err


def test_method_names_are_case_insensitive_with_suggestions(tmp_path, sweep, monkeypatch):
    monkeypatch.delenv("DATA", raising=False)
    code, out, _ = sweep(tmp_path, *fewshot(tmp_path)[:2], "AMMPL", "MaPLe", "--datasets",
                         "dtd", "--shots", "1", "--seeds", "1", "--dry-run")  # fmt: skip
    assert code == 0 and len(out.strip().splitlines()) == 2
    code, _, err = sweep(tmp_path, "fewshot", "--methods", "mapel", "--dry-run")
    assert code == 2 and "unknown METHOD 'mapel' for fewshot (did you mean 'maple'?)" in err
    code, _, err = sweep(tmp_path, "base2new", "--methods", "nope", "--dry-run")
    listed = err.strip().split("base2new methods: ")[1].split()
    assert code == 2 and {"ammpl", "maple", "coop"} <= set(listed)
    assert not {"vp", "dpt", "plot", "plotpp"} & set(listed)  # no base2new scripts
    code, _, err = sweep(tmp_path, "base2new", "--methods", "vp", "--dry-run")
    assert code == 2 and "no base2new runs for METHOD 'vp'" in err
    assert "vp" not in err.split("base2new methods: ")[1].split()
