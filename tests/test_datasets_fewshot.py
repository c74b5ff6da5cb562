"""Few-shot subsets through the core cache, and ImageNet's list cache (ours and CoOp's)."""

from __future__ import annotations

import os
import pickle
import random
import sys
import types

import pytest
from _datasets_helpers import BENCHMARKS, FixtureTree, impaths, tree_fixture

from ammpl.data.fewshot import generate_fewshot_dataset
from ammpl.data.fixtures import make_fixture
from ammpl.utils.io import read_json

tree = tree_fixture()


@pytest.mark.parametrize("name", BENCHMARKS)
def test_fewshot_picks_are_dassl_picks_and_cached(tree, tmp_path, name):
    full = tree.build(name)
    picks = {}
    for seed in (1, 2):
        for shots in (1, 2):
            cache = tmp_path / f"cache-{seed}-{shots}"
            ds = tree.build(name, seed=seed, NUM_SHOTS=shots, CACHE_DIR=str(cache))
            random.seed(seed)
            expected_train = generate_fewshot_dataset(full.train_x, num_shots=shots)
            assert impaths(ds.train_x) == impaths(expected_train)
            assert len(ds.train_x) == shots * len(full.classnames)
            if name == "ImageNet":  # train only; val stays the full test set
                assert ds.val == ds.test == full.test
            else:
                expected_val = generate_fewshot_dataset(full.val, num_shots=min(shots, 4))
                assert impaths(ds.val) == impaths(expected_val)
            cache_file = cache / tree.infos[name].folder / "split_fewshot"
            cache_file = cache_file / f"shot_{shots}-seed_{seed}.ammpl.json"
            assert cache_file.is_file()
            assert ("val" in read_json(cache_file)) == (name != "ImageNet")
            # Reuse: another random state, same cache → same picks.
            random.seed(123)
            again = tree.build(name, seed, reseed=False, NUM_SHOTS=shots, CACHE_DIR=str(cache))
            assert impaths(again.train_x) == impaths(ds.train_x)
            picks[seed, shots] = impaths(ds.train_x)
    assert picks[1, 2] != picks[2, 2]


def test_fewshot_with_base_subsampling_uses_the_same_cache(tree, tmp_path):
    cache = str(tmp_path)
    all_classes = tree.build("Food101", NUM_SHOTS=2, CACHE_DIR=cache)
    random.seed(7)
    base = tree.build("Food101", 1, False, NUM_SHOTS=2, SUBSAMPLE_CLASSES="base", CACHE_DIR=cache)
    assert impaths(base.train_x) == [d.impath for d in all_classes.train_x if d.label < 3]


def test_imagenet_list_cache_is_written_and_reused(tmp_path):
    infos = make_fixture(tmp_path, ["ImageNet"])
    fixture = FixtureTree(tmp_path, infos)
    first = fixture.build("ImageNet")
    cache_file = tmp_path / "imagenet" / "preprocessed.ammpl.json"
    data = read_json(cache_file)
    assert len(data["train"]) == len(first.train_x) and len(data["test"]) == len(first.test)
    assert all(not rel.startswith("/") for rel, _, _ in data["train"])
    assert not list((tmp_path / "imagenet").glob("*.pkl"))

    data["train"] = data["train"][:7]  # proves the second run reads the cache, not the folders
    cache_file.write_text(__import__("json").dumps(data))
    second = fixture.build("ImageNet")
    assert impaths(second.train_x) == impaths(first.train_x[:7])


def test_imagenet_list_cache_honours_cache_dir(tmp_path):
    infos = make_fixture(tmp_path / "data", ["ImageNet"])
    FixtureTree(tmp_path / "data", infos).build("ImageNet", CACHE_DIR=str(tmp_path / "cache"))
    assert (tmp_path / "cache" / "imagenet" / "preprocessed.ammpl.json").is_file()
    assert not (tmp_path / "data" / "imagenet" / "preprocessed.ammpl.json").exists()


def _pickle_like_coop(path, lists) -> None:
    """Write lists as pickled `dassl.data.datasets.base_dataset.Datum` objects."""
    module = "dassl.data.datasets.base_dataset"

    class Datum:
        def __init__(self, impath, label, classname):
            self._impath, self._label, self._domain, self._classname = impath, label, 0, classname

    Datum.__module__, Datum.__qualname__ = module, "Datum"
    names = ["dassl", "dassl.data", "dassl.data.datasets", module]
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name in names:
            sys.modules[name] = types.ModuleType(name)
        sys.modules[module].Datum = Datum
        payload = {
            part: [Datum(d.impath.replace(*lists["moved"]), d.label, d.classname) for d in items]
            for part, items in lists.items()
            if part != "moved"
        }
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def test_imagenet_reads_coop_preprocessed_pkl_even_after_a_move(tmp_path):
    infos = make_fixture(tmp_path, ["ImageNet"])
    fixture = FixtureTree(tmp_path, infos)
    reference = fixture.build("ImageNet", CACHE_DIR=str(tmp_path / "scratch"))
    train = list(reversed(reference.train_x))  # an order only the pickle can produce
    old_root = os.path.join("/somewhere/else", "imagenet")
    moved = (str(tmp_path / "imagenet"), old_root)
    _pickle_like_coop(
        tmp_path / "imagenet" / "preprocessed.pkl",
        {"train": train, "test": reference.test, "moved": moved},
    )
    ds = fixture.build("ImageNet")
    assert impaths(ds.train_x) == impaths(train)
    assert ds.classnames == infos["ImageNet"].classnames
    assert not (tmp_path / "imagenet" / "preprocessed.ammpl.json").exists()
