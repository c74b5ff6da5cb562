"""The few-shot cache: CoOp/Dassl pickles read without Dassl, our JSON cache, redirects."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import sys
import types

import pytest
from _data_core_helpers import make_items, reference_fewshot

from ammpl.data import fewshot_cache, load_or_create_fewshot
from ammpl.utils.errors import DataError

DASSL_MODULE = "dassl.data.datasets.base_dataset"


def write_dassl_pickle(path, monkeypatch, train, val):
    """Pickle {"train", "val"} lists of a stand-in for Dassl's Datum, then unregister it."""
    names = ["dassl", "dassl.data", "dassl.data.datasets", DASSL_MODULE]
    module = types.ModuleType(DASSL_MODULE)

    class Datum:
        def __init__(self, item):
            self._impath = item.impath
            self._label = item.label
            self._domain = item.domain
            self._classname = item.classname

    Datum.__module__ = DASSL_MODULE
    Datum.__qualname__ = "Datum"
    module.Datum = Datum
    with monkeypatch.context() as patch:
        for name in names:
            patch.setitem(
                sys.modules, name, module if name == DASSL_MODULE else types.ModuleType(name)
            )
        data = {"train": [Datum(d) for d in train], "val": [Datum(d) for d in val]}
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    assert DASSL_MODULE not in sys.modules and "dassl" not in sys.modules


@pytest.fixture
def toyset(tmp_path):
    dataset_dir = tmp_path / "data" / "toyset"
    train = make_items(dataset_dir / "images", [6, 5, 7])
    val = make_items(dataset_dir / "val_images", [5, 5, 5])
    return dataset_dir, train, val


def test_reads_coop_pickle_without_dassl(toyset, monkeypatch, capsys):
    dataset_dir, train, val = toyset
    pkl = dataset_dir / "split_fewshot" / "shot_2-seed_1.pkl"
    write_dassl_pickle(pkl, monkeypatch, train[:4], val[:2])
    random.seed(5)
    state = random.getstate()
    got_train, got_val = load_or_create_fewshot(str(dataset_dir), train, val, 2, 1)
    assert got_train == train[:4] and got_val == val[:2]
    assert random.getstate() == state
    assert f"Loading preprocessed few-shot data from {pkl}" in capsys.readouterr().out
    assert sorted(os.listdir(pkl.parent)) == ["shot_2-seed_1.pkl"]  # nothing written


def test_coop_pickle_rerooted_after_the_data_moved(toyset, tmp_path, monkeypatch):
    dataset_dir, train, val = toyset
    write_dassl_pickle(dataset_dir / "split_fewshot" / "shot_1-seed_2.pkl", monkeypatch, train, val)
    moved = tmp_path / "elsewhere" / "toyset"
    shutil.move(str(dataset_dir), str(moved))
    got_train, got_val = load_or_create_fewshot(str(moved), [], [], 1, 2)
    assert [d.impath for d in got_train] == [
        d.impath.replace(str(dataset_dir), str(moved)) for d in train
    ]
    assert all(os.path.exists(d.impath) for d in got_train + got_val)
    assert [d.label for d in got_val] == [d.label for d in val]

    os.remove(got_train[3].impath)
    with pytest.raises(DataError, match="missing and not found under .*delete the cache file"):
        load_or_create_fewshot(str(moved), [], [], 1, 2)


def test_pickle_with_other_globals_is_refused(toyset):
    dataset_dir, train, val = toyset
    evil = dataset_dir / "split_fewshot" / "shot_1-seed_1.pkl"
    evil.parent.mkdir(parents=True)
    evil.write_bytes(pickle.dumps({"train": [os.getcwd], "val": []}))
    with pytest.raises(DataError, match="refusing to load global"):
        load_or_create_fewshot(str(dataset_dir), train, val, 1, 1)


def test_json_cache_written_then_reused_without_random_calls(toyset, capsys):
    dataset_dir, train, val = toyset
    random.seed(3)
    expected_train = reference_fewshot(train, 4)
    expected_val = reference_fewshot(val, 4)  # min(4, 4)
    random.seed(3)
    got_train, got_val = load_or_create_fewshot(str(dataset_dir), train, val, 4, 3)
    assert (got_train, got_val) == (expected_train, expected_val)
    cache = dataset_dir / "split_fewshot" / "shot_4-seed_3.ammpl.json"
    assert f"Saving preprocessed few-shot data to {cache}" in capsys.readouterr().out
    assert os.listdir(cache.parent) == [cache.name]  # never a .pkl
    entry = json.loads(cache.read_text())["train"][0]
    assert not os.path.isabs(entry[0]) and entry[0].startswith("images/")

    random.seed(99)
    state = random.getstate()
    again = load_or_create_fewshot(str(dataset_dir), train, val, 4, 3)
    assert again == (expected_train, expected_val)
    assert random.getstate() == state


def test_val_uses_at_most_four_shots_and_imagenet_mode(toyset):
    dataset_dir, train, val = toyset
    random.seed(0)
    got_train, got_val = load_or_create_fewshot(str(dataset_dir), train, val, 5, 0)
    assert len(got_train) == 5 + 5 + 5 and len(got_val) == 4 * 3
    full_val = val[:3]
    _, same_val = load_or_create_fewshot(str(dataset_dir), train, full_val, 1, 0, has_val=False)
    assert same_val is full_val
    data = json.loads((dataset_dir / "split_fewshot" / "shot_1-seed_0.ammpl.json").read_text())
    assert "val" not in data
    assert load_or_create_fewshot(str(dataset_dir), train, val, -1, 0) == (train, val)


