"""A test run uses the model it tests (ammpl/engine/trained_settings.py): an evaluation whose
--model-dir holds a run trained with another backbone or other method settings takes the
trained ones with a notice, or stops with one line naming the override to pass."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ammpl.cli.train import main
from ammpl.engine.logger import close_logger

QUICK = ["DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


def coop_args(repo_root: Path, root, out) -> list[str]:
    return [
        "--root", str(root), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(repo_root / "configs/datasets/caltech101.yaml"),
        "--config-file", str(repo_root / "configs/trainers/CoOp/vit_b16_ep50.yaml"),
        "--output-dir", str(out),
    ]  # fmt: skip


def record(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


@pytest.fixture(scope="module")
def trained(repo_root, benchmark_root, tmp_path_factory):
    """CoOp trained on the tiny backbone with 4 context tokens (its config: ViT-B/16, 16)."""
    out = tmp_path_factory.mktemp("coop") / "train"
    opts = ["MODEL.BACKBONE.NAME", "tiny", "TRAINER.COOP.N_CTX", "4", *QUICK]
    assert main(coop_args(repo_root, benchmark_root, out) + opts) == 0
    close_logger()
    return out


def test_an_evaluation_takes_the_trained_backbone_and_method_settings(
    repo_root, benchmark_root, trained, tmp_path, capsys
):
    out = tmp_path / "eval"
    args = coop_args(repo_root, benchmark_root, out)
    args += ["--eval-only", "--model-dir", str(trained), "--load-epoch", "1", *QUICK]
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    close_logger()
    notices = [line for line in capsys.readouterr().out.splitlines() if "trained with" in line]
    assert len(notices) == 1
    assert "MODEL.BACKBONE.NAME tiny (config: ViT-B/16)" in notices[0]
    assert "TRAINER.COOP.N_CTX 4 (config: 16)" in notices[0]
    evaluated = record(out)
    assert evaluated["backbone"]["name"] == "tiny"
    # the very model the training run tested at its end: the same accuracy
    accuracy = evaluated["results"]["test"]["accuracy"]
    assert accuracy == record(trained)["results"]["test"]["accuracy"]


def test_an_evaluation_asking_for_another_backbone_stops(
    repo_root, benchmark_root, trained, tmp_path, capsys
):
    out = tmp_path / "eval"
    args = coop_args(repo_root, benchmark_root, out)
    args += ["--eval-only", "--model-dir", str(trained), "MODEL.BACKBONE.NAME", "tiny_rn"]
    capsys.readouterr()
    assert main(args + QUICK) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "trained with MODEL.BACKBONE.NAME tiny" in err[0]
    assert "pass MODEL.BACKBONE.NAME tiny" in err[0]
    assert not out.exists()


def test_an_evaluation_keeps_its_own_evaluation_choices(
    repo_root, benchmark_root, trained, tmp_path, capsys
):
    """A key the evaluation's command line sets (not the backbone) is its own choice."""
    out = tmp_path / "eval"
    args = coop_args(repo_root, benchmark_root, out)
    args += ["--eval-only", "--model-dir", str(trained), "--load-epoch", "1", *QUICK]
    args += ["TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"]
    assert main(args) == 0
    close_logger()
    text = capsys.readouterr().out
    assert (
        "CLASS_TOKEN_POSITION" not in [line for line in text.splitlines() if "trained" in line][0]
    )
    assert "TRAINER.COOP.CLASS_TOKEN_POSITION: middle" not in text  # only the header is shown
    log = (out / "log.txt").read_text()
    assert "CLASS_TOKEN_POSITION: middle" in log


def test_base2new_test_after_a_tiny_training_run(repo_root, benchmark_root, fast_python, tmp_path):
    """The issue's case: base2new_test.sh without the training's `MODEL.BACKBONE.NAME tiny`
    evaluates the tiny model instead of asking for ViT-B/16 weights."""
    env = {**os.environ, "DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": "out"}

    def script(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(repo_root / "scripts/ammpl" / name), "caltech101", "1", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    train = script("base2new_train.sh", "MODEL.BACKBONE.NAME", "tiny", *QUICK)
    assert train.returncode == 0, train.stderr[-2000:]
    test = script("base2new_test.sh", *QUICK)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-2000:]
    assert "with the settings it was trained with: MODEL.BACKBONE.NAME tiny" in test.stdout
    (result,) = (tmp_path / "out/base2new/test_new").rglob("results.json")
    assert json.loads(result.read_text())["backbone"]["name"] == "tiny"
