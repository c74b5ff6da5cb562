"""train.py end to end: CoOp and zero-shot CLIP on fixture data, and every user error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ammpl.cli.train import main

ACCURACY_LINE = re.compile(r"\* accuracy: ([\.\deE+-]+)%")


def run_train(args: list[str]) -> int:
    return main([str(a) for a in args])


def common_args(repo_root: Path, root: Path, dataset: str, out: Path, trainer: str) -> list:
    return [
        "--root", root,
        "--seed", 1,
        "--trainer", trainer,
        "--dataset-config-file", repo_root / f"configs/datasets/{dataset}.yaml",
        "--config-file", repo_root / "configs/trainers/CoOp/vit_b16_ep50.yaml",
        "--output-dir", out,
    ]  # fmt: skip


TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0"]


def last_accuracy(log: Path) -> float:
    found = ACCURACY_LINE.findall(log.read_text())
    assert found, f"no accuracy line in {log}"
    return float(found[-1])


def test_coop_trains_saves_and_evaluates_on_new_classes(repo_root, benchmark_root, tmp_path):
    out = tmp_path / "train_base"
    code = run_train(
        common_args(repo_root, benchmark_root, "caltech101", out, "CoOp")
        + TINY
        + ["OPTIM.MAX_EPOCH", 2, "DATASET.NUM_SHOTS", 2, "DATASET.SUBSAMPLE_CLASSES", "base"]
        + ["TRAINER.COOP.N_CTX", 4, "DATALOADER.TRAIN_X.BATCH_SIZE", 4]
    )
    assert code == 0
    log = (out / "log.txt").read_text()
    assert "Finish training" in log
    assert "Deploy the last-epoch model" in log
    assert "Evaluate on the *test* set" in log
    assert (out / "prompt_learner" / "model.pth.tar-2").exists()
    assert not (out / "prompt_learner" / "model.pth.tar-1").exists()
    assert (out / "prompt_learner" / "checkpoint").read_text().strip() == "model.pth.tar-2"
    record = json.loads((out / "results.json").read_text())
    assert record["trainer"] == "CoOp"
    assert 0.0 <= last_accuracy(out / "log.txt") <= 100.0

    new_out = tmp_path / "test_new"
    code = run_train(
        common_args(repo_root, benchmark_root, "caltech101", new_out, "CoOp")
        + ["--eval-only", "--model-dir", out, "--load-epoch", 2]
        + TINY
        + ["DATASET.NUM_SHOTS", 2, "DATASET.SUBSAMPLE_CLASSES", "new", "TRAINER.COOP.N_CTX", 4]
    )
    assert code == 0
    new_log = (new_out / "log.txt").read_text()
    assert "Loading weights to prompt_learner" in new_log
    assert "=> result" in new_log


def test_zeroshot_clip_needs_no_model_dir(repo_root, benchmark_root, tmp_path):
    out = tmp_path / "zs"
    code = run_train(
        common_args(repo_root, benchmark_root, "eurosat", out, "ZeroshotCLIP")
        + ["--eval-only"]
        + TINY
    )
    assert code == 0
    log = (out / "log.txt").read_text()
    assert "a centered satellite photo of" in log
    assert 0.0 <= last_accuracy(out / "log.txt") <= 100.0


def cli_error(args: list, cwd: Path, python: str) -> subprocess.CompletedProcess:
    """train.py as a command: `python` is the `fast_python` fixture (the warm fork server,
    which runs train.py as `__main__` with this command line) or `sys.executable`."""
    return subprocess.run(
        [python, str(cwd / "train.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


@pytest.mark.parametrize(
    ("flags", "opts", "needles"),
    [
        (["--trainer", "CoOpp"], [], ['Unknown trainer "CoOpp"', "CoOp"]),
        ([], ["TRAINER.COOP.NCTX", "4"], ["TRAINER.COOP.NCTX", "TRAINER.COOP.N_CTX"]),
        (["--config-file", "configs/trainers/CoOp/nope.yaml"], [], ["nope.yaml"]),
        ([], ["MODEL.BACKBONE.NAME", "ViT-B/61"], ["ViT-B/61"]),
        (["--eval-only"], [], ["--model-dir"]),
        (["--eval-only", "--model-dir", "{out}", "--load-epoch", "7"], [], ["model.pth.tar-7"]),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    repo_root, benchmark_root, fast_python, tmp_path, flags, opts, needles
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "log.txt").write_text("earlier run\n")
    base = common_args(repo_root, benchmark_root, "caltech101", out, "CoOp")
    flags = [flag.replace("{out}", str(out)) for flag in flags]
    # argparse keeps the last occurrence of a flag, so overrides follow the base flags
    result = cli_error(
        base + flags + ["MODEL.BACKBONE.NAME", "tiny"] + opts, repo_root, fast_python
    )
    assert_one_line_error(result, *needles)
    assert (out / "log.txt").read_text().startswith("earlier run\n")


def test_missing_dataset_root_is_one_line_error(repo_root, fast_python, tmp_path):
    out = tmp_path / "out"
    result = cli_error(
        common_args(repo_root, tmp_path / "no_such_root", "caltech101", out, "CoOp")
        + ["MODEL.BACKBONE.NAME", "tiny"],
        repo_root,
        fast_python,
    )
    assert_one_line_error(result, "no_such_root")


def test_debug_flag_shows_the_traceback(repo_root, benchmark_root, tmp_path):
    args = common_args(repo_root, benchmark_root, "caltech101", tmp_path / "o", "CoOpp")
    result = cli_error(args + ["--debug"], repo_root, sys.executable)  # a fresh interpreter
    assert result.returncode != 0
    assert "Traceback" in result.stderr
