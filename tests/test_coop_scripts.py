"""scripts/coop/{main,eval,zeroshot}.sh and scripts/zsclip/zeroshot.sh: command lines via
--dry-run, then one real chain on fixture data with the tiny backbone (train → evaluate on
another dataset → zero-shot), parsed and collected like real experiments.

`$PYTHON` is the baselines' pre-warmed fork server, so train.py runs unmodified without
paying for the torch import at every call.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ammpl.results.collect import collect_runs
from ammpl.results.parse import parse_directory

TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


def run_script(repo_root: Path, script: str, args, env: dict, cwd: Path):
    return subprocess.run(
        ["bash", str(repo_root / "scripts" / script), *map(str, args)],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def dry_run(repo_root, script, args, tmp_path, **env) -> list[list[str]]:
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out", **env}
    result = run_script(repo_root, script, [*args, "--dry-run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_main_loops_three_seeds_with_coops_options(repo_root, tmp_path):
    commands = dry_run(
        repo_root,
        "coop/main.sh",
        ["oxford_pets", "rn50_ep50", "middle", 16, 1, "True", "OPTIM.LR", "0.1"],
        tmp_path,
    )
    assert [option(c, "--seed") for c in commands] == ["1", "2", "3"]
    first = commands[0]
    assert first[1].endswith("train.py") and option(first, "--trainer") == "CoOp"
    assert option(first, "--output-dir") == (
        "out/oxford_pets/CoOp/rn50_ep50_1shots/nctx16_cscTrue_ctpmiddle/seed1"
    )
    assert option(first, "--config-file").endswith("configs/trainers/CoOp/rn50_ep50.yaml")
    assert option(first, "--dataset-config-file").endswith("configs/datasets/oxford_pets.yaml")
    assert option(first, "--root") == str(tmp_path)
    assert first[-10:] == [
        "TRAINER.COOP.N_CTX",
        "16",
        "TRAINER.COOP.CSC",
        "True",
        "TRAINER.COOP.CLASS_TOKEN_POSITION",
        "middle",
        "DATASET.NUM_SHOTS",
        "1",
        "OPTIM.LR",
        "0.1",
    ]
    two = dry_run(
        repo_root, "coop/main.sh", ["dtd", "rn50", "end", 4, 8, "False"], tmp_path, SEEDS="2 5"
    )
    assert [option(c, "--seed") for c in two] == ["2", "5"]


def test_eval_loads_the_trained_epoch_of_the_config(repo_root, tmp_path):
    commands = dry_run(repo_root, "coop/eval.sh", ["imagenet_a", "rn50_ep50"], tmp_path)
    assert len(commands) == 3
    third = commands[2]
    assert option(third, "--model-dir") == (
        "out/imagenet/CoOp/rn50_ep50_16shots/nctx16_cscFalse_ctpend/seed3"
    )
    assert option(third, "--output-dir") == (
        "out/evaluation/CoOp/rn50_ep50_16shots/nctx16_cscFalse_ctpend/imagenet_a/seed3"
    )
    assert option(third, "--load-epoch") == "50" and "--eval-only" in third
    assert third[-6:] == [
        "TRAINER.COOP.N_CTX",
        "16",
        "TRAINER.COOP.CSC",
        "False",
        "TRAINER.COOP.CLASS_TOKEN_POSITION",
        "end",
    ]
    [other] = dry_run(
        repo_root,
        "coop/eval.sh",
        ["dtd", "rn50", "OPTIM.MAX_EPOCH", "7"],
        tmp_path,
        SEEDS="1",
        SOURCE="food101",
        SHOTS="4",
    )
    assert option(other, "--load-epoch") == "7"  # overrides are followed
    assert (
        option(other, "--model-dir") == "out/food101/CoOp/rn50_4shots/nctx16_cscFalse_ctpend/seed1"
    )
    assert "rn50_4shots_from_food101/nctx16_cscFalse_ctpend/dtd/" in option(other, "--output-dir")


@pytest.mark.parametrize("script", ["coop/zeroshot.sh", "zsclip/zeroshot.sh"])
def test_zeroshot_command(repo_root, tmp_path, script):
    [command] = dry_run(repo_root, script, ["eurosat", "vit_b16"], tmp_path)
    assert option(command, "--trainer") == "ZeroshotCLIP" and "--eval-only" in command
    assert "--seed" not in command and "--model-dir" not in command
    assert option(command, "--config-file").endswith("configs/trainers/CoOp/vit_b16.yaml")
    assert option(command, "--output-dir") == "out/ZeroshotCLIP/vit_b16/eurosat"
    [novel] = dry_run(
        repo_root, script, ["eurosat", "vit_b16", "DATASET.SUBSAMPLE_CLASSES", "new"], tmp_path
    )
    assert option(novel, "--output-dir") == "out/ZeroshotCLIP/vit_b16_new/eurosat"


def test_user_errors(repo_root, tmp_path):
    env = {"DATA": "", "PYTHON": sys.executable}
    missing = run_script(
        repo_root, "coop/main.sh", ["dtd", "rn50", "end", 16, 1, "False"], env, tmp_path
    )
    assert missing.returncode == 2 and "DATA is not set" in missing.stderr
    env["DATA"] = str(tmp_path)
    for args, message in (
        (["dtd", "rn50", "end", 16, 1, "yes"], "CSC must be True or False"),
        (["dtd", "rn50", "end", 16], "usage: main.sh DATASET CFG CTP NCTX SHOTS CSC"),
        (["dtd", "nope", "end", 16, 1, "False"], "no config configs/trainers/CoOp/nope.yaml"),
    ):
        result = run_script(repo_root, "coop/main.sh", args, env, tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "results.json").read_text())["results"]["test"]["accuracy"]


def test_real_chain_on_fixture_data(repo_root, benchmark_root, fast_python, tmp_path):
    out = tmp_path / "output"
    env = {
        "DATA": str(benchmark_root),
        "PYTHON": fast_python,
        "OUTPUT_ROOT": str(out),
        "SEEDS": "1",
        "SHOTS": "2",
        "NCTX": "4",
    }
    variant = "vit_b16_ep50_2shots/nctx4_cscFalse_ctpend"
    train_dir = f"imagenet/CoOp/{variant}/seed1"
    eval_dir = f"evaluation/CoOp/{variant}/imagenetv2/seed1"
    steps = [
        ("coop/main.sh", ["imagenet", "vit_b16_ep50", "end", 4, 2, "False"], train_dir),
        ("coop/eval.sh", ["imagenetv2", "vit_b16_ep50"], eval_dir),
        ("zsclip/zeroshot.sh", ["caltech101", "vit_b16"], "ZeroshotCLIP/vit_b16/caltech101"),
    ]
    for script, args, folder in steps:
        result = run_script(repo_root, script, [*args, *TINY], env, tmp_path)
        assert result.returncode == 0, f"{script}: {result.stdout[-2000:]}\n{result.stderr}"
        assert 0.0 <= accuracy(out / folder) <= 100.0
    assert "model.pth.tar-1" in (out / steps[1][2] / "log.txt").read_text()  # MAX_EPOCH 1

    again = run_script(repo_root, steps[0][0], [*steps[0][1], *TINY], env, tmp_path)
    assert again.returncode == 0 and "Skip this job" in again.stdout

    # the reference parser reads the same numbers the runs recorded
    for folder, test_log in ((steps[0][2], False), (steps[1][2], True), (steps[2][2], True)):
        summary = parse_directory(str((out / folder).parent), test_log=test_log, echo=print)
        assert summary.values == [round(accuracy(out / folder), 2)]

    runs = {r.protocol: r for r in collect_runs(str(out))}
    assert sorted(runs) == ["fewshot", "xd_eval", "zeroshot"]
    assert (runs["xd_eval"].source, runs["xd_eval"].variant) == (
        "imagenet",
        "nctx4_cscFalse_ctpend",
    )
    assert (runs["zeroshot"].method, runs["zeroshot"].seed) == ("ZS-CLIP", None)
    assert runs["fewshot"].accuracy == accuracy(out / steps[0][2])


def driver(repo_root, tmp_path, *args, **env) -> list[list[str]]:
    """scripts/run_all.sh --dry-run: the train.py command lines it would run."""
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out", **env}
    result = run_script(repo_root, "run_all.sh", [*args, "--dry-run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_driver_loops(repo_root, tmp_path):
    coop = driver(repo_root, tmp_path, "fewshot", "coop", DATASETS="dtd", SEEDS="1")
    assert [option(c, "--output-dir").split("/")[3] for c in coop] == [
        "vit_b16_ep50_1shots", "vit_b16_ep100_2shots", "vit_b16_ep100_4shots",
        "vit_b16_8shots", "vit_b16_16shots",
    ]  # fmt: skip
    xd = driver(repo_root, tmp_path, "xd", "ammpl", DATASETS="dtd food101", SEEDS="1 2")
    assert len(xd) == 3 * 2 * 2  # shots 1, 8, 16 × seeds × (train on food101 + dtd)
    assert {option(c, "--dataset-config-file").split("/")[-1] for c in xd} == {
        "food101.yaml",
        "dtd.yaml",
    }
    extra = driver(repo_root, tmp_path, "base2new", "maple", "OPTIM.LR", "1", DATASETS="dtd")
    assert len(extra) == 6 and all(c[-2:] == ["OPTIM.LR", "1"] for c in extra)
    bad = run_script(repo_root, "run_all.sh", ["ablation", "maple"], {"DATA": str(tmp_path)},
                     tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "no ablation runs for METHOD 'maple'" in bad.stderr
