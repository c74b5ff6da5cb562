"""Issue 17 item 4: do AMMPL's masks fall on background patches? (`ammpl-viz mask-share`)

A hand-made run and object dataset give shares computed by hand; a real 1-epoch AMMPL run on
a tiny MiniObjects build gives shares in [0, 1] whose chance level matches the object masks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ammpl.mini.benchmark as benchmark
from ammpl.cli.train import main as train_main
from ammpl.cli.viz import main as viz_main
from ammpl.engine.checkpoint import save_checkpoint
from ammpl.mini.mask_share import patch_object_fractions
from ammpl.trainers.ammpl.mask_share import masked_background_share, masked_background_shares
from ammpl.utils import CheckpointError, DataError

DATASET, FOLDER = "MiniObjects", "mini_objects"


def write_run(run: Path, P_by_epoch: list[torch.Tensor], classnames: list[str]) -> Path:
    """An AMMPL output folder: one checkpoint per epoch holding P, and the meta file."""
    folder = run / "prompt_learner"
    for epoch, P in enumerate(P_by_epoch, 1):
        save_checkpoint({"state_dict": {"P": P}, "epoch": epoch}, folder)
    meta = {
        "classnames": classnames,
        "class_specific": P_by_epoch[0].dim() == 3,
        "grid": 2,
        "patch_size": 2,
        "image_size": 4,
    }
    (folder / "ammpl_meta.json").write_text(json.dumps(meta))
    return run


def write_dataset(root: Path, objects: dict[str, tuple[str, np.ndarray]]) -> Path:
    """A 4 × 4-pixel MiniObjects folder: test image `name` of class `cls` with object `mask`."""
    folder = root / FOLDER
    test = []
    for label, (name, (cls, mask)) in enumerate(objects.items()):
        for part in ("images", "masks"):
            (folder / part / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "images" / cls / name)
        Image.fromarray(mask.astype(bool)).save(folder / "masks" / cls / name)
        test.append([f"{cls}/{name}", label, cls])
    split = {"train": [], "val": [], "test": test}
    (folder / f"split_zhou_{DATASET}.json").write_text(json.dumps(split))
    return root


def object_at(*pixels: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((4, 4))
    for y, x in pixels:
        mask[y, x] = 1
    return mask


# Image a: one object pixel in patch (0, 0) (a quarter of it). Image b: patch (1, 1) all
# object, patch (1, 0) half object. Patches (row, column) are 2 × 2 pixels.
A = ("a.png", ("circle", object_at((0, 0))))
B = ("b.png", ("square", object_at((2, 1), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3))))


@pytest.fixture
def hand_made(tmp_path):
    """Epoch 1 hides patches (0, 0) and (1, 0) of every image; epoch 2 hides nothing."""
    hides_left_column = torch.tensor([[0.2, 0.9], [0.3, 0.95]])
    run = write_run(
        tmp_path / "run", [hides_left_column, torch.full((2, 2), 0.9)], ["circle", "square"]
    )
    return run, write_dataset(tmp_path / "data", dict([A, B]))


def test_shares_are_those_computed_by_hand(hand_made):
    run, data = hand_made
    first, second = masked_background_shares(run, data, DATASET)
    # "any" rule, background patches: a (0,1) (1,0) (1,1); b (0,0) (0,1).
    # Hidden (0,0) and (1,0) of each image: a's (1,0) and b's (0,0) are background: 2 of 4.
    assert first["masked_outside"] == 0.5
    assert first["chance_outside"] == 5 / 8 and first["ratio"] == pytest.approx(0.8)
    # "half" rule: a quarter of an object is background, half of one is object.
    # Background: all four of a, (0,0) (0,1) of b; hidden ones: a's two, b's (0,0): 3 of 4.
    assert first["masked_outside_half"] == 0.75
    assert first["chance_outside_half"] == 6 / 8 and first["ratio_half"] == pytest.approx(1.0)
    assert (first["images"], first["patches_per_image"], first["masked_per_image"]) == (2, 4, 2)
    assert first["images_without_masked"] == 0
    # Training draws hide each patch with probability 1 − P = (0.8, 0.1, 0.7, 0.05):
    # background weight a 0.1 + 0.7 + 0.05, b 0.8 + 0.1, of 2 × 1.65.
    assert first["expected_outside"] == pytest.approx(1.75 / 3.3)
    assert first["expected_masked_per_image"] == pytest.approx(1.65)
    assert first["keep_mean"] == pytest.approx(0.5875) and first["below_half"] == 0.5
    # Nothing hidden: no share and no ratio, the chance level stays.
    assert second["masked_outside"] is None and second["ratio"] is None
    assert second["masked_per_image"] == 0 and second["images_without_masked"] == 2
    assert second["chance_outside"] == 5 / 8
    assert masked_background_share(run, data, DATASET) == second  # newest epoch by default
    assert masked_background_share(run, data, DATASET, epoch=1) == first
    assert masked_background_share(run, data, DATASET, limit=1)["images"] == 1


def test_a_class_specific_run_meets_each_image_with_its_own_class_mask(tmp_path):
    P = torch.full((2, 2, 2), 0.9)
    P[0, 0, 0] = 0.1  # circle hides (0, 0): a's object
    P[1, 1, 1] = 0.1  # square hides (1, 1): b's object
    run = write_run(tmp_path / "run", [P], ["circle", "square"])
    other = ("c.png", ("star", object_at()))  # a class the run does not know: left out
    data = write_dataset(tmp_path / "data", dict([A, B, other]))
    share = masked_background_share(run, data, DATASET)
    assert share["images"] == 2
    assert share["masked_outside"] == 0.0 and share["ratio"] == 0.0  # swapped masks give 1.0


def test_patch_shares_are_exact_areas_through_the_resize_and_centre_crop():
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=(4, 6)) < 0.4).astype(float)  # wide: resized ×2 to 8 × 12
    framed = np.repeat(np.repeat(mask, 2, 0), 2, 1)[:, 2:10]  # then the centre 8 × 8
    expected = framed.reshape(2, 4, 2, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(patch_object_fractions(mask, 8, 2), expected)


def test_errors_are_one_line(hand_made, tmp_path, capsys, repo_root):
    run, data = hand_made
    colors = repo_root / "configs/datasets/mini_colors.yaml"
    objects = repo_root / "configs/datasets/mini_objects.yaml"
    cases = [
        (run, data, colors, "MiniColors has no object masks"),
        (tmp_path / "nowhere", data, objects, "No AMMPL checkpoints"),
        (run, tmp_path / "empty", objects, "No split_zhou_MiniObjects.json"),
    ]
    for model_dir, root, config, message in cases:
        code = viz_main(["mask-share", "--model-dir", str(model_dir), "--root", str(root),
                         "--dataset-config-file", str(config)])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err

    coop = tmp_path / "coop"
    save_checkpoint({"state_dict": {"ctx": torch.zeros(4, 8)}, "epoch": 1}, coop / "prompt_learner")
    with pytest.raises(CheckpointError, match="the run was not AMMPL"):
        masked_background_share(coop, data, DATASET)
    (data / FOLDER / "masks" / "circle" / "a.png").unlink()
    with pytest.raises(DataError, match="1 of 2 object masks are missing: .*a.png"):
        masked_background_share(run, data, DATASET)
    for part in ("circle", "square"):
        for path in (data / FOLDER / "masks" / part).iterdir():
            path.unlink()
        (data / FOLDER / "masks" / part).rmdir()
    (data / FOLDER / "masks").rmdir()
    with pytest.raises(DataError, match="has no masks/ folder"):
        masked_background_share(run, data, DATASET)


@pytest.fixture(scope="module")
def objects_run(repo_root, tmp_path_factory):
    """A tiny MiniObjects build (one test image per class) and 1 epoch of AMMPL on it."""
    root = tmp_path_factory.mktemp("objects")
    sizes = benchmark.SPLIT_SIZES
    benchmark.SPLIT_SIZES = (("train", 2), ("val", 1), ("test", 1))
    try:
        benchmark.build_benchmark(str(root), [DATASET], log=lambda _: None)
    finally:
        benchmark.SPLIT_SIZES = sizes
    out = root / "run"
    code = train_main([
        "--root", str(root), "--seed", "1", "--trainer", "AMMPL",
        "--dataset-config-file", str(repo_root / "configs/datasets/mini_objects.yaml"),
        "--config-file", str(repo_root / "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml"),
        "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0",
        "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
    ])  # fmt: skip
    assert code == 0
    return root, out


def test_a_trained_run_on_mini_objects(objects_run, repo_root, tmp_path, capsys):
    root, out = objects_run
    share = masked_background_share(out, root, DATASET)
    n_classes = len(benchmark.MINI_DATASETS[DATASET].classes)
    assert (share["epoch"], share["images"], share["patches_per_image"]) == (1, n_classes, 49)
    for key, value in share.items():
        if key.endswith(("outside", "outside_half")) and value is not None:
            assert 0 <= value <= 1, key
    # Chance from the object masks directly: the tiny CLIP's 224-px frame is the 64-px
    # image ×3.5, so a 32-px patch is a 64 × 64 block of the mask repeated 7 times.
    folder = root / FOLDER
    split = json.loads((folder / f"split_zhou_{DATASET}.json").read_text())
    fractions = []
    for relative, _, _ in split["test"]:
        mask = np.asarray(Image.open(folder / "masks" / relative).convert("L")) > 127
        big = np.repeat(np.repeat(mask.astype(float), 7, 0), 7, 1)
        fractions.append(big.reshape(7, 64, 7, 64).mean(axis=(1, 3)))
    fractions = np.stack(fractions)
    assert share["chance_outside"] == pytest.approx(float((fractions == 0).mean()))
    assert share["chance_outside_half"] == pytest.approx(float((fractions < 0.5).mean()))
    assert 0 < share["chance_outside"] < share["chance_outside_half"] < 1

    report = tmp_path / "share.json"
    code = viz_main(["mask-share", "--model-dir", str(out), "--root", str(root),
                     "--dataset-config-file", str(repo_root / "configs/datasets/mini_objects.yaml"),
                     "--json", str(report)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    rows = [line for line in printed.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1 and f"{share['chance_outside']:.1%}" in rows[0]
    assert json.loads(report.read_text()) == [share]
