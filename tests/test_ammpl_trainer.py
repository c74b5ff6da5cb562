"""The registered AMMPL trainer on fixture data: training, checkpoints, loading, mask pictures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ammpl.cli.train import build_parser
from ammpl.cli.train import main as train_main
from ammpl.cli.viz import main as viz_main
from ammpl.engine import build_trainer, set_random_seed
from ammpl.engine.config import get_cfg_default, merge_from_file, setup_cfg
from ammpl.trainers.ammpl.viz import shade

TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0"]
CSC = "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc.yaml"
GEN = "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml"


def args(repo_root: Path, root: Path, out: Path, config: str, seed: int = 1) -> list[str]:
    return [
        "--root", str(root),
        "--seed", str(seed),
        "--trainer", "AMMPL",
        "--dataset-config-file", str(repo_root / "configs/datasets/caltech101.yaml"),
        "--config-file", str(repo_root / config),
        "--output-dir", str(out),
    ]  # fmt: skip


def make_trainer(argv: list[str]):
    cfg = setup_cfg(build_parser().parse_args(argv))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def load_config(path: Path):
    cfg = get_cfg_default()
    merge_from_file(cfg, path)
    return cfg


def test_base_configs_differ_only_in_the_variant(repo_root):
    csc, gen = load_config(repo_root / CSC), load_config(repo_root / GEN)
    assert csc.TRAINER.AMMPL.CLASS_SPECIFIC is True and gen.TRAINER.AMMPL.CLASS_SPECIFIC is False
    csc.TRAINER.AMMPL.CLASS_SPECIFIC = False
    assert csc == gen
    optim = gen.OPTIM
    assert (optim.NAME, optim.LR, optim.MAX_EPOCH, optim.LR_SCHEDULER) == (
        "sgd",
        0.0035,
        5,
        "cosine",
    )
    assert (optim.WARMUP_EPOCH, optim.WARMUP_TYPE, optim.WARMUP_CONS_LR) == (1, "constant", 1e-5)
    assert gen.DATALOADER.TRAIN_X.BATCH_SIZE == 4 and tuple(gen.INPUT.SIZE) == (224, 224)
    node = gen.TRAINER.AMMPL
    assert (node.N_CTX, node.CTX_INIT, node.P_INIT_MEAN, node.PREC) == (
        4,
        "a photo of a",
        0.9,
        "fp16",
    )


@pytest.fixture(scope="module")
def trained_run(repo_root, benchmark_root, tmp_path_factory):
    """Class-specific AMMPL, 2 epochs with every epoch's checkpoint kept."""
    out = tmp_path_factory.mktemp("ammpl_run")
    argv = args(repo_root, benchmark_root, out, CSC) + TINY
    argv += ["OPTIM.MAX_EPOCH", "2", "DATASET.NUM_SHOTS", "2", "TRAIN.CHECKPOINT_FREQ", "1"]
    trainer = make_trainer(argv)
    trainer.train()
    return trainer, out, argv


def test_training_writes_checkpoints_meta_and_a_readable_report(trained_run, capsys):
    trainer, out, _ = trained_run
    folder = out / "prompt_learner"
    assert (folder / "model.pth.tar-1").exists() and (folder / "model.pth.tar-2").exists()
    meta = json.loads((folder / "ammpl_meta.json").read_text())
    assert meta["class_specific"] is True and meta["grid"] == 7 and meta["patch_size"] == 32
    assert meta["classnames"] == trainer.dm.dataset.classnames
    state = torch.load(folder / "model.pth.tar-2", weights_only=False)["state_dict"]
    assert {"ctx", "P", "pad", "f_I.weight1", "f_T.bias2", "token_prefix"} <= set(state)
    trainer.report_parameters()
    report = capsys.readouterr().out
    for group in ("prompt_learner.ctx", "prompt_learner.P", "prompt_learner.pad",
                  "prompt_learner.f_I", "prompt_learner.f_T"):  # fmt: skip
        assert group in report
    record = json.loads((out / "results.json").read_text())
    assert isinstance(record["results"]["test"]["accuracy"], float)


def test_save_load_gives_identical_predictions(trained_run):
    trainer, out, argv = trained_run
    batch = next(iter(trainer.test_loader))
    trainer.set_model_mode("eval")
    expected = trainer.model_inference(batch["img"])

    fresh = make_trainer(
        argv[: argv.index("--seed") + 1] + ["2"] + argv[argv.index("--seed") + 2 :]
    )
    fresh.set_model_mode("eval")
    assert not torch.equal(fresh.model_inference(batch["img"]), expected)  # other seed, other init
    fresh.load_model(str(out), epoch=2)
    fresh.set_model_mode("eval")
    torch.testing.assert_close(fresh.model_inference(batch["img"]), expected, rtol=0, atol=0)


