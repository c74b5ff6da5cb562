"""`ammpl-results` on the natural first tries of a new user (issue 20, item 1): a folder where
a CSV is expected is collected on the fly; a folder or file where the other is expected, a
file of the wrong kind and a path that cannot be written are one line and exit code 2."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from ammpl.results.cli import main
from tests._results_helpers import training_log, write_log, write_record

B2N = "base2new/{}/eurosat/shots_16/CoOp/vit_b16/seed{}"
FEWSHOT = "eurosat/CoOp/vit_b16_{}shots/nctx16_cscFalse_ctpend/seed{}"
EUROSAT = dict(dataset="EuroSAT", dataset_config_file="configs/datasets/eurosat.yaml")


@pytest.fixture
def output(tmp_path: Path) -> Path:
    """Base-to-new and few-shot runs of CoOp on EuroSAT, seeds 1-3 (with logs)."""
    root = tmp_path / "output"
    for seed in (1, 2, 3):
        write_record(root / B2N.format("train_base", seed), 90.0 + seed, seed=seed,
                     subsample_classes="base", **EUROSAT)  # fmt: skip
        write_record(root / B2N.format("test_new", seed), 60.0 + seed, seed=seed,
                     subsample_classes="new", eval_only=True, **EUROSAT)  # fmt: skip
        for shots in (1, 2):
            folder = root / FEWSHOT.format(shots, seed)
            write_record(folder, 50.0 + shots + seed, seed=seed, num_shots=shots, **EUROSAT)
            write_log(folder, training_log(50.0 + shots + seed))
    return root


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_folder_given_as_the_runs_is_collected_with_a_notice(output, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    assert main(["collect", str(output), "--out", str(csv)]) == 0
    capsys.readouterr()
    assert main(["table", "b2n", str(csv)]) == 0
    from_csv = capsys.readouterr()
    assert main(["table", "b2n", str(output)]) == 0
    from_folder = capsys.readouterr()
    assert from_folder.out == from_csv.out and "| EuroSAT" in from_folder.out
    notice = from_folder.err.strip()
    assert "\n" not in notice and notice.startswith(f"note: {output} is a folder")
    assert "collected its 12 run(s) on the fly" in notice
    assert f"ammpl-results collect {output} --out {output / 'runs.csv'}" in notice

    figures = tmp_path / "figures"
    assert main(["plot-fewshot", str(output), "--out", str(figures)]) == 0
    err = capsys.readouterr().err
    assert "collected its 12 run(s) on the fly" in err
    assert (figures / "eurosat.png").is_file() and (figures / "fewshot_curves.pdf").is_file()


def test_out_of_the_wrong_kind_is_one_line(output, tmp_path, capsys):
    code = main(["collect", str(output), "--out", str(output)])
    err = one_line_error(capsys, code)
    assert f"--out {output} is a folder" in err and str(output / "runs.csv") in err
    assert not list(output.glob(".output.*"))  # no temporary file left behind

    csv = tmp_path / "runs.csv"
    assert main(["collect", str(output), "--out", str(csv)]) == 0
    capsys.readouterr()
    code = main(["table", "b2n", str(csv), "--format", "latex", "--out", str(tmp_path)])
    assert str(tmp_path / "b2n.tex") in one_line_error(capsys, code)
    code = main(["plot-fewshot", str(csv), "--out", str(csv)])
    assert f"--out {csv} is a file: name the folder" in one_line_error(capsys, code)
    code = main(["table", "fewshot", str(csv), "--out", str(csv / "table.md")])
    assert str(csv) in one_line_error(capsys, code)  # the OS's reason, on one line
    code = main(["plot-fewshot", str(csv), "--out", str(csv / "figures")])
    assert str(csv) in one_line_error(capsys, code)


def test_inputs_of_the_wrong_kind_are_one_line(output, tmp_path, capsys):
    run = output / FEWSHOT.format(1, 1)
    code = main(["table", "b2n", str(run / "results.json")])
    assert "is not a runs CSV (one run's results.json)" in one_line_error(capsys, code)
    code = main(["table", "fewshot", str(run / "log.txt")])
    assert "is not a runs CSV" in one_line_error(capsys, code)
    binary = tmp_path / "runs.xlsx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00\x00")
    code = main(["plot-fewshot", str(binary), "--out", str(tmp_path / "figures")])
    assert "not UTF-8 text" in one_line_error(capsys, code)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "is not a runs CSV" in one_line_error(capsys, main(["table", "xd", str(empty)]))
    code = main(["table", "b2n", str(tmp_path / "missing")])
    assert "no file or folder" in one_line_error(capsys, code)
    (tmp_path / "no_runs").mkdir()
    code = main(["table", "b2n", str(tmp_path / "no_runs")])
    assert "no results.json under" in one_line_error(capsys, code)
    code = main(["collect", str(run / "results.json"), "--out", str(tmp_path / "r.csv")])
    assert "is a file, not a folder of runs" in one_line_error(capsys, code)


def test_parse_says_which_folder_to_pass(output, capsys):
    seed_folder = output / FEWSHOT.format(1, 1)
    err = one_line_error(capsys, main(["parse", str(seed_folder)]))
    assert f"is one run's folder: pass its parent {seed_folder.parent}" in err
    err = one_line_error(capsys, main(["parse", str(seed_folder / "log.txt")]))
    assert "log.txt is a file: pass the folder that holds the seed folders" in err


def test_out_may_be_a_pipe_or_device(output, tmp_path, capsys):
    """`--out /dev/stdout` or a FIFO is written through, never replaced by a regular file."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    code = main(["collect", str(output), "--out", str(fifo)])
    reader.join(timeout=10)
    assert code == 0, capsys.readouterr().err
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].startswith("method,trainer,") and received[0].count("\n") == 13


def test_ctrl_c_is_one_line(output, tmp_path, monkeypatch, capsys):
    import ammpl.results.collect

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ammpl.results.collect, "collect_runs", interrupted)
    assert main(["collect", str(output), "--out", str(tmp_path / "runs.csv")]) == 130
    assert capsys.readouterr().err == "Interrupted\n"
    assert not (tmp_path / "runs.csv").exists()
