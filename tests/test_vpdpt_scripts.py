"""VP and DPT end to end: their few-shot scripts (command lines, the DPT script values and
ImageNet rule, run_all), training + evaluation on fixture data, `--eval-only` reloading what
was saved, DPT checkpoints across label spaces, and the one-line config errors of the CLI."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ammpl.engine import (
    build_trainer,
    get_cfg_default,
    merge_from_file,
    merge_from_list,
    set_random_seed,
)
from ammpl.results.collect import collect_runs
from ammpl.results.plots import fewshot_panels
from ammpl.results.tables import fewshot_table
from ammpl.trainers.param_counts import DPT_SCRIPT_OPTS
from tests.test_baselines_scripts import run_script
from tests.test_results_tables import run

TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]
METHODS = {"vp": ("VP", "prompter"), "dpt": ("DPT", "prompt_learner")}


def dry_run(repo_root: Path, tmp_path: Path, script: str, args: list) -> list[list[str]]:
    env = {"DATA": str(tmp_path), "PYTHON": sys.executable, "OUTPUT_ROOT": "out",
           "DATASETS": "eurosat", "SEEDS": "1", "SHOTS_LIST": "2"}  # fmt: skip
    result = run_script(repo_root, script, [*args, "--dry-run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def test_command_lines(repo_root, tmp_path):
    (vp,) = dry_run(repo_root, tmp_path, "vp/fewshot.sh", ["eurosat", 4, 1])
    assert vp[vp.index("--trainer") + 1] == "VP"
    assert vp[vp.index("--config-file") + 1].endswith("configs/trainers/VP/vit_b16.yaml")
    assert vp[vp.index("--output-dir") + 1] == "out/eurosat/VP/vit_b16_4shots/seed1"
    assert vp[-2:] == ["DATASET.NUM_SHOTS", "4"]

    (dpt,) = dry_run(repo_root, tmp_path, "dpt/fewshot.sh", ["eurosat", 4, 1, "TRAINER.DPT.C", "5"])
    assert dpt[dpt.index("--output-dir") + 1] == "out/eurosat/DPT/vit_b16_4shots/seed1"
    tail = ["DATASET.NUM_SHOTS", "4", *DPT_SCRIPT_OPTS, "TRAINER.DPT.C", "5"]
    assert dpt[-len(tail) :] == tail  # the script values, then the caller's (which win)
    (imagenet,) = dry_run(repo_root, tmp_path, "dpt/fewshot.sh", ["imagenet", 1, 2])
    assert imagenet[-2:] == ["OPTIM.WARMUP_EPOCH", "1"]

    for folder, trainer in (("vp", "VP"), ("dpt", "DPT")):
        (line,) = dry_run(repo_root, tmp_path, "run_all.sh", ["fewshot", folder])
        assert line[line.index("--output-dir") + 1] == f"out/eurosat/{trainer}/vit_b16_2shots/seed1"
    bad = run_script(
        repo_root, "run_all.sh", ["base2new", "dpt"], {"DATA": str(tmp_path)}, tmp_path
    )
    assert bad.returncode == 2
    line = bad.stderr.strip()
    assert line.startswith("error: no base2new runs for METHOD 'dpt'; base2new methods: ammpl ")
    assert not {"dpt", "vp"} & set(line.split("base2new methods: ")[1].split())


def accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "results.json").read_text())["results"]["test"]["accuracy"]


@pytest.mark.parametrize("folder", sorted(METHODS))
def test_train_then_eval_only_reloads(repo_root, benchmark_root, fast_python, tmp_path, folder):
    trainer, model_name = METHODS[folder]
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    result = run_script(repo_root, f"{folder}/fewshot.sh", ["eurosat", 1, 1, *TINY], env, tmp_path)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr}"
    run_dir = tmp_path / "eurosat" / trainer / "vit_b16_1shots" / "seed1"
    trained = accuracy(run_dir)
    assert (run_dir / model_name / "model.pth.tar-1").is_file()
    (collected,) = collect_runs(str(tmp_path), warn=pytest.fail)
    assert (collected.method, collected.protocol, collected.shots) == (trainer, "fewshot", 1)
    table = fewshot_table([collected], seeds=(1,))
    assert table.rows[0][:2] == [trainer, "1"] and table.header[2] == "EuroSAT"

    config = repo_root / "configs" / "trainers" / trainer / "vit_b16.yaml"
    command = [
        fast_python, str(repo_root / "train.py"), "--root", str(benchmark_root),
        "--trainer", trainer, "--config-file", str(config),
        "--dataset-config-file", str(repo_root / "configs" / "datasets" / "eurosat.yaml"),
        "--output-dir", str(tmp_path / "eval"), "--model-dir", str(run_dir),
        "--load-epoch", "1", "--eval-only", "--seed", "1", *TINY, "DATASET.NUM_SHOTS", "1",
    ]  # fmt: skip
    if folder == "dpt":
        command += list(DPT_SCRIPT_OPTS) + TINY
    evaluated = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "model.pth.tar-1" in evaluated.stdout
    assert accuracy(tmp_path / "eval") == trained


def test_cli_bad_input_is_one_line(repo_root, benchmark_root, fast_python, tmp_path):
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    for folder, opts, message in (
        ("vp", ["TRAINER.VP.PROMPT_SIZE", "200"],
         "error: TRAINER.VP.PROMPT_SIZE 200 does not fit INPUT.SIZE (224, 224): "
         "use 1 ≤ PROMPT_SIZE ≤ 112"),
        ("dpt", ["TRAINER.DPT.CPN", "0"],
         "error: TRAINER.DPT.CPN must be ≥ 1 (class-aware prompts per image; CPN ≥ K uses "
         "all K classes), got 0"),
    ):  # fmt: skip
        result = run_script(
            repo_root, f"{folder}/fewshot.sh", ["eurosat", 1, 1, *TINY, *opts], env, tmp_path
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == message


def build_dpt(repo_root: Path, data_root: Path, out: Path, subsample: str, seed: int):
    import ammpl.data.datasets  # noqa: F401
    import ammpl.trainers  # noqa: F401

    cfg = get_cfg_default()
    merge_from_file(cfg, repo_root / "configs" / "trainers" / "DPT" / "vit_b16.yaml")
    merge_from_list(cfg, [
        *DPT_SCRIPT_OPTS, "TRAINER.NAME", "DPT", "DATASET.NAME", "Caltech101",
        "DATASET.ROOT", str(data_root), "DATASET.NUM_SHOTS", "2",
        "DATASET.SUBSAMPLE_CLASSES", subsample, "OUTPUT_DIR", str(out),
        "MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TEST.BATCH_SIZE", "4", "USE_CUDA", "False",
        "OPTIM.WARMUP_EPOCH", "0", "TRAINER.DPT.TEXT_WARMUP_EPOCH", "0",  # steps that show
    ])  # fmt: skip
    cfg.freeze()
    set_random_seed(seed)
    return build_trainer(cfg)


def trainables(trainer) -> dict[str, torch.Tensor]:
    return {
        f"{name}/{key}": p.detach().clone()
        for name, module in trainer._models.items()
        for key, p in module.named_parameters()
        if p.requires_grad
    }


def test_dpt_checkpoints_move_to_new_classes(repo_root, benchmark_root, tmp_path):
    """Three folders with the reference names; base → new loads everything but the
    class-count dependent aux classifiers (kept fresh); same classes → same predictions."""
    base = build_dpt(repo_root, benchmark_root, tmp_path / "base", "base", seed=1)
    assert base.get_model_names() == [
        "image_encoder.transformer.ctx_learner", "image_encoder.transformer.extractor",
        "prompt_learner"]  # fmt: skip
    before = trainables(base)
    base.set_model_mode("train")
    base.epoch, base.batch_idx, base.num_batches = 0, 0, 2
    base.forward_backward(next(iter(base.train_loader_x)))
    trained = trainables(base)
    unchanged = [k for k in trained if torch.equal(before[k], trained[k])]
    assert unchanged == [], unchanged
    base.save_model(0, str(tmp_path / "base"))

    new = build_dpt(repo_root, benchmark_root, tmp_path / "new", "new", seed=2)
    fresh = trainables(new)
    new.load_model(str(tmp_path / "base"), epoch=1)
    for key, value in trainables(new).items():
        expected = fresh[key] if "classfiers" in key else trained[key]
        assert torch.equal(value, expected), key

    again = build_dpt(repo_root, benchmark_root, tmp_path / "again", "base", seed=3)
    again.load_model(str(tmp_path / "base"), epoch=1)
    base.set_model_mode("eval")
    again.set_model_mode("eval")
    image = next(iter(base.test_loader))["img"]
    assert torch.equal(again.model_inference(image), base.model_inference(image))


def test_figure_2_curves_know_vp_and_dpt():
    """Few-shot tables and plots order the Figure 2 methods with VP and DPT before AMMPL."""
    runs = [run("ZeroshotCLIP", "eurosat", accuracy=48.0)]
    for trainer in ("AMMPL", "DPT", "MaPLe", "VP"):
        runs += [run(trainer, "eurosat", s, 60.0 + k, shots=k) for s in (1, 2, 3) for k in (1, 2)]
    panels, _ = fewshot_panels(runs)
    assert [c.label for c in panels[0].curves] == ["MaPLe", "VP", "DPT", "AMMPL"]
    rows = [row[:2] for row in fewshot_table(runs).rows]
    assert rows[1:5] == [["MaPLe", "1"], ["MaPLe", "2"], ["VP", "1"], ["VP", "2"]]
    assert rows[5:] == [["DPT", "1"], ["DPT", "2"], ["AMMPL", "1"], ["AMMPL", "2"]]
