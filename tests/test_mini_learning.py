"""On the mini benchmark the committed `mini` CLIP is a real zero-shot classifier, and the
prompt-learning methods improve on it: the tests that catch "it runs but does not learn".

MiniColors, seed 1, base classes (6 of 12). Each method runs its shipped mini config
(configs/trainers/<M>/mini.yaml) unchanged, 16 shots; the margin over zero-shot is
stated in LEARNING_MARGIN. The zero-shot figure is docs/MINI.md's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ammpl.cli.train import main
from ammpl.clip import load_backbone
from ammpl.mini.model import MINI_WEIGHTS_FILE, MINI_WEIGHTS_HASH

# Zero-shot accuracy (%) of the committed weights on the MiniColors test split (all 12
# classes, "a photo of a {}."), as stated in docs/MINI.md, and the tolerance for other
# torch versions / CPUs.
ZERO_SHOT_ALL = 28.47  # weights 57c01eddafe10273 (32.29 with 40e2fe9e09b7a2c6)
ZERO_SHOT_MARGIN = 2.0
LEARNING_MARGIN = 5.0  # points above zero-shot on the base classes
SHOTS = "16"
TRAINERS = (
    "CoOp", "CoCoOp", "IVLP", "MaPLe", "AMMPL",
    "KgCoOp", "PromptSRC", "PLOTPP",
    "ProGrad", "TCP",
)  # fmt: skip
TRAINERS += ("MMA", "CoPrompt")
# The visual-prompt methods fell below zero-shot with the round-3 weights (VPT 50.0 %, DPT
# 51.4 %, VP 31.3 % with the round-2 ones, against 57.6 %): the tower could not name images
# it had not seen edited. The round-4 weights were pretrained hiding patches, and they now
# gain the most (VPT 98.6 %, DPT 97.9 %, VP 91.0 % against 53.5 %; docs/MINI.md,
# "Masked patches").
TRAINERS += ("VPT", "DPT", "VP")
# ProGrad keeps the prompt's gradient from opposing zero-shot CLIP's; here it stays at
# zero-shot (53.47 % with the round-4 weights; +0.7 with round 3's), so its test is "not
# below zero-shot" (1 point of tolerance for other CPUs).
MARGINS = {"ProGrad": -1.0}
# PLOT: its own local features need a ResNet tower, and `mini` has only a ViT one.


def run(
    repo_root: Path, root: Path, out: Path, trainer: str, *extra: str, dataset: str = "mini_colors"
) -> float:
    method = "CoOp" if trainer == "ZeroshotCLIP" else trainer
    code = main(
        [
            "--root", str(root),
            "--seed", "1",
            "--trainer", trainer,
            "--dataset-config-file", str(repo_root / f"configs/datasets/{dataset}.yaml"),
            "--config-file", str(repo_root / f"configs/trainers/{method}/mini.yaml"),
            "--output-dir", str(out),
            *extra,
        ]
    )  # fmt: skip
    assert code == 0
    return json.loads((out / "results.json").read_text())["results"]["test"]["accuracy"]


def test_committed_weights_load_through_the_registry_with_their_hash():
    model = load_backbone("mini")
    assert model.ammpl_source == f"bundled:{MINI_WEIGHTS_FILE}"
    assert model.ammpl_weights_hash == MINI_WEIGHTS_HASH
    assert model.visual.image_size == (64, 64) or model.visual.image_size == 64
    assert MINI_WEIGHTS_FILE.stat().st_size <= 8 * 1024 * 1024


def test_a_damaged_bundled_file_is_refused(tmp_path, monkeypatch):
    from ammpl.clip import backbones
    from ammpl.utils import BackboneError

    copy = tmp_path / "mini_clip.pt"
    data = bytearray(MINI_WEIGHTS_FILE.read_bytes())
    data[-1000] ^= 0xFF  # one flipped byte in the last MiB, which the hash covers
    copy.write_bytes(bytes(data))
    spec = backbones.get_backbone_spec("mini")
    sources = type(spec.weights)(display_name="mini", bundled=str(copy))
    monkeypatch.setitem(
        backbones.BACKBONE_REGISTRY, "mini", type(spec)(**{**spec.__dict__, "weights": sources})
    )
    with pytest.raises(BackboneError, match="not the recorded"):
        load_backbone("mini")


def coprompt_descriptions(mini_root: Path, tmp_path: Path) -> tuple[str, str]:
    """CoPrompt's class descriptions for MiniColors, written by the test (the user supplies
    them; none ship): a few plain sentences per class."""
    names = [line.split(" ", 1)[1] for line in
             (mini_root / "mini_colors" / "classnames.txt").read_text().splitlines()]  # fmt: skip
    table = {
        name: [f"a photo of a {name}.", f"a picture showing a {name}.", f"an image of a {name}."]
        for name in (n.replace("_", " ") for n in names)
    }
    folder = tmp_path / "gpt_file"
    folder.mkdir()
    (folder / "minicolors_prompt.json").write_text(json.dumps(table))
    return "TRAINER.CoPrompt.DESCRIPTIONS", str(folder)


@pytest.fixture(scope="module")
def zero_shot_base(repo_root, mini_root, tmp_path_factory) -> float:
    out = tmp_path_factory.mktemp("zs_base")
    return run(repo_root, mini_root, out, "ZeroshotCLIP", "--eval-only",
               "DATASET.NUM_SHOTS", SHOTS, "DATASET.SUBSAMPLE_CLASSES", "base")  # fmt: skip


def test_zero_shot_accuracy_is_the_stated_one(repo_root, mini_root, tmp_path):
    accuracy = run(repo_root, mini_root, tmp_path, "ZeroshotCLIP", "--eval-only")
    assert abs(accuracy - ZERO_SHOT_ALL) <= ZERO_SHOT_MARGIN, accuracy
    assert accuracy >= 3 * 100 / 12  # the 3 × chance aim (docs/MINI.md: 3.4 ×)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_method_beats_zero_shot_on_base_classes(
    trainer, repo_root, mini_root, tmp_path, zero_shot_base
):
    extra = coprompt_descriptions(mini_root, tmp_path) if trainer == "CoPrompt" else ()
    accuracy = run(repo_root, mini_root, tmp_path, trainer, "DATASET.NUM_SHOTS", SHOTS,
                   "DATASET.SUBSAMPLE_CLASSES", "base", *extra)  # fmt: skip
    margin = MARGINS.get(trainer, LEARNING_MARGIN)
    assert accuracy >= zero_shot_base + margin, (trainer, accuracy, zero_shot_base)


# Issue 17's probe targets, and what the committed weights give on the fixed 48-per-value
# probe (docs/MINI.md, "Pretraining"); PROBE_MARGIN allows for other torch versions / CPUs.
PROBE_TARGETS = {"colour": 90.0, "pattern": 60.0, "background": 90.0, "shape": 60.0}
PROBE_STATED = {"colour": 98.1, "pattern": 80.7, "background": 100.0, "shape": 63.5}
PROBE_MARGIN = 2.0


def test_committed_weights_meet_the_probe_targets():
    from ammpl.mini.probe import factor_accuracies

    results = factor_accuracies(load_backbone("mini").eval(), per_value=48)
    for factor, target in PROBE_TARGETS.items():
        accuracy = results[factor][0]
        assert abs(accuracy - PROBE_STATED[factor]) <= PROBE_MARGIN, (factor, accuracy)
        assert accuracy >= target, (factor, accuracy)


def test_probe_shows_what_the_committed_model_knows(capsys):
    from ammpl.mini.probe import main as probe_main

    assert probe_main([]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert float(lines["colour"].split()[0]) >= 80  # docs/MINI.md: 98.1 % (48 per value)
    assert float(lines["background"].split()[0]) >= 80  # docs/MINI.md: 100 %
    # the shapes one by one, and which of them count as known (≥ 60 %: issue 17's fallback)
    by_shape = dict(item.rsplit(" ", 1) for item in lines["by"].removeprefix("shape").split(","))
    assert len(by_shape) == 12
    known = [shape.strip() for shape, value in by_shape.items() if float(value) >= 60]
    assert lines["shapes"].startswith(f"named ≥ 60 %: {len(known)} ")


@pytest.fixture(scope="module")
def object_root(tmp_path_factory) -> Path:
    from ammpl.mini.benchmark import build_benchmark

    root = tmp_path_factory.mktemp("mini_objects")
    build_benchmark(str(root), ["MiniObjects", "MiniObjectPatterns"], log=lambda _: None)
    return root


@pytest.mark.parametrize(
    ("folder", "classes", "stated"),
    [("mini_objects", 12, 35.42), ("mini_objectpatterns", 48, 18.32)],
)
def test_object_datasets_zero_shot_is_three_times_chance(
    repo_root, object_root, tmp_path, folder, classes, stated
):
    """The committed weights name the objects of the benchmark's object datasets at ≥ 3 ×
    chance (docs/MINI.md, "Object datasets": 4.3 × and 8.8 ×)."""
    code = main(
        [
            "--root", str(object_root),
            "--trainer", "ZeroshotCLIP",
            "--dataset-config-file", str(repo_root / f"configs/datasets/{folder}.yaml"),
            "--config-file", str(repo_root / "configs/trainers/CoOp/mini.yaml"),
            "--output-dir", str(tmp_path),
            "--eval-only",
        ]
    )  # fmt: skip
    assert code == 0
    accuracy = json.loads((tmp_path / "results.json").read_text())["results"]["test"]["accuracy"]
    assert abs(accuracy - stated) <= ZERO_SHOT_MARGIN, accuracy
    assert accuracy >= 3 * 100 / classes


def test_ammpl_and_coop_beat_zero_shot_on_the_object_datasets(repo_root, object_root, tmp_path):
    """AMMPL hides patches of every training image; the committed weights were pretrained to
    name such images (`--patch-mask`), so on MiniObjects' base classes AMMPL ends above
    zero-shot (docs/MINI.md, "Masked patches": 47.92 against 42.36 at seed 1, every seed
    above; the round-3 weights, which had never seen a hidden patch: 20.83 against 37.50).
    CoOp gains on MiniObjectPatterns' (29.86 against 24.31 at seed 1; 31.25 and 31.77 at
    seeds 2 and 3). MaPLe is not asked: at its mini budget it stays near zero-shot on the
    base classes (25.00 / 24.48 / 28.99 on MiniObjectPatterns)."""
    base = ("DATASET.NUM_SHOTS", SHOTS, "DATASET.SUBSAMPLE_CLASSES", "base")
    for trainer, dataset in (("AMMPL", "mini_objects"), ("CoOp", "mini_objectpatterns")):
        zero_shot = run(repo_root, object_root, tmp_path / f"zs_{dataset}", "ZeroshotCLIP",
                        "--eval-only", *base, dataset=dataset)  # fmt: skip
        accuracy = run(repo_root, object_root, tmp_path / trainer, trainer, *base,
                       dataset=dataset)  # fmt: skip
        assert accuracy >= zero_shot + 2.0, (trainer, dataset, accuracy, zero_shot)
