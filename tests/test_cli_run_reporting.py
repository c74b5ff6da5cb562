"""What a run tells its user (issue 9, items 4–7 and 21): one-line errors for a bad output
folder, an unset data root and PAD without MASK; a notice and a record when a class has fewer
images than NUM_SHOTS; a short terminal header with the full config only in log.txt; the
loaded epoch in an eval-only run's results.json."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from ammpl.cli.train import main
from ammpl.data.registry import dataset_root
from ammpl.engine.config import get_cfg_default
from ammpl.engine.logger import close_logger
from ammpl.utils.errors import AmmplError, DataError
from ammpl.utils.io import ensure_writable_dir

TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0"]


def coop_args(repo_root: Path, root, out, trainer: str = "CoOp") -> list[str]:
    return [
        "--root", str(root),
        "--seed", "1",
        "--trainer", trainer,
        "--dataset-config-file", str(repo_root / "configs/datasets/caltech101.yaml"),
        "--config-file", str(repo_root / "configs/trainers/CoOp/vit_b16_ep50.yaml"),
        "--output-dir", str(out),
    ]  # fmt: skip


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


# ---------------------------------------------------------------- item 4: output folder


@pytest.mark.parametrize("shape", ["file", "under_a_file"])
def test_an_output_dir_that_cannot_be_created_is_one_line(
    repo_root, benchmark_root, tmp_path, capsys, shape
):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if shape == "file" else blocker / "run"
    code = main(coop_args(repo_root, benchmark_root, out) + TINY)
    assert code == 2
    line = one_error_line(capsys)
    assert str(out) in line and "--output-dir" in line


def test_a_read_only_output_parent_is_one_line(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        probe = parent / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:
            pytest.skip("running with permissions that ignore a read-only folder (root)")
        with pytest.raises(AmmplError, match="Cannot write to the output folder .*ro/run"):
            ensure_writable_dir(parent / "run")
    finally:
        parent.chmod(0o755)


def test_a_writable_output_dir_is_created(tmp_path):
    assert ensure_writable_dir(tmp_path / "a" / "b") == str(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())


# ---------------------------------------------------------------- item 5: data root


def test_an_unset_root_says_so(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the old behaviour looked here for caltech-101/
    args = coop_args(repo_root, "", tmp_path / "out") + TINY
    assert main(args) == 2
    line = one_error_line(capsys)
    assert "dataset root is not set" in line and "--root" in line and "DATASET.ROOT" in line


def test_a_root_that_is_a_file_says_so(tmp_path):
    cfg = get_cfg_default()
    (tmp_path / "f").write_text("")
    cfg.DATASET.ROOT = str(tmp_path / "f")
    with pytest.raises(DataError, match="is a file, not a folder"):
        dataset_root(cfg)


# ---------------------------------------------------------------- item 7: PAD without MASK


def test_pad_without_mask_is_a_config_error(repo_root, benchmark_root, tmp_path, capsys):
    args = coop_args(repo_root, benchmark_root, tmp_path / "o", trainer="AMMPL")
    args[args.index("--config-file") + 1] = str(
        repo_root / "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml"
    )
    assert main(args + TINY + ["TRAINER.AMMPL.MASK", "False"]) == 2
    line = one_error_line(capsys)
    assert "TRAINER.AMMPL.PAD" in line and "TRAINER.AMMPL.MASK" in line


# ------------------------------------------------- items 6 and 21: a short run and its record


def run_captured(args: list[str]) -> tuple[int, str]:
    """main(args) with the terminal's stdout captured (the log tee wraps the capture)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(args)
        close_logger()
    return code, buffer.getvalue()


@pytest.fixture(scope="module")
def short_run(repo_root, benchmark_root, tmp_path_factory):
    """CoOp for one epoch asking for 16 shots of classes that have 5 training images."""
    out = tmp_path_factory.mktemp("coop16")
    args = coop_args(repo_root, benchmark_root, out)
    code, terminal = run_captured(args + TINY + ["OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "16"])
    assert code == 0
    return out, args, terminal


def test_too_many_shots_print_a_notice_and_record_what_was_used(short_run):
    out, _, terminal = short_run
    notices = [line for line in terminal.splitlines() if line.startswith("Notice: DATASET.NUM")]
    assert len(notices) == 1
    assert "NUM_SHOTS is 16, but 5 of 5 classes have fewer" in notices[0]
    record = json.loads((out / "results.json").read_text())
    assert record["shots_per_class"] == {"requested": 16, "min": 5, "max": 5}


def test_terminal_gets_a_header_and_log_the_full_config_once(short_run):
    out, _, terminal = short_run
    log = (out / "log.txt").read_text()
    assert "** Config **" not in terminal and "OPTIM:" not in terminal
    assert terminal.count("Run: trainer CoOp, dataset Caltech101, backbone tiny") == 1
    assert log.count("** Config **") == 1 and log.count("** System info **") == 1
    assert "DATASET:" in log and "Run: trainer CoOp" in log


def test_eval_only_records_the_loaded_epoch_and_verbose_shows_the_config(short_run, tmp_path):
    out, args, _ = short_run
    args = list(args)
    args[args.index("--output-dir") + 1] = str(tmp_path / "eval")
    code, terminal = run_captured(
        args + ["--verbose", "--eval-only", "--model-dir", str(out), "--load-epoch", "1"] + TINY
    )
    assert code == 0
    assert terminal.count("** Config **") == 1
    assert "seed 1, evaluation only\nOutput: " in terminal
    record = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert record["results"]["test"]["epoch"] == 1


def test_a_test_only_dataset_gets_no_shortfall_notice(benchmark_root, capsys):
    from ammpl.data.manager import DataManager

    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.DATASET.NUM_SHOTS = str(benchmark_root), "ImageNetA", 16
    cfg.DATALOADER.NUM_WORKERS = 0
    dm = DataManager(cfg)
    assert "Notice: DATASET.NUM_SHOTS" not in capsys.readouterr().out
    assert dm.shots_per_class == {"requested": 16, "min": 10, "max": 10}


def test_ammpl_data_check_with_an_empty_root_says_so(tmp_path, capsys, monkeypatch):
    from ammpl.data.cli import main as data_main

    monkeypatch.chdir(tmp_path)
    assert data_main(["check", "--root", "", "dtd"]) == 2
    assert "--root is empty" in one_error_line(capsys)