def test_generalisable_model_moves_to_new_classes(repo_root, benchmark_root, tmp_path):
    train_out, test_out = tmp_path / "base", tmp_path / "new"
    common = TINY + ["OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "1"]
    assert train_main(args(repo_root, benchmark_root, train_out, GEN) + common
                      + ["DATASET.SUBSAMPLE_CLASSES", "base"]) == 0  # fmt: skip
    code = train_main(
        args(repo_root, benchmark_root, test_out, GEN)
        + ["--eval-only", "--model-dir", str(train_out), "--load-epoch", "1"]
        + common
        + ["DATASET.SUBSAMPLE_CLASSES", "new"]
    )
    assert code == 0
    log = (test_out / "log.txt").read_text()
    assert "Loading weights to prompt_learner" in log and "* accuracy:" in log


def test_bad_ammpl_option_is_a_one_line_error(repo_root, benchmark_root, tmp_path, capsys):
    code = train_main(
        args(repo_root, benchmark_root, tmp_path / "o", GEN)
        + TINY
        + ["TRAINER.AMMPL.TEST_MASK", "soft"]
    )
    assert code == 2
    assert "TRAINER.AMMPL.TEST_MASK must be one of" in capsys.readouterr().err


def test_ammpl_learns_where_the_backbone_can_see_the_classes(repo_root, benchmark_root, tmp_path):
    """Fixture classes differ by colour, which even the random tiny backbone sees: a few epochs
    of class-specific AMMPL beat zero-shot CLIP on the same backbone by a wide margin."""
    accuracies = {}
    for trainer, config, extra in (
        ("ZeroshotCLIP", "configs/trainers/CoOp/vit_b16.yaml", ["--eval-only"]),
        ("AMMPL", CSC, []),
    ):
        out = tmp_path / trainer
        argv = args(repo_root, benchmark_root, out, config)
        argv[argv.index("AMMPL")] = trainer
        code = train_main(argv + extra + TINY + ["DATASET.NUM_SHOTS", "4", "OPTIM.LR", "0.05"])
        assert code == 0
        accuracies[trainer] = json.loads((out / "results.json").read_text())["results"]["test"][
            "accuracy"
        ]
    assert accuracies["AMMPL"] >= accuracies["ZeroshotCLIP"] + 20, accuracies


def write_image(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.fromarray(np.full((40, 60, 3), colour, dtype=np.uint8)).save(path)
    return path


def test_mask_picture_grid(trained_run, tmp_path, capsys):
    trainer, out, _ = trained_run
    pictures = [write_image(tmp_path / f"{i}.png", (40 * i, 90, 200)) for i in range(2)]
    name = trainer.dm.dataset.classnames[1]
    png = tmp_path / "grid.png"
    code = viz_main(["masks", "--model-dir", str(out), "--images", *map(str, pictures),
                     "--classes", "0", name, "--out", str(png)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with Image.open(png) as grid:
        width, height = grid.size
    assert height > width  # 4 rows (2 images × 2 classes), 2 columns (epochs 1 and 2)

    code = viz_main(["masks", "--model-dir", str(out), "--images", str(pictures[0]),
                     "--epochs", "7", "--out", str(png)])  # fmt: skip
    assert code == 2
    assert "No checkpoint for epoch(s) [7]" in capsys.readouterr().err
    code = viz_main(["masks", "--model-dir", str(tmp_path), "--images", str(pictures[0]),
                     "--out", str(png)])  # fmt: skip
    assert code == 2 and "No AMMPL checkpoints" in capsys.readouterr().err


def test_mask_picture_of_a_run_with_a_corrupt_meta_file_is_a_one_line_error(
    trained_run, tmp_path, capsys
):
    _, out, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(out / "prompt_learner", copy / "prompt_learner")
    (copy / "prompt_learner" / "ammpl_meta.json").write_text("{not json")
    picture = write_image(tmp_path / "a.png", (10, 90, 200))
    code = viz_main(["masks", "--model-dir", str(copy), "--images", str(picture),
                     "--out", str(tmp_path / "grid.png")])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and "ammpl_meta.json" in error and "Traceback" not in error


def test_shading_marks_exactly_the_masked_patches():
    image = np.full((224, 224, 3), 200.0)
    keep = torch.ones(7, 7)
    keep[3, 5] = 0
    shaded = shade(image, keep).astype(float)
    patch = shaded[96:128, 160:192]
    assert (patch != 200).all()
    outside = np.ones((224, 224), bool)
    outside[96:128, 160:192] = False
    assert (shaded[outside] == 200).all()


def test_mask_statistics_per_epoch_in_log_and_results(repo_root, benchmark_root, tmp_path):
    from ammpl.trainers.ammpl.mask_stats import mask_statistics

    out = tmp_path / "run"
    argv = args(repo_root, benchmark_root, out, CSC) + TINY
    argv += ["OPTIM.MAX_EPOCH", "2", "DATASET.NUM_SHOTS", "1", "TEST.NO_TEST", "True"]
    assert train_main(argv) == 0
    log = (out / "log.txt").read_text().splitlines()
    lines = [line for line in log if line.startswith("AMMPL mask epoch")]
    assert [line.split("]")[0] for line in lines] == [
        "AMMPL mask epoch [1/2",
        "AMMPL mask epoch [2/2",
    ]
    epochs = json.loads((out / "results.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for entry in epochs:
        mask = entry["mask"]
        assert 0 < mask["train_masked"] < 1  # P ~ N(0.9, 0.05²): about 10 % masked
        assert mask["keep_mean_min"] <= mask["keep_mean"] <= mask["keep_mean_max"]
        assert mask["train_masked_min"] <= mask["train_masked"] <= mask["train_masked_max"]
    state = torch.load(out / "prompt_learner" / "model.pth.tar-2", weights_only=False)
    expected = mask_statistics(state["state_dict"]["P"], None)
    last = epochs[-1]["mask"]
    for key, value in expected.items():
        if not key.startswith("train_masked"):
            assert last[key] == pytest.approx(value, abs=1e-6), key


def test_zeroinit_config_is_the_generalisable_config_with_zero_init(repo_root):
    zero = load_config(
        repo_root / "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_zeroinit.yaml"
    )
    gen = load_config(repo_root / GEN)
    assert zero.TRAINER.AMMPL.INTERACT_INIT == "zero"
    assert gen.TRAINER.AMMPL.INTERACT_INIT == "default"  # the paper-literal default stays
    zero.TRAINER.AMMPL.INTERACT_INIT = "default"
    assert zero == gen
