"""scripts/ammpl/*.sh end to end on fixture data with the tiny backbone (1 epoch).

`$PYTHON` is the warm fork server (the `fast_python` fixture), so no run pays for
importing torch; independent runs go in parallel (two waves: trainings, then the
evaluations that load them).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

CFG = "vit_b16_c4_ep5_batch4_ctxv1"
QUICK = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]
TRAININGS = {
    "base2new_train": ("base2new_train.sh", "caltech101", 1, *QUICK),
    "xd_train": ("xd_train.sh", 1, 2, *QUICK),
    "fewshot": ("fewshot.sh", "eurosat", 2, 1, *QUICK),
    "ablation": ("ablation.sh", "eurosat", "C1+C2", 1, *QUICK),
}
EVALUATIONS = {
    "base2new_test": ("base2new_test.sh", "caltech101", 1, *QUICK),
    "xd_test": ("xd_test.sh", "dtd", 1, 2, *QUICK),
}
FOLDERS = {
    "base2new_train": f"output/base2new/train_base/caltech101/shots_16/AMMPL/{CFG}/seed1",
    "base2new_test": f"output/base2new/test_new/caltech101/shots_16/AMMPL/{CFG}/seed1",
    "xd_train": f"output/food101/AMMPL/{CFG}_2shots/seed1",
    "xd_test": f"output/evaluation/AMMPL/{CFG}_2shots/dtd/seed1",
    "fewshot": f"output/eurosat/AMMPL/{CFG}_csc_2shots/seed1",
    "ablation": f"output/ablation/eurosat/AMMPL/{CFG}_csc_1shots/"
    "maskTrue_padTrue_interactFalse/seed1",
}


def start(
    repo_root: Path, workdir: Path, python: str, name: str, *args, data=None
) -> subprocess.Popen:
    env = dict(os.environ, PYTHON=python, OMP_NUM_THREADS="1")
    env.pop("DATA", None)
    if data is not None:
        env["DATA"] = str(data)
    return subprocess.Popen(
        ["bash", str(repo_root / "scripts" / "ammpl" / name), *map(str, args)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=180)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def script(repo_root: Path, workdir: Path, python: str, name: str, *args, data=None):
    return finish(start(repo_root, workdir, python, name, *args, data=data))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ammpl_scripts")


@pytest.fixture(scope="module")
def runs(repo_root, benchmark_root, fast_python, workdir) -> dict[str, subprocess.CompletedProcess]:
    results = {}
    for wave in (TRAININGS, EVALUATIONS):
        started = {
            key: start(repo_root, workdir, fast_python, *command, data=benchmark_root)
            for key, command in wave.items()
        }
        results.update({key: finish(process) for key, process in started.items()})
    return results


def final_accuracy(folder: Path) -> float:
    record = json.loads((folder / "results.json").read_text())
    return record["results"]["test"]["accuracy"]


@pytest.mark.parametrize("key", list(FOLDERS))
def test_every_script_runs_and_records_a_test_result(runs, workdir, key):
    result = runs[key]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 0 <= final_accuracy(workdir / FOLDERS[key]) <= 100


def test_evaluations_load_the_trained_epoch(runs, workdir):
    for key, source in (("base2new_test", "base2new_train"), ("xd_test", "xd_train")):
        log = (workdir / FOLDERS[key] / "log.txt").read_text()
        expected = (workdir / FOLDERS[source] / "prompt_learner" / "model.pth.tar-1").resolve()
        assert "Loading weights to prompt_learner" in log
        assert "model.pth.tar-1" in log and expected.exists()  # MAX_EPOCH from the overrides


def test_variants_and_components_follow_the_script(runs, workdir):
    fewshot = (workdir / FOLDERS["fewshot"] / "log.txt").read_text()
    assert "class-specific model" in fewshot and "components C1+C2+C3" in fewshot
    ablation = (workdir / FOLDERS["ablation"] / "log.txt").read_text()
    assert "components C1+C2" in ablation and "prompt_learner.f_I" not in ablation
    base = (workdir / FOLDERS["base2new_train"] / "log.txt").read_text()
    assert "generalisable model" in base


def test_finished_runs_are_skipped_and_dry_run_prints(
    runs, repo_root, benchmark_root, fast_python, workdir
):
    again = script(
        repo_root, workdir, fast_python, *TRAININGS["base2new_train"], data=benchmark_root
    )
    assert again.returncode == 0 and "Skip this job" in again.stdout
    dry = script(repo_root, workdir, fast_python, "base2new_test.sh", "caltech101", 1, "base",
                 "--dry-run", data=benchmark_root)  # fmt: skip
    assert dry.returncode == 0
    assert "--load-epoch 5" in dry.stdout and "SUBSAMPLE_CLASSES base" in dry.stdout
    assert (
        "test_base/caltech101" in dry.stdout
        and not (workdir / "output/base2new/test_base").exists()
    )


def test_user_errors_are_one_line(repo_root, benchmark_root, fast_python, workdir):
    def run(*args, data=benchmark_root):
        return script(repo_root, workdir, fast_python, *args, data=data)

    missing = run("fewshot.sh", "eurosat", 1, 1, data=None)
    assert missing.returncode == 2 and "DATA is not set" in missing.stderr
    bad = run("ablation.sh", "eurosat", "C2", 1)
    assert bad.returncode == 2 and "needs the mask (C1)" in bad.stderr
    unknown = run("ablation.sh", "eurosat", "C4", 1)
    assert unknown.returncode == 2 and "unknown component 'C4'" in unknown.stderr
    dataset = run("fewshot.sh", "nope", 1, 1)
    assert dataset.returncode == 2 and "no dataset config" in dataset.stderr
    usage = run("base2new_train.sh", "eurosat")
    assert usage.returncode == 2 and "usage: base2new_train.sh DATASET SEED" in usage.stderr