def test_read_only_dataset_folder_redirects_to_cache_dir(toyset, tmp_path, monkeypatch):
    dataset_dir, train, val = toyset
    if os.geteuid() == 0:  # root ignores permission bits; simulate a read-only mount
        monkeypatch.setattr(
            fewshot_cache, "_dir_is_writable", lambda path: not path.startswith(str(dataset_dir))
        )
    os.chmod(dataset_dir, 0o555)
    try:
        cache_root = tmp_path / "cache"
        monkeypatch.setattr(fewshot_cache, "DEFAULT_CACHE_ROOT", str(cache_root))
        picks = load_or_create_fewshot(str(dataset_dir), train, val, 2, 1)
        written = cache_root / "toyset" / "split_fewshot" / "shot_2-seed_1.ammpl.json"
        assert written.is_file()
        assert not (dataset_dir / "split_fewshot").exists()
        assert load_or_create_fewshot(str(dataset_dir), [], [], 2, 1) == picks
    finally:
        os.chmod(dataset_dir, 0o755)


def test_explicit_cache_dir_is_used_even_when_writable(toyset, tmp_path):
    dataset_dir, train, val = toyset
    cache_dir = tmp_path / "my_cache"
    picks = load_or_create_fewshot(str(dataset_dir), train, val, 3, 1, cache_dir=str(cache_dir))
    assert (cache_dir / "toyset" / "split_fewshot" / "shot_3-seed_1.ammpl.json").is_file()
    assert not (dataset_dir / "split_fewshot").exists()
    assert load_or_create_fewshot(str(dataset_dir), [], [], 3, 1, cache_dir=str(cache_dir)) == picks


def test_corrupt_json_cache_is_a_clear_error(toyset):
    dataset_dir, train, val = toyset
    bad = dataset_dir / "split_fewshot" / "shot_1-seed_1.ammpl.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[1, 2")
    with pytest.raises(DataError, match="Cannot read few-shot cache .*delete it to resample"):
        load_or_create_fewshot(str(dataset_dir), train, val, 1, 1)


# ---------------------------------------------------------------- one lookup order


@pytest.mark.parametrize("explicit", [False, True])
def test_a_stale_pickle_in_a_cache_folder_never_beats_the_data_roots_json(
    toyset, tmp_path, monkeypatch, capsys, explicit
):
    """The dataset folder is searched first, whatever the format (as CoOp looks only
    there); a CoOp pickle elsewhere (home cache, DATASET.CACHE_DIR) is a later candidate."""
    dataset_dir, train, val = toyset
    cache_root = tmp_path / ("explicit_cache" if explicit else "home_cache")
    monkeypatch.setattr(fewshot_cache, "DEFAULT_CACHE_ROOT", str(tmp_path / "home_cache"))
    cache_dir = str(cache_root) if explicit else ""
    random.seed(0)
    picks = load_or_create_fewshot(str(dataset_dir), train, val, 2, 1)  # JSON in the data root
    assert (dataset_dir / "split_fewshot" / "shot_2-seed_1.ammpl.json").is_file()
    stale = cache_root / "toyset" / "split_fewshot" / "shot_2-seed_1.pkl"
    write_dassl_pickle(stale, monkeypatch, train[-4:], val[-2:])
    capsys.readouterr()
    assert load_or_create_fewshot(str(dataset_dir), [], [], 2, 1, cache_dir=cache_dir) == picks
    out = capsys.readouterr().out
    assert str(dataset_dir) in out and str(stale) not in out
    # with nothing in the data root, the cache folder's file is used
    (dataset_dir / "split_fewshot" / "shot_2-seed_1.ammpl.json").unlink()
    got = load_or_create_fewshot(str(dataset_dir), [], [], 2, 1, cache_dir=cache_dir)
    assert got == (train[-4:], val[-2:])


def test_one_lookup_order_for_every_cached_file(tmp_path, monkeypatch):
    """Split files and ImageNet's list caches use the same order: folder first (data root,
    then the cache folder), then the names in the order given (CoOp's pickle first)."""
    dataset_dir = tmp_path / "data" / "imagenet"
    cache = tmp_path / "cache"
    monkeypatch.setattr(fewshot_cache, "DEFAULT_CACHE_ROOT", str(tmp_path / "home"))
    for folder in (dataset_dir, cache / "imagenet", tmp_path / "home" / "imagenet"):
        folder.mkdir(parents=True)
    names = ("preprocessed.pkl", "preprocessed.ammpl.json")
    (cache / "imagenet" / names[0]).write_text("stale")
    (tmp_path / "home" / "imagenet" / names[0]).write_text("stale")
    (dataset_dir / names[1]).write_text("{}")
    find = fewshot_cache.find_cached_file
    assert find(str(dataset_dir), names, str(cache)) == str(dataset_dir / names[1])
    assert find(str(dataset_dir), names) == str(dataset_dir / names[1])
    (dataset_dir / names[1]).unlink()
    assert find(str(dataset_dir), names, str(cache)) == str(cache / "imagenet" / names[0])
    assert find(str(dataset_dir), names) == str(tmp_path / "home" / "imagenet" / names[0])
    split = "split_zhou_Toy.json"
    (cache / "imagenet" / split).write_text("stale")
    (dataset_dir / split).write_text("official")
    assert find(str(dataset_dir), split, str(cache)) == str(dataset_dir / split)
    assert fewshot_cache.cache_folders(str(dataset_dir), str(cache)) == [
        str(dataset_dir),
        str(cache / "imagenet"),
    ]
