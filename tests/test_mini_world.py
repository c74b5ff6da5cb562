"""The mini world, the mini CLIP's packed weights format and the mini benchmark's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ammpl.clip.tokenizer import tokenize
from ammpl.data.cli import main as data_main
from ammpl.mini.benchmark import (
    GENERATOR_VERSION,
    MINI_DATASETS,
    SPLIT_SIZES,
    VERSION_FILE,
    MiniDatasetSpec,
    build_benchmark,
    built_version,
)
from ammpl.mini.model import build_mini_clip, pack_state, unpack_state, vocabulary_token_ids
from ammpl.mini.pretrain import encode_text_prefix, pretrain, sample_batch
from ammpl.mini.world import caption, render, sample_scene, vocabulary_words
from ammpl.utils.errors import DataError


def _draw(seed: int) -> tuple[list[bytes], list[str]]:
    rng = np.random.default_rng(seed)
    pixels, captions = [], []
    for _ in range(8):
        scene = sample_scene(rng)
        pixels.append(render(scene, rng).tobytes())
        captions.append(caption(scene, rng))
    return pixels, captions


def test_the_world_is_a_function_of_the_seed():
    assert _draw(3) == _draw(3)
    assert _draw(3) != _draw(4)


def test_captions_use_only_vocabulary_words():
    rng = np.random.default_rng(0)
    words = set(vocabulary_words())
    for _ in range(200):
        text = caption(sample_scene(rng), rng)
        assert set(text.replace(".", " . ").split()) <= words, text


def test_class_names_and_templates_are_inside_the_learned_vocabulary():
    from ammpl.trainers.templates import IMAGENET_TEMPLATES_SELECT

    known = set(vocabulary_token_ids())
    texts = [c.name for spec in MINI_DATASETS.values() for c in spec.classes]
    texts += [t.format("x") for t in IMAGENET_TEMPLATES_SELECT]
    for row, text in zip(tokenize(texts), texts, strict=True):
        ids = {int(i) for i in row if int(i) != 0} - {int(tokenize("x")[0, 1])}
        assert ids <= known, text


def test_packed_state_round_trips_with_zero_rows_outside_the_vocabulary():
    state = build_mini_clip(seed=1).state_dict()
    packed = pack_state(state)
    assert "token_embedding.weight" not in packed
    unpacked = unpack_state(packed)
    assert set(unpacked) == set(state)
    ids = torch.tensor(vocabulary_token_ids())
    embedding = unpacked["token_embedding.weight"]
    assert torch.equal(embedding[ids], state["token_embedding.weight"][ids])
    outside = torch.ones(len(embedding), dtype=torch.bool)
    outside[ids] = False
    assert embedding[outside].abs().sum() == 0
    for key in state:
        if key != "token_embedding.weight":
            assert torch.equal(unpacked[key], state[key]), key
    assert unpack_state(state) is state  # a full state dict passes through


def test_prefix_text_encoding_equals_the_full_context_encoding():
    model = build_mini_clip(seed=2).eval()
    _, texts = sample_batch(np.random.default_rng(0), 6)
    with torch.no_grad():
        full = model.encode_text(texts)
        prefix = encode_text_prefix(model, texts)
    torch.testing.assert_close(prefix, full, atol=1e-5, rtol=1e-5)


def test_a_short_pretraining_run_lowers_the_contrastive_loss():
    torch.set_num_threads(1)
    _, losses = pretrain(steps=30, batch_size=16, lr=2e-3, seed=0, warmup=5, log_every=0)
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.2, (losses[:8], losses[-8:])


def test_benchmark_layout_is_coop_like(mini_root):
    spec = MINI_DATASETS["MiniColors"]
    folder = mini_root / spec.folder
    split = json.loads((folder / spec.split_file).read_text())
    sizes = dict(SPLIT_SIZES)
    for part in ("train", "val", "test"):
        assert len(split[part]) == sizes[part] * len(spec.classes)
    path, label, name = split["test"][0]
    assert (folder / "images" / path).is_file()
    assert spec.classes[label].name == name
    lines = (folder / "classnames.txt").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [c.name for c in spec.classes]


def test_building_again_keeps_the_existing_data(mini_root, capsys):
    assert data_main(["mini", "--root", str(mini_root), "MiniColors"]) == 0
    assert "kept MiniColors" in capsys.readouterr().out


def test_a_folder_from_an_older_generator_is_rebuilt(mini_root, tmp_path, capsys):
    import shutil

    spec = MINI_DATASETS["MiniColors"]
    assert built_version(str(mini_root / spec.folder)) == GENERATOR_VERSION
    old = tmp_path / spec.folder
    shutil.copytree(mini_root / spec.folder, old)
    (old / VERSION_FILE).unlink()  # what a folder built before versions were kept looks like
    (old / "images" / "red_shape" / "0000.png").write_bytes(b"stale")
    assert data_main(["mini", "--root", str(tmp_path), "MiniColors"]) == 0
    assert "rebuilt (older generator) MiniColors" in capsys.readouterr().out
    assert built_version(str(old)) == GENERATOR_VERSION
    rebuilt = (old / "images" / "red_shape" / "0000.png").read_bytes()
    assert rebuilt == (mini_root / spec.folder / "images" / "red_shape" / "0000.png").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == [spec.folder]  # nothing left aside


def test_unknown_mini_dataset_is_a_one_line_error(tmp_path, capsys):
    assert data_main(["mini", "--root", str(tmp_path), "MiniCars"]) == 2
    err = capsys.readouterr().err
    assert "unknown mini dataset 'MiniCars'" in err and len(err.strip().splitlines()) == 1


def test_a_folder_without_split_file_is_not_overwritten(tmp_path):
    (tmp_path / "mini_colors").mkdir()
    with pytest.raises(DataError, match="remove the folder"):
        build_benchmark(str(tmp_path), ["MiniColors"], log=lambda _: None)


def test_every_mini_dataset_has_enough_classes_and_one_has_thirty():
    counts = [len(spec.classes) for spec in MINI_DATASETS.values()]
    assert len(counts) >= 3 and min(counts) >= 10 and max(counts) >= 30
    for spec in MINI_DATASETS.values():
        assert isinstance(spec, MiniDatasetSpec)
        assert len({c.name for c in spec.classes}) == len(spec.classes)


def test_pretraining_is_deterministic_for_a_seed():
    torch.set_num_threads(1)
    first, losses_a = pretrain(steps=3, batch_size=8, seed=7, warmup=1, log_every=0)
    second, losses_b = pretrain(steps=3, batch_size=8, seed=7, warmup=1, log_every=0)
    assert losses_a == losses_b
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
