"""`measure_learning` (the readings study's gradient shares and h / E norms): what it
reports follows from the initialisation, and measuring changes nothing in the model."""

from __future__ import annotations

import pytest
import torch

from ammpl.trainers.ammpl.diagnostics import measure_learning
from tests.test_ammpl_trainer import GEN, TINY, args, make_trainer

SHOTS = ["DATASET.NUM_SHOTS", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "2"]


def zero_shot_argv(repo_root, benchmark_root, tmp_path) -> list[str]:
    """`train.py` arguments of a zero-shot run on the fixture, for the bench tools."""
    return [
        "--root", str(benchmark_root), "--seed", "1", "--trainer", "ZeroshotCLIP",
        "--dataset-config-file", str(repo_root / "configs/datasets/caltech101.yaml"),
        "--config-file", str(repo_root / "configs/trainers/CoOp/vit_b16.yaml"),
        "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip


def trainer_with(repo_root, benchmark_root, tmp_path, *opts: str):
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + TINY + SHOTS + list(opts)
    return make_trainer(argv)


def test_zero_init_starts_with_no_shift_and_no_class_fill(repo_root, benchmark_root, tmp_path):
    trainer = trainer_with(
        repo_root, benchmark_root, tmp_path, "TRAINER.AMMPL.INTERACT_INIT", "zero"
    )
    before = {n: p.detach().clone() for n, p in trainer.model.prompt_learner.named_parameters()}
    result = measure_learning(trainer, batches=2)
    assert result["batches"] == 2
    assert result["h_norm"] == 0.0 and result["E_norm"] == 0.0
    # the output layers still get a gradient, so the networks can leave zero
    assert set(result["grad"]) == {"ctx", "P", "pad", "f_I", "f_T"}
    assert all(value > 0 for value in result["grad"].values())
    assert 0 < result["ctx_grad_share"] < 1
    assert result["pad_norm"] == pytest.approx(
        trainer.model.prompt_learner.pad.detach().flatten().norm().item()
    )
    for name, param in trainer.model.prompt_learner.named_parameters():
        assert torch.equal(param.detach(), before[name]), name
        assert param.grad is None, name


def test_default_init_shifts_the_context_and_fills_by_class(repo_root, benchmark_root, tmp_path):
    result = measure_learning(trainer_with(repo_root, benchmark_root, tmp_path), batches=1)
    assert result["h_norm"] > 0 and result["E_norm"] > 0


def test_without_mask_and_interaction_all_gradient_is_the_context(
    repo_root, benchmark_root, tmp_path
):
    off = ["TRAINER.AMMPL.MASK", "False", "TRAINER.AMMPL.PAD", "False"]
    off += ["TRAINER.AMMPL.INTERACT", "False"]
    result = measure_learning(trainer_with(repo_root, benchmark_root, tmp_path, *off), 1)
    assert set(result["grad"]) == {"ctx"} and result["ctx_grad_share"] == 1.0
    assert result["h_norm"] is None and result["E_norm"] is None and result["pad_norm"] is None


def test_bench_script_prints_one_json_line(repo_root, benchmark_root, tmp_path, capsys):
    import json
    import runpy

    bench = runpy.run_path(str(repo_root / "bench/ammpl_readings.py"), run_name="bench")
    argv = args(repo_root, benchmark_root, tmp_path, GEN) + ["--batches", "1", "--json"]
    assert bench["main"](argv + TINY + SHOTS) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model_dir"] == "step 0" and result["batches"] == 1
    assert not (tmp_path / "log.txt").exists()  # the run folder is a scratch one


def test_linear_probe_ceiling_prints_zero_shot_and_each_probe(
    repo_root, benchmark_root, tmp_path, capsys
):
    import runpy

    bench = runpy.run_path(str(repo_root / "bench/linear_probe_ceiling.py"), run_name="bench")
    argv = zero_shot_argv(repo_root, benchmark_root, tmp_path) + ["--weight-decay", "0,0.01"]
    assert bench["main"](argv + TINY + ["DATASET.NUM_SHOTS", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-4].endswith("classes") and lines[-3].startswith("zero-shot: ")
    probes = [line for line in lines[-2:] if line.startswith("linear probe, weight decay")]
    assert len(probes) == 2
    # two images per class and no decay: the probe fits its training images
    assert probes[0].split("train ")[1].startswith("100.00")
    assert not (tmp_path / "out").exists()


def test_patch_mask_robustness_keeps_zero_shot_at_share_0_and_blinds_at_share_1(
    repo_root, benchmark_root, tmp_path, capsys
):
    import runpy

    bench = runpy.run_path(str(repo_root / "bench/patch_mask_robustness.py"), run_name="bench")
    argv = zero_shot_argv(repo_root, benchmark_root, tmp_path)
    assert bench["main"](argv + ["--shares", "0,1"] + TINY) == 0
    probe = runpy.run_path(str(repo_root / "bench/linear_probe_ceiling.py"), run_name="bench")
    assert probe["main"](argv + ["--weight-decay", "0"] + TINY) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    zero_shot = next(line for line in lines if line.startswith("zero-shot: ")).split()[-1]
    share_0, share_1 = (line for line in lines if line.startswith("patches hidden"))
    assert share_0 == f"patches hidden 0.00: zero-shot {zero_shot}"  # nothing hidden: zero-shot
    # every patch hidden under the mean pixel: every image is the same one, so one class is
    # predicted for all, and the fixture's test split has as many images of every class
    header = next(line for line in lines if line.endswith("fill mean")).split()
    images, classes = int(header[0]), int(header[3])
    assert images % classes == 0
    assert share_1 == f"patches hidden 1.00: zero-shot {100 / classes:.2f}"
    assert not (tmp_path / "out").exists()


def test_patch_mask_robustness_noise_fill_is_drawn_from_the_mask_seed(
    repo_root, benchmark_root, tmp_path, capsys
):
    import runpy

    bench = runpy.run_path(str(repo_root / "bench/patch_mask_robustness.py"), run_name="bench")
    argv = zero_shot_argv(repo_root, benchmark_root, tmp_path) + ["--fill", "noise"]
    for seed in ("3", "3"):
        assert bench["main"](argv + ["--shares", "0.5", "--mask-seed", seed] + TINY) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.endswith("fill noise") for line in lines)
    first, second = (line for line in lines if line.startswith("patches hidden 0.50"))
    assert first == second  # the same seed hides the same patches under the same noise


def test_object_variants_redraw_mini_objects_with_one_option_changed(repo_root, tmp_path):
    import runpy

    import numpy as np
    from PIL import Image, ImageOps

    bench = runpy.run_path(str(repo_root / "bench/mini_object_variants.py"), run_name="bench")
    assert bench["main"]([str(tmp_path), "shipped", "invert", "single"]) == 0
    shipped, inverted, single = (
        tmp_path / name / "mini_objects" for name in ("shipped", "invert", "single")
    )
    image = "images/star/0010.png"
    assert (shipped / "split_zhou_MiniObjects.json").is_file()
    expected = np.asarray(ImageOps.invert(Image.open(shipped / image).convert("RGB")))
    assert np.array_equal(np.asarray(Image.open(inverted / image)), expected)
    assert (inverted / "masks/star/0010.png").read_bytes() == (
        shipped / "masks/star/0010.png"
    ).read_bytes()
    assert (single / image).read_bytes() != (shipped / image).read_bytes()
