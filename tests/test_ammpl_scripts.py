"""scripts/ammpl/*.sh end to end on fixture data with the tiny backbone (1 epoch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CFG = "vit_b16_c4_ep5_batch4_ctxv1"
QUICK = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ammpl_scripts")


def script(repo_root: Path, workdir: Path, name: str, *args, data=None, extra_env=None):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("DATA", None)
    if data is not None:
        env["DATA"] = str(data)
    env.update(extra_env or {})
    return subprocess.run(
        ["bash", str(repo_root / "scripts" / "ammpl" / name), *map(str, args)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def final_accuracy(folder: Path) -> float:
    record = json.loads((folder / "results.json").read_text())
    return record["results"]["test"]["accuracy"]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_base_to_new_train_test_and_skip(repo_root, benchmark_root, workdir):
    run = lambda *a: script(repo_root, workdir, *a, data=benchmark_root)  # noqa: E731
    assert_ok(run("base2new_train.sh", "caltech101", 1, *QUICK))
    train = workdir / f"output/base2new/train_base/caltech101/shots_16/AMMPL/{CFG}/seed1"
    assert (train / "prompt_learner/model.pth.tar-1").exists()
    assert 0 <= final_accuracy(train) <= 100

    result = run("base2new_test.sh", "caltech101", 1, *QUICK)
    assert_ok(result)
    new = workdir / f"output/base2new/test_new/caltech101/shots_16/AMMPL/{CFG}/seed1"
    assert 0 <= final_accuracy(new) <= 100
    assert "model.pth.tar-1" in (new / "log.txt").read_text()  # load epoch = MAX_EPOCH override

    again = run("base2new_train.sh", "caltech101", 1, *QUICK)
    assert_ok(again)
    assert "Skip this job" in again.stdout

    dry = run("base2new_test.sh", "caltech101", 1, "base", "--dry-run")
    assert_ok(dry)
    assert "--load-epoch 5" in dry.stdout and "SUBSAMPLE_CLASSES base" in dry.stdout
    assert "test_base/caltech101" in dry.stdout


def test_cross_dataset_from_food101(repo_root, benchmark_root, workdir):
    run = lambda *a: script(repo_root, workdir, *a, data=benchmark_root)  # noqa: E731
    assert_ok(run("xd_train.sh", 1, 2, *QUICK))
    source = workdir / f"output/food101/AMMPL/{CFG}_2shots/seed1"
    assert 0 <= final_accuracy(source) <= 100
    assert_ok(run("xd_test.sh", "dtd", 1, 2, *QUICK))
    target = workdir / f"output/evaluation/AMMPL/{CFG}_2shots/dtd/seed1"
    assert 0 <= final_accuracy(target) <= 100


def test_fewshot_and_ablation(repo_root, benchmark_root, workdir):
    run = lambda *a: script(repo_root, workdir, *a, data=benchmark_root)  # noqa: E731
    assert_ok(run("fewshot.sh", "eurosat", 2, 1, *QUICK))
    fewshot = workdir / f"output/eurosat/AMMPL/{CFG}_csc_2shots/seed1"
    assert 0 <= final_accuracy(fewshot) <= 100
    assert "class-specific model" in (fewshot / "log.txt").read_text()

    assert_ok(run("ablation.sh", "eurosat", "C1+C2", 1, *QUICK))
    variant = f"output/ablation/eurosat/AMMPL/{CFG}_csc_1shots/maskTrue_padTrue_interactFalse"
    folder = workdir / variant / "seed1"
    assert 0 <= final_accuracy(folder) <= 100
    log = (folder / "log.txt").read_text()
    assert "components C1+C2" in log and "prompt_learner.f_I" not in log


def test_user_errors_are_one_line(repo_root, benchmark_root, workdir):
    missing = script(repo_root, workdir, "fewshot.sh", "eurosat", 1, 1)
    assert missing.returncode == 2 and "DATA is not set" in missing.stderr
    bad = script(repo_root, workdir, "ablation.sh", "eurosat", "C2", 1, data=benchmark_root)
    assert bad.returncode == 2 and "needs the mask (C1)" in bad.stderr
    unknown = script(repo_root, workdir, "ablation.sh", "eurosat", "C4", 1, data=benchmark_root)
    assert unknown.returncode == 2 and "unknown component 'C4'" in unknown.stderr
    dataset = script(repo_root, workdir, "fewshot.sh", "nope", 1, 1, data=benchmark_root)
    assert dataset.returncode == 2 and "no dataset config" in dataset.stderr
    usage = script(repo_root, workdir, "base2new_train.sh", "eurosat", data=benchmark_root)
    assert usage.returncode == 2 and "usage: base2new_train.sh DATASET SEED" in usage.stderr
