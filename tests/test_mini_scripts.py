"""scripts/mini/: the mini benchmark's drivers go through the toolkit's protocol scripts."""

from __future__ import annotations

import os
import subprocess
import sys


def dry_run(repo_root, script, tmp_path, *args, **env):
    environment = {**os.environ, "DATA": str(tmp_path), "SEEDS": "1", **env}
    completed = subprocess.run(
        ["bash", str(repo_root / "scripts/mini" / script), *args, "--dry-run"],
        capture_output=True, text=True, env=environment, check=True,
    )  # fmt: skip
    return [line for line in completed.stdout.splitlines() if "train.py" in line]


def test_base2new_runs_every_method_with_the_mini_configs(repo_root, tmp_path):
    lines = dry_run(repo_root, "run.sh", tmp_path, "base2new", DATASETS="mini_colors")
    trainers = [line.split("--trainer ")[1].split()[0] for line in lines]
    assert trainers == [t for t in ("CoOp", "CoCoOp", "IVLP", "VPT", "MaPLe", "AMMPL")
                        for _ in range(2)]  # fmt: skip
    assert all("/mini.yaml" in line and "mini_colors.yaml" in line for line in lines)
    assert sum("SUBSAMPLE_CLASSES new" in line for line in lines) == 6


def test_fewshot_gives_back_the_mini_values_that_method_scripts_pin(repo_root, tmp_path):
    lines = dry_run(repo_root, "run.sh", tmp_path, "fewshot", DATASETS="mini_colors",
                    SHOTS_LIST="4", METHODS="dpt plotpp")  # fmt: skip
    dpt, *plotpp = lines
    # DPT's script pins its reference values (N_CTX 16, 60 epochs); the mini config's come last.
    assert "TRAINER.COOP.N_CTX 16" in dpt
    assert dpt.rsplit("TRAINER.COOP.N_CTX", 1)[1].split()[0] == "4"
    assert dpt.rsplit("OPTIM.MAX_EPOCH", 1)[1].split()[0] == "10"
    assert dpt.rsplit("TRAINER.DPT.BOTTOMLIMIT", 1)[1].split()[0] == "4"
    assert len(plotpp) == 2  # both stages, each with the mini epochs after PLOT's schedule
    assert all(line.rsplit("OPTIM.MAX_EPOCH", 1)[1].split()[0] == "5" for line in plotpp)


def test_zeroshot_covers_single_template_and_ensemble(repo_root, tmp_path):
    lines = dry_run(repo_root, "run.sh", tmp_path, "zeroshot", DATASETS="mini_scenes")
    assert len(lines) == 6
    assert {line.split("--trainer ")[1].split()[0] for line in lines} == {
        "ZeroshotCLIP", "ZeroshotCLIP2"
    }  # fmt: skip


def test_ammpl_study_trains_once_and_evaluates_every_mode(repo_root, tmp_path):
    lines = dry_run(repo_root, "ammpl_study.sh", tmp_path, VARIANTS="10:0.6")
    assert len(lines) == 1 + 4 * 2
    assert "TRAINER.AMMPL.P_LR_MULT 10" in lines[0] and "TRAIN.CHECKPOINT_FREQ 1" in lines[0]
    modes = [line.split("TEST_MASK ")[1].split()[0] for line in lines[1:]]
    assert modes == [m for m in ("threshold", "expected", "sample", "none") for _ in range(2)]


def test_ammpl_study_fewshot_trains_on_all_classes_and_evaluates_every_mode(repo_root, tmp_path):
    lines = dry_run(repo_root, "ammpl_study.sh", tmp_path, VARIANTS="10:0.9", FEWSHOT="4")
    assert len(lines) == (1 + 4 * 2) + (1 + 4)
    train, *evals = lines[9:]
    assert "fewshot4/train" in train and "DATASET.NUM_SHOTS 4" in train
    assert "SUBSAMPLE_CLASSES" not in train and "TRAINER.AMMPL.P_LR_MULT 10" in train
    assert [e.split("TEST_MASK ")[1].split()[0] for e in evals] == [
        "threshold", "expected", "sample", "none"
    ]  # fmt: skip
    assert all("--model-dir" in e and "fewshot4/train" in e for e in evals)


def test_study_table_reads_accuracies_and_mask_statistics(repo_root, tmp_path):
    import json

    seed = tmp_path / "plr10_init0.9" / "seed1"
    mask = {"keep_mean": 0.7, "keep_std": 0.4, "below_half": 0.3, "train_masked": 0.25}
    runs = (("threshold_base", 60.0), ("threshold_new", 40.0), ("train", 60.0),
            ("fewshot16/none_all", 55.0))  # fmt: skip
    for run, accuracy in runs:
        (seed / run).mkdir(parents=True)
        record = {
            "results": {"test": {"accuracy": accuracy}},
            "epochs": [{"epoch": 1, "mask": mask}],
        }
        (seed / run / "results.json").write_text(json.dumps(record))
    completed = subprocess.run(
        [sys.executable, str(repo_root / "scripts/mini/study_table.py"), str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "| plr10_init0.9 seed1 | threshold | 60.00 | 40.00 | 48.00 |" in completed.stdout
    assert "| plr10_init0.9 | 16 | 1 | – | – | – | 55.00 |" in completed.stdout
    assert "| plr10_init0.9 seed1 | none | – | – | – |" in completed.stdout
    assert "| plr10_init0.9 seed1 | 1 | 0.700 | 0.400 | 0.300 | 0.250 |" in completed.stdout
