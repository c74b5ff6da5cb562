"""ammpl.results.parse / parse_test_res.py against CoOp's parser behaviour (PROTOCOLS §10)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ammpl.results.cli import main as results_main
from ammpl.results.errors import ResultsError
from ammpl.results.parse import ci95, parse_directory, parse_experiments, parse_log_lines
from tests._results_helpers import eval_log, result_block, training_log, write_log

WORKED = (91.81, 92.01, 92.17)  # CoOp's docs: → "* accuracy: 92.00% +- 0.15%"


def seed_tree(root, accuracies, log=training_log):
    for seed, accuracy in enumerate(accuracies, start=1):
        write_log(root / f"seed{seed}", log(accuracy))
    return root


def parse_lines(directory, **options) -> tuple[list[str], object]:
    lines: list[str] = []
    summary = parse_directory(str(directory), echo=lines.append, **options)
    return lines, summary


def test_worked_example_prints_the_reference_lines(tmp_path):
    exp = seed_tree(tmp_path / "nctx16_cscFalse_ctpend", WORKED)
    lines, summary = parse_lines(exp)
    assert lines == [
        f"Parsing files in {exp}",
        f"file: {exp}/seed1/log.txt. accuracy: 91.81%. ",
        f"file: {exp}/seed2/log.txt. accuracy: 92.01%. ",
        f"file: {exp}/seed3/log.txt. accuracy: 92.17%. ",
        "===",
        f"Summary of directory: {exp}",
        "* accuracy: 92.00% +- 0.15%",
        "===",
    ]
    assert summary.values == list(WORKED)
    assert summary.spread == pytest.approx(0.1473, abs=1e-4)  # population std (ddof 0)


def test_ci95_is_196_std_over_sqrt_n(tmp_path):
    exp = seed_tree(tmp_path / "exp", WORKED)
    lines, summary = parse_lines(exp, use_ci95=True)
    assert summary.spread == pytest.approx(1.96 * 0.147271 / 3**0.5, abs=1e-4)
    assert (
        lines[-2] == f"* accuracy: 92.00% +- {ci95(WORKED):.2f}%" == "* accuracy: 92.00% +- 0.17%"
    )


def test_both_start_signals_arm_a_training_log(tmp_path):
    exp = tmp_path / "exp"
    write_log(exp / "seed1", training_log(80.0, "Finish training"))  # CoOp / current Dassl
    write_log(exp / "seed2", training_log(90.0, "Finished training"))  # MaPLe / old Dassl
    write_log(exp / "seed3", ["  Finish training  ", *result_block(70.0)])  # stripped lines
    _, summary = parse_lines(exp)
    assert summary.values == [80.0, 90.0, 70.0]


def test_only_lines_after_the_signal_count_and_the_last_match_wins():
    lines = [*result_block(10.0), "Finish training", *result_block(20.0), *result_block(30.0)]
    assert parse_log_lines(lines) == 30.0
    assert parse_log_lines(result_block(10.0)) is None  # never armed
    assert parse_log_lines(["Finish training FOO", *result_block(10.0)]) is None  # equality


def test_test_log_mode_arms_on_the_result_line(tmp_path):
    exp = seed_tree(tmp_path / "test_new", (70.5, 71.5), log=eval_log)
    with pytest.raises(ResultsError, match="Nothing found in .*--test-log"):
        parse_lines(exp)
    lines, summary = parse_lines(exp, test_log=True)
    assert summary.values == [70.5, 71.5]
    assert lines[-2] == "* accuracy: 71.00% +- 0.50%"


def test_keyword_selects_another_metric(tmp_path):
    exp = seed_tree(tmp_path / "exp", (80.0, 82.0))
    lines, summary = parse_lines(exp, keyword="macro_f1")
    assert summary.values == [79.0, 81.0]
    assert lines[1].endswith("log.txt. macro_f1: 79.00%. ")
    assert lines[-2] == "* macro_f1: 80.00% +- 1.00%"
    assert parse_log_lines(["=> result", "* error: 1.5e+01%"], "error", test_log=True) == 15.0


def test_stray_entries_are_skipped_with_a_notice(tmp_path):
    exp = seed_tree(tmp_path / "exp", (60.0, 62.0))
    (exp / "notes.txt").write_text("not a run")
    (exp / "plots").mkdir()
    (exp / ".DS_Store").write_text("hidden: ignored silently")
    write_log(exp / "seed3", ["Epoch 1 crashed"])  # no armed match: skipped silently
    lines, summary = parse_lines(exp)
    assert summary.values == [60.0, 62.0]
    assert f"Skipping {exp}/notes.txt: not a run folder (file)" in lines
    assert f"Skipping {exp}/plots: not a run folder (folder without log.txt)" in lines
    assert not any(".DS_Store" in line or "seed3" in line for line in lines)


def test_multi_exp_averages_the_experiment_means(tmp_path):
    root = tmp_path / "ZeroshotCLIP_like"
    seed_tree(root / "a", (50.0, 52.0))
    seed_tree(root / "b", (70.0, 70.0))
    (root / "README").write_text("stray")
    lines: list[str] = []
    summaries = parse_experiments(str(root), echo=lines.append)
    assert [s.mean for s in summaries] == [51.0, 70.0]
    assert lines[-2:] == ["Average performance", "* accuracy: 60.50%"]
    assert f"Skipping {root}/README: not an experiment folder (file)" in lines


def test_errors_are_one_line(tmp_path, capsys):
    assert results_main(["parse", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no folder") and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert results_main(["parse", str(tmp_path / "empty")]) == 2
    assert "Nothing found in" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        results_main(["parse", str(tmp_path), "--bogus"])
    assert exit_.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_parse_test_res_script_has_coops_command_line(repo_root, tmp_path):
    exp = seed_tree(tmp_path / "exp", WORKED)
    result = subprocess.run(
        [sys.executable, str(repo_root / "parse_test_res.py"), str(exp), "--ci95"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2] == "* accuracy: 92.00% +- 0.17%"
    multi = subprocess.run(
        [sys.executable, str(repo_root / "parse_test_res.py"), str(tmp_path), "--multi-exp"],
        capture_output=True,
        text=True,
    )
    assert multi.returncode == 0 and multi.stdout.splitlines()[-1] == "* accuracy: 92.00%"
