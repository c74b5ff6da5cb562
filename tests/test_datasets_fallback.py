"""Split files absent: each reader regenerates the split with CoOp's rules and writes it."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from _datasets_helpers import SPLIT_FILE_DATASETS, impaths, snapshot, tree_fixture

from ammpl.data.registry import DATASET_REGISTRY
from ammpl.data.splits import read_split

tree = tree_fixture(with_split_files=False)
odd_tree = tree_fixture(with_split_files=False, n_per_class=5)

FOLDER_RULE = ("Caltech101", "Food101", "DescribableTextures", "EuroSAT", "OxfordFlowers")
TRAINVAL_RULE = ("OxfordPets", "StanfordCars", "SUN397", "UCF101")


def per_class_counts(items) -> set[int]:
    return set(Counter(item.label for item in items).values())


@pytest.mark.parametrize("name", SPLIT_FILE_DATASETS)
def test_regenerated_split_is_written_and_read_back(tree, tmp_path, name):
    info = tree.infos[name]
    before = snapshot(tree.root)
    ds = tree.build(name, seed=1, CACHE_DIR=str(tmp_path))
    assert snapshot(tree.root) == before  # CACHE_DIR set: nothing written into the data
    written = tmp_path / info.folder / info.split_file
    assert written.is_file()

    assert ds.classnames == info.classnames
    for part, items in (("train", ds.train_x), ("val", ds.val), ("test", ds.test)):
        assert len(items) == info.sizes[part]
        assert per_class_counts(items) == {info.per_class[part]}

    prefix = DATASET_REGISTRY.get(name).image_dir_of(str(tree.dataset_dir(name)))
    train, val, test = read_split(str(written), prefix)
    assert (train, val, test) == (ds.train_x, ds.val, ds.test)
    first = json.loads(written.read_text())["train"][0]
    assert not first[0].startswith("/") and isinstance(first[1], int)

    # A second run reads the written file: same lists whatever the random state.
    again = tree.build(name, seed=99, CACHE_DIR=str(tmp_path))
    assert impaths(again.train_x) == impaths(ds.train_x)


@pytest.mark.parametrize("name", ["Food101", "OxfordFlowers", "SUN397"])
def test_regeneration_depends_on_the_seed_only(tree, tmp_path, name):
    runs = {
        key: tree.build(name, seed=seed, CACHE_DIR=str(tmp_path / key))
        for key, seed in (("a", 3), ("b", 3), ("c", 4))
    }
    assert impaths(runs["a"].train_x) == impaths(runs["b"].train_x)
    assert impaths(runs["a"].train_x) != impaths(runs["c"].train_x)


@pytest.mark.parametrize("name", FOLDER_RULE + TRAINVAL_RULE)
def test_half_to_even_rounding_on_odd_class_sizes(odd_tree, tmp_path, name):
    """5 images per class: 50/20/30 gives round(2.5)=2, round(1.0)=1, 2 (not 3/1/1);
    the 80/20 rule on 4 train+val images gives round(0.8)=1 val."""
    ds = odd_tree.build(name, CACHE_DIR=str(tmp_path))
    expected = (2, 1, 2) if name in FOLDER_RULE else (3, 1, 1)
    counts = tuple(next(iter(per_class_counts(items))) for items in (ds.train_x, ds.val, ds.test))
    assert counts == expected


def test_split_is_written_into_the_dataset_folder_by_default(tmp_path):
    from _datasets_helpers import FixtureTree

    from ammpl.data.fixtures import make_fixture

    infos = make_fixture(tmp_path, ["EuroSAT"], with_split_files=False)
    FixtureTree(tmp_path, infos).build("EuroSAT")
    split = json.loads((tmp_path / "eurosat" / "split_zhou_EuroSAT.json").read_text())
    assert list(split) == ["train", "val", "test"]
    path, label, classname = split["train"][0]
    folder = path.split("/")[0]
    assert classname != folder or folder == "Forest"  # paths keep folders, names are renamed
    assert label == 0 and path.startswith("AnnualCrop/")
