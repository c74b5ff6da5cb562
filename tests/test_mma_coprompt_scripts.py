"""MMA's and CoPrompt's protocol scripts (dry runs), the sweep's view of methods without a
few-shot protocol, and their names in result tables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ammpl.results.names import METHOD_ORDER, method_name
from ammpl.sweep.plan import SweepSpec, method_steps, no_fewshot_methods, trainable_methods
from ammpl.utils import ConfigError


def dry_run(repo_root, tmp_path, script: str, *args: str, **env: str) -> str:
    result = subprocess.run(
        ["bash", str(repo_root / "scripts" / script), *args, "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "DATA": str(tmp_path), "PYTHON": sys.executable, **env},
        check=True,
    )
    return result.stdout


def test_coprompt_scripts_pass_the_references_per_dataset_values(repo_root, tmp_path):
    train = dry_run(repo_root, tmp_path, "coprompt/base2new_train.sh", "food101", "1", "X", "1")
    assert "--config-file " + str(repo_root / "configs/trainers/CoPrompt/coprompt.yaml") in train
    values = "TRAINER.CoPrompt.PROMPT_DEPTH 9 TRAINER.CoPrompt.N_CTX 4 TRAINER.CoPrompt.W 0.5"
    assert f"SUBSAMPLE_CLASSES base {values} OPTIM.MAX_EPOCH 5 X 1" in train  # user's last
    test = dry_run(repo_root, tmp_path, "coprompt/base2new_test.sh", "food101", "1", "new")
    assert "--load-epoch 5 --eval-only" in test and "SUBSAMPLE_CLASSES new " + values in test
    plain = dry_run(repo_root, tmp_path, "coprompt/base2new_test.sh", "mini_colors", "1")
    assert "--load-epoch 8" in plain and "TRAINER.CoPrompt" not in plain
    # cross-dataset targets get the source's (ImageNet's) values: the model's shapes
    target = dry_run(repo_root, tmp_path, "coprompt/xd_test.sh", "dtd", "1")
    assert "dtd.yaml" in target and "N_CTX 4" in target and "PROMPT_DEPTH 12" in target


def test_mma_scripts_use_the_imagenet_config_for_imagenet(repo_root, tmp_path):
    other = dry_run(repo_root, tmp_path, "mma/base2new_train.sh", "dtd", "1")
    assert "/MMA/vit_b16_ep5.yaml" in other and "--trainer MMA" in other
    imagenet = dry_run(repo_root, tmp_path, "mma/base2new_test.sh", "imagenet", "1")
    assert "/MMA/vit_b16_ep5_imnet.yaml" in imagenet and "--load-epoch 5" in imagenet
    xd = dry_run(repo_root, tmp_path, "mma/xd_train.sh", "1")
    assert "imagenet.yaml" in xd and "vit_b16_ep5_imnet" in xd
    food = dry_run(repo_root, tmp_path, "mma/xd_train.sh", "1", SOURCE="food101")
    assert "food101.yaml" in food and "/MMA/vit_b16_ep5.yaml" in food


def test_the_sweep_knows_methods_without_a_fewshot_protocol(tmp_path):
    assert {"mma", "coprompt"} <= set(trainable_methods())
    assert {"mma", "coprompt"} <= set(no_fewshot_methods())
    spec = SweepSpec("base2new", ["mma"], data=str(tmp_path), datasets=["dtd"], seeds=[1])
    assert [s.script for s in method_steps(spec, "coprompt")] == [
        "coprompt/base2new_train.sh",
        "coprompt/base2new_test.sh",
    ]
    xd = SweepSpec("xd", ["mma"], data=str(tmp_path), datasets=["dtd"], seeds=[1])
    assert [s.script for s in method_steps(xd, "mma")] == ["mma/xd_train.sh", "mma/xd_test.sh"]
    fewshot = SweepSpec("fewshot", ["mma"], data=str(tmp_path), datasets=["dtd"], seeds=[1])
    with pytest.raises(ConfigError, match="no fewshot runs for METHOD 'mma'"):
        method_steps(fewshot, "mma")


def test_result_tables_name_them_as_their_papers():
    assert method_name("MMA", "vit_b16_ep5") == "MMA"
    assert method_name("CoPrompt", "coprompt") == "CoPrompt"
    assert {"MMA", "CoPrompt"} <= set(METHOD_ORDER)
