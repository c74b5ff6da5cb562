"""PLOT and PLOT++ scripts: the epochs/batch rules the reference hides in train.py (P11),
command lines, and both trainers end to end on fixture data, with `--eval-only` reloading
what training saved. `$PYTHON` is the warm fork server of the other script tests."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ammpl.results.collect import collect_runs
from ammpl.results.names import variant_display
from tests.test_baselines_scripts import option, run_script

TINY_RN = ["MODEL.BACKBONE.NAME", "tiny-rn", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]
TINY_VIT = [*TINY_RN[:1], "tiny", *TINY_RN[2:]]


def schedule(repo_root: Path, function: str, *args) -> str:
    command = (
        f"source {repo_root}/scripts/plot/schedule.sh; {function} {shlex.join(map(str, args))}"
    )
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    "shots, epochs", [(1, 50), (2, 100), (4, 100), (8, 200), (16, 200), (-1, 200)]
)
def test_p11_epochs_by_shots(repo_root, shots, epochs):
    assert schedule(repo_root, "plot_max_epoch", "caltech101", shots) == str(epochs)
    assert schedule(repo_root, "plot_max_epoch", "imagenet", shots) == "50"


@pytest.mark.parametrize(
    "dataset, batch",
    [("oxford_flowers", "32"), ("fgvc_aircraft", "32"), ("stanford_cars", "32"),
     ("imagenet", ""), ("eurosat", "")],
)  # fmt: skip
def test_p11_small_datasets_train_with_batch_32(repo_root, dataset, batch):
    assert schedule(repo_root, "plot_train_batch", dataset) == batch


def dry_lines(repo_root, script, args, tmp_path, env=None) -> list[list[str]]:
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out", **(env or {})}
    result = run_script(repo_root, script, [*args, "--dry-run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def test_plot_main_runs_the_reference_grid(repo_root, tmp_path):
    lines = dry_lines(repo_root, "plot/main.sh", ["fgvc_aircraft", 8, "TRAINER.X", "1"], tmp_path)
    assert len(lines) == 15  # shots 1 2 4 8 16 × seeds 1 2 3
    first, last = lines[0], lines[-1]
    assert option(first, "--trainer") == "PLOT"
    assert option(first, "--config-file").endswith("configs/trainers/PLOT/rn50.yaml")
    assert option(first, "--output-dir") == "out/fgvc_aircraft/PLOT/rn50_1shots/N8/seed1"
    assert option(last, "--output-dir") == "out/fgvc_aircraft/PLOT/rn50_16shots/N8/seed3"
    assert first[-10:] == ["DATASET.NUM_SHOTS", "1", "TRAINER.PLOT.N", "8", "OPTIM.MAX_EPOCH", "50",
                           "DATALOADER.TRAIN_X.BATCH_SIZE", "32", "TRAINER.X", "1"]  # fmt: skip
    assert option(last, "OPTIM.MAX_EPOCH") == "200"


def test_plotpp_stages_command_lines(repo_root, tmp_path):
    stage1, stage2 = dry_lines(repo_root, "plotpp/fewshot.sh", ["imagenet", 4, 2], tmp_path)
    stage1_dir = "out/imagenet/PLOTPP/vit_4shots/vision_M4/seed1"
    assert option(stage1, "--output-dir") == stage1_dir
    assert option(stage1, "TRAINER.PLOTPP.MODEL_UPD") == "vision"
    assert option(stage1, "TRAINER.PLOTPP.TRADE_OFF") == "True"
    assert option(stage1, "OPTIM.MAX_EPOCH") == "50"
    assert option(stage2, "--output-dir") == "out/imagenet/PLOTPP/vit_4shots/joint_M4/seed2"
    assert option(stage2, "TRAINER.PLOTPP.MODEL_UPD") == "joint"
    assert option(stage2, "TRAINER.PLOTPP.TRADE_OFF") == "False"
    assert option(stage2, "TRAINER.PLOTPP.PRETRAIN_DIR") == (
        f"{stage1_dir}/prompt_learner/model.pth.tar-50"
    )
    joint = dry_lines(repo_root, "plotpp/main_joint.sh", ["dtd", 2], tmp_path)
    assert len(joint) == 15 and all(option(line, "TRAINER.PLOTPP.M") == "2" for line in joint)
    vision = dry_lines(repo_root, "plotpp/main_visiononly.sh", ["dtd", 2], tmp_path)
    assert [option(line, "--seed") for line in vision] == ["1"] * 5


def test_plotpp_joint_needs_stage_one(repo_root, tmp_path):
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "STAGE": "joint"}
    result = run_script(repo_root, "plotpp/fewshot.sh", ["dtd", 1, 1], env, tmp_path)
    assert result.returncode == 2 and "run stage 1 first" in result.stderr


def accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "results.json").read_text())["results"]["test"]["accuracy"]


def eval_only(repo_root, fast_python, benchmark_root, run_dir, out, trainer, cfg, opts):
    command = [fast_python, str(repo_root / "train.py"), "--root", str(benchmark_root),
               "--trainer", trainer, "--eval-only", "--model-dir", str(run_dir),
               "--load-epoch", "1", "--output-dir", str(out),
               "--dataset-config-file", str(repo_root / "configs/datasets/eurosat.yaml"),
               "--config-file", str(repo_root / f"configs/trainers/{trainer}/{cfg}.yaml"),
               "DATASET.NUM_SHOTS", "1", *opts]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Loading weights to prompt_learner" in result.stdout
    return accuracy(out)


def test_plot_end_to_end_and_reload(repo_root, benchmark_root, fast_python, tmp_path):
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    result = run_script(repo_root, "plot/fewshot.sh", ["eurosat", 1, 1, *TINY_RN], env, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    run_dir = tmp_path / "eurosat/PLOT/rn50_1shots/N4/seed1"
    assert (run_dir / "prompt_learner/model.pth.tar-1").is_file()
    reloaded = eval_only(repo_root, fast_python, benchmark_root, run_dir, tmp_path / "eval",
                         "PLOT", "rn50", [*TINY_RN, "TRAINER.PLOT.N", "4"])  # fmt: skip
    assert reloaded == accuracy(run_dir)
    (run,) = [run for run in collect_runs(str(tmp_path)) if run.protocol == "fewshot"]
    assert (run.method, run.variant, variant_display(run.variant)) == ("PLOT", "N4", "N=4")


def test_plotpp_end_to_end_and_reload(repo_root, benchmark_root, fast_python, tmp_path):
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path),
           "M": "2"}  # fmt: skip
    result = run_script(repo_root, "plotpp/fewshot.sh", ["eurosat", 1, 2, *TINY_VIT], env, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Successfully loaded pretrained weights" in result.stdout  # stage 2 from stage 1
    stage1 = tmp_path / "eurosat/PLOTPP/vit_1shots/vision_M2/seed1"
    stage2 = tmp_path / "eurosat/PLOTPP/vit_1shots/joint_M2/seed2"
    assert 0 <= accuracy(stage1) <= 100
    reloaded = eval_only(repo_root, fast_python, benchmark_root, stage2, tmp_path / "eval",
                         "PLOTPP", "vit", [*TINY_VIT, "TRAINER.PLOTPP.M", "2"])  # fmt: skip
    assert reloaded == accuracy(stage2)
    runs = [run for run in collect_runs(str(tmp_path)) if run.protocol == "fewshot"]
    assert sorted((run.method, variant_display(run.variant)) for run in runs) == [
        ("PLOT++", "M=2"), ("PLOT++ (stage 1)", "M=2")]  # fmt: skip


@pytest.mark.parametrize(
    "trainer, cfg, opts, needle",
    [
        ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx", ["MODEL.BACKBONE.NAME", "tiny-rn"],
         "TRAINER MaPLe needs a ViT image tower but tiny-rn has a ResNet one"),
        ("PLOTPP", "PLOTPP/vit", ["MODEL.BACKBONE.NAME", "tiny-rn"],
         "TRAINER PLOTPP needs a ViT image tower"),
        ("PLOT", "PLOT/rn50", ["MODEL.BACKBONE.NAME", "tiny", "TRAINER.PLOT.LOCAL_FEATURES",
                               "attnpool"], "attnpool needs a ResNet image tower"),
        ("PLOT", "PLOT/rn50", ["MODEL.BACKBONE.NAME", "tiny-rn", "TRAINER.PLOT.CTX_INIT", "a_b"],
         "TRAINER.PLOT.CTX_INIT must be ''"),
    ],
)  # fmt: skip
def test_wrong_tower_or_setting_is_one_line(
    repo_root, benchmark_root, fast_python, tmp_path, trainer, cfg, opts, needle
):
    command = [fast_python, str(repo_root / "train.py"), "--root", str(benchmark_root),
               "--trainer", trainer, "--output-dir", str(tmp_path / "out"),
               "--dataset-config-file", str(repo_root / "configs/datasets/eurosat.yaml"),
               "--config-file", str(repo_root / f"configs/trainers/{cfg}.yaml"),
               "DATALOADER.NUM_WORKERS", "0", *opts]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and needle in errors[0], result.stderr


def test_plotpp_loops_take_dry_run_anywhere(repo_root, tmp_path):
    """Like every other script, a leading --dry-run is a flag, not DATASET."""
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out",
           "SHOTS_LIST": "1", "SEEDS": "2"}  # fmt: skip
    for script, seed in (("plotpp/main_joint.sh", "2"), ("plotpp/main_visiononly.sh", "1")):
        result = run_script(repo_root, script, ["--dry-run", "dtd", 3], env, tmp_path)
        assert result.returncode == 0, result.stderr
        (line,) = [shlex.split(x) for x in result.stdout.strip().splitlines()]
        assert option(line, "TRAINER.PLOTPP.M") == "3" and option(line, "--seed") == seed
    result = run_script(repo_root, "plotpp/main_visiononly.sh", ["dtd", "--dry-run"], env, tmp_path)
    assert result.returncode == 2 and "usage: main_visiononly.sh DATASET M" in result.stderr
