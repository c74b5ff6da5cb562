"""The baselines' protocol scripts, end to end on fixture data with the tiny backbone.

`$PYTHON` is a pre-warmed fork server (tests/_baselines_script_server.py), so every script
runs unmodified — bash, its arguments, the skip check, train.py's whole command line — while
torch is imported only once. Command lines of every script are also checked with --dry-run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

METHODS = {
    # script folder: (trainer, base-to-new config, cross-dataset config)
    "cocoop": ("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", "vit_b16_c4_ep10_batch1_ctxv1"),
    "ivlp": ("IVLP", "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_2+2ctx"),
    "dlp": (
        "IVLP",
        "vit_b16_c2_ep5_batch4_4ctx_language_only",
        "vit_b16_c2_ep5_batch4_4ctx_language_only",
    ),
    "vpt": ("VPT", "vit_b16_c2_ep5_batch4_4", "vit_b16_c2_ep5_batch4_4"),
    "maple": ("MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
    "kgcoop": ("KgCoOp", "vit_b16_ep100_ctxv1", "vit_b16_ep100_ctxv1"),
}
TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


def run_script(repo_root: Path, script: str, args: list, env: dict, cwd: Path):
    return subprocess.run(
        ["bash", str(repo_root / "scripts" / script), *map(str, args)],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def max_epoch(repo_root: Path, trainer: str, cfg: str) -> int:
    path = repo_root / "configs" / "trainers" / trainer / f"{cfg}.yaml"
    return int(yaml.safe_load(path.read_text())["OPTIM"]["MAX_EPOCH"])


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def dry_run(repo_root, script, args, tmp_path) -> list[str]:
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out"}
    result = run_script(repo_root, script, [*args, "--dry-run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("folder", sorted(METHODS))
def test_command_lines(repo_root, tmp_path, folder):
    trainer, cfg, xd_cfg = METHODS[folder]
    extra = ["TRAINER.X", "1"]

    train = dry_run(repo_root, f"{folder}/base2new_train.sh", ["caltech101", 2, *extra], tmp_path)
    base_dir = f"out/base2new/train_base/caltech101/shots_16/{trainer}/{cfg}/seed2"
    assert option(train, "--trainer") == trainer
    assert option(train, "--config-file").endswith(f"configs/trainers/{trainer}/{cfg}.yaml")
    assert option(train, "--dataset-config-file").endswith("configs/datasets/caltech101.yaml")
    assert option(train, "--output-dir") == base_dir
    assert train[-6:] == ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base", *extra]

    test = dry_run(repo_root, f"{folder}/base2new_test.sh", ["caltech101", 2, "base"], tmp_path)
    assert option(test, "--model-dir") == base_dir
    assert option(test, "--load-epoch") == str(max_epoch(repo_root, trainer, cfg))
    assert option(test, "--output-dir") == base_dir.replace("train_base", "test_base")
    assert "--eval-only" in test and test[-1] == "base"

    xd_train = dry_run(repo_root, f"{folder}/xd_train.sh", [3], tmp_path)
    source_dir = f"out/imagenet/{trainer}/{xd_cfg}_16shots/seed3"
    assert option(xd_train, "--output-dir") == source_dir
    assert option(xd_train, "--dataset-config-file").endswith("configs/datasets/imagenet.yaml")

    xd_test = dry_run(repo_root, f"{folder}/xd_test.sh", ["dtd", 3], tmp_path)
    assert option(xd_test, "--model-dir") == source_dir
    # The epoch the config trains (the reference IVLP/DLP/VPT scripts load 2 of 5: Q11).
    assert option(xd_test, "--load-epoch") == str(max_epoch(repo_root, trainer, xd_cfg))
    assert option(xd_test, "--output-dir") == f"out/evaluation/{trainer}/{xd_cfg}_16shots/dtd/seed3"

    fewshot = dry_run(repo_root, f"{folder}/fewshot.sh", ["eurosat", 4, 1], tmp_path)
    assert option(fewshot, "--output-dir") == f"out/eurosat/{trainer}/{cfg}_4shots/seed1"
    assert fewshot[-2:] == ["DATASET.NUM_SHOTS", "4"]


@pytest.mark.parametrize("script", ["promptsrc/fewshot.sh", "dpt/fewshot.sh"])
def test_wrapper_overrides_follow_a_leading_dry_run(repo_root, tmp_path, script):
    """Wrappers that add overrides after DATASET SHOTS SEED (PromptSRC's GPA, DPT's
    reference values) give the same command whether --dry-run comes first or last."""
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out"}
    args = ["eurosat", 4, 1, "X.Y", "1"]
    first = run_script(repo_root, script, ["--dry-run", *args], env, tmp_path)
    last = run_script(repo_root, script, [*args, "--dry-run"], env, tmp_path)
    assert first.returncode == 0 and last.returncode == 0, first.stderr + last.stderr
    assert first.stdout == last.stdout and first.stdout.split()[-2:] == ["X.Y", "1"]


def test_scripts_need_data(repo_root, tmp_path):
    env = {"DATA": "", "PYTHON": sys.executable}
    result = run_script(repo_root, "maple/base2new_train.sh", ["caltech101", 1], env, tmp_path)
    assert result.returncode == 2 and "DATA is not set" in result.stderr


def recorded_accuracy(run_dir: Path) -> float:
    record = json.loads((run_dir / "results.json").read_text())
    return record["results"]["test"]["accuracy"]


@pytest.mark.parametrize("folder", sorted(METHODS))
def test_every_script_end_to_end(repo_root, benchmark_root, fast_python, tmp_path, folder):
    trainer, cfg, xd_cfg = METHODS[folder]
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    b2n = f"caltech101/shots_16/{trainer}/{cfg}/seed1"
    xd = f"{trainer}/{xd_cfg}_2shots"
    steps = [
        ("base2new_train.sh", ["caltech101", 1], f"base2new/train_base/{b2n}"),
        ("base2new_test.sh", ["caltech101", 1], f"base2new/test_new/{b2n}"),
        ("xd_train.sh", [1, 2], f"imagenet/{xd}/seed1"),
        ("xd_test.sh", ["oxford_pets", 1, 2], f"evaluation/{xd}/oxford_pets/seed1"),
        ("fewshot.sh", ["eurosat", 1, 1], f"eurosat/{trainer}/{cfg}_1shots/seed1"),
    ]  # fmt: skip
    for script, args, out in steps:
        result = run_script(repo_root, f"{folder}/{script}", [*args, *TINY], env, tmp_path)
        assert result.returncode == 0, f"{script}: {result.stdout[-2000:]}\n{result.stderr}"
        assert 0.0 <= recorded_accuracy(tmp_path / out) <= 100.0, script
    log = (tmp_path / steps[1][2] / "log.txt").read_text()
    assert "model.pth.tar-1" in log  # the load epoch follows the overridden MAX_EPOCH

    again = run_script(repo_root, f"{folder}/base2new_train.sh", ["caltech101", 1, *TINY], env,
                       tmp_path)  # fmt: skip
    assert again.returncode == 0 and "Skip this job" in again.stdout


def test_coop_base_to_new_and_cross_dataset_command_lines(repo_root, tmp_path):
    """CoOp as the CoCoOp paper ran it: vit_b16_ctxv1 (200 epochs; ImageNet vit_b16_ep50_ctxv1),
    loaded at that epoch, not at CoCoOp's 10; cross-dataset vit_b16_ep50_ctxv1."""
    train = dry_run(repo_root, "coop/base2new_train.sh", ["caltech101", 1], tmp_path)
    base_dir = "out/base2new/train_base/caltech101/shots_16/CoOp/vit_b16_ctxv1/seed1"
    assert option(train, "--trainer") == "CoOp" and option(train, "--output-dir") == base_dir
    test = dry_run(repo_root, "coop/base2new_test.sh", ["caltech101", 1], tmp_path)
    assert option(test, "--model-dir") == base_dir and option(test, "--load-epoch") == "200"
    for script in ("coop/base2new_train.sh", "coop/base2new_test.sh"):
        env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out"}
        first = run_script(repo_root, script, ["--dry-run", "imagenet", 1], env, tmp_path)
        assert first.returncode == 0, first.stderr
        command = shlex.split(first.stdout.strip().splitlines()[-1])
        assert option(command, "--config-file").endswith("CoOp/vit_b16_ep50_ctxv1.yaml")
    xd_train = dry_run(repo_root, "coop/xd_train.sh", [2], tmp_path)
    source_dir = "out/imagenet/CoOp/vit_b16_ep50_ctxv1_16shots/seed2"
    assert option(xd_train, "--output-dir") == source_dir
    xd_test = dry_run(repo_root, "coop/xd_test.sh", ["dtd", 2], tmp_path)
    assert option(xd_test, "--model-dir") == source_dir and option(xd_test, "--load-epoch") == "50"


def test_coop_base_to_new_end_to_end(repo_root, benchmark_root, fast_python, tmp_path):
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    b2n = "caltech101/shots_16/CoOp/vit_b16_ctxv1/seed1"
    for script, out in (("base2new_train.sh", "train_base"), ("base2new_test.sh", "test_new")):
        result = run_script(repo_root, f"coop/{script}", ["caltech101", 1, *TINY], env, tmp_path)
        assert result.returncode == 0, f"{script}: {result.stdout[-2000:]}\n{result.stderr}"
        assert 0.0 <= recorded_accuracy(tmp_path / "base2new" / out / b2n) <= 100.0
