"""Datum / DatasetBase, Dassl's few-shot sampler, split files and base/new subsampling."""

from __future__ import annotations

import json
import random

import pytest
from _data_core_helpers import make_items, reference_fewshot, write_image

from ammpl.data import (
    DatasetBase,
    Datum,
    generate_fewshot_dataset,
    read_split,
    split_dataset_by_label,
    subsample_classes,
)
from ammpl.data.splits import read_and_split_data, save_split, split_trainval
from ammpl.utils.errors import ConfigError, DataError


def test_datum_requires_existing_file_and_is_read_only(tmp_path):
    path = write_image(tmp_path / "a.png")
    item = Datum(str(path), label=3, classname="cat")
    assert (item.impath, item.label, item.domain, item.classname) == (str(path), 3, 0, "cat")
    with pytest.raises(AttributeError):
        item.label = 4
    with pytest.raises(DataError, match="missing.png"):
        Datum(str(tmp_path / "missing.png"))


def test_datasetbase_derives_classes_from_train_x(tmp_path):
    items = make_items(tmp_path, [2, 1, 3], ["dog", "cat", "owl"])
    dataset = DatasetBase(train_x=items, test=items[:2])
    assert dataset.num_classes == 3
    assert dataset.lab2cname == {0: "dog", 1: "cat", 2: "owl"}
    assert dataset.classnames == ["dog", "cat", "owl"]
    assert dataset.val is None and dataset.train_u is None
    # Dassl's rule: max label + 1, not the count of labels present.
    gap = [item for item in items if item.label != 1]
    assert DatasetBase(train_x=gap).num_classes == 3


def test_split_dataset_by_label_keeps_first_appearance_order(tmp_path):
    items = make_items(tmp_path, [2, 2, 2])
    groups = split_dataset_by_label(items)
    assert list(groups) == [2, 1, 0]
    assert [item.label for item in groups[1]] == [1, 1]
    assert groups[0] == [item for item in items if item.label == 0]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("num_shots", [1, 4, 8])
@pytest.mark.parametrize("repeat", [False, True])
def test_fewshot_picks_match_dassl_rule(tmp_path, seed, num_shots, repeat, capsys):
    items = make_items(tmp_path, [9, 3, 6, 12])  # some classes smaller than 4 and 8 shots
    random.seed(seed)
    expected = reference_fewshot(items, num_shots, repeat)
    after_reference = random.getstate()
    random.seed(seed)
    picked = generate_fewshot_dataset(items, num_shots=num_shots, repeat=repeat)
    assert picked == expected
    assert random.getstate() == after_reference  # same number of random calls
    assert f"Creating a {num_shots}-shot dataset" in capsys.readouterr().out


def test_fewshot_small_class_kept_whole_without_random_call(tmp_path):
    items = make_items(tmp_path, [2, 2])
    random.seed(0)
    state = random.getstate()
    picked = generate_fewshot_dataset(items, num_shots=5)
    assert sorted(picked, key=lambda d: d.impath) == sorted(items, key=lambda d: d.impath)
    assert random.getstate() == state


def test_fewshot_multiple_sources_and_disabled(tmp_path):
    train = make_items(tmp_path / "a", [5, 5])
    val = make_items(tmp_path / "b", [3, 3])
    random.seed(7)
    new_train, new_val = generate_fewshot_dataset(train, val, num_shots=2)
    random.seed(7)
    assert new_train == reference_fewshot(train, 2)
    assert new_val == reference_fewshot(val, 2)
    assert generate_fewshot_dataset(train, num_shots=-1) is train
    assert generate_fewshot_dataset(train, val, num_shots=0) == (train, val)


@pytest.mark.parametrize("n_classes, n_base", [(5, 3), (4, 2), (1, 1)])
def test_subsample_base_new_sizes_and_relabel(tmp_path, n_classes, n_base, capsys):
    train = make_items(tmp_path / "tr", [2] * n_classes)
    test = make_items(tmp_path / "te", [3] * n_classes)
    base_train, base_test = subsample_classes(train, test, subsample="base")
    new_train, new_test = subsample_classes(train, test, subsample="new")
    assert sorted({d.label for d in base_train}) == list(range(n_base))
    assert sorted({d.label for d in new_train}) == list(range(n_classes - n_base))
    assert len(base_test) == 3 * n_base and len(new_test) == 3 * (n_classes - n_base)
    # Relabelled new class j is original class n_base + j; names and paths unchanged.
    for item in new_test:
        assert item.classname == f"class_{item.label + n_base}"
    assert set(d.impath for d in base_test) | set(d.impath for d in new_test) == {
        d.impath for d in test
    }
    assert "SUBSAMPLE BASE CLASSES!" in capsys.readouterr().out
    assert subsample_classes(train, test, subsample="all") == (train, test)
    with pytest.raises(ConfigError, match="base"):
        subsample_classes(train, subsample="novel")


def test_split_roundtrip(tmp_path):
    prefix = tmp_path / "images"
    items = make_items(prefix, [3, 2])
    path = tmp_path / "split_zhou_Toy.json"
    save_split(items[:3], items[3:4], items[4:], str(path), str(prefix))
    raw = json.loads(path.read_text())
    assert list(raw) == ["train", "val", "test"]
    assert raw["train"][0][0] == "class_1/0.png"  # relative, no leading slash
    train, val, test = read_split(str(path), str(prefix))
    assert (train, val, test) == (items[:3], items[3:4], items[4:])


def test_read_split_names_file_and_entry(tmp_path):
    prefix = tmp_path / "images"
    items = make_items(prefix, [2])
    path = tmp_path / "split_zhou_X.json"
    save_split(items, items, items, str(path), str(prefix))
    raw = json.loads(path.read_text())
    raw["train"][1][0] = "class_0/gone.png"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"1 of 6 listed images are missing: .*gone.png"):
        read_split(str(path), str(prefix))
    raw["train"][1] = ["class_0/0.png", "zero"]
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="entry 2 of 'train' \\(1-based\\)"):
        read_split(str(path), str(prefix))
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_split(str(path), str(prefix))


def test_split_trainval_rule(tmp_path):
    items = make_items(tmp_path, [8, 5, 3])
    random.seed(1)
    train, val = split_trainval(items, p_val=0.2)
    val_counts = {label: sum(d.label == label for d in val) for label in range(3)}
    assert val_counts == {0: 2, 1: 1, 2: 1}  # round(1.6), round(1.0), round(0.6)
    assert len(train) + len(val) == len(items)
    assert [d.label for d in val] == [2, 1, 0, 0]  # grouped by first appearance
    random.seed(1)
    expected_val = []
    for label in (2, 1, 0):
        indices = [i for i, d in enumerate(items) if d.label == label]
        random.shuffle(indices)
        expected_val += [items[i] for i in indices[: val_counts[label]]]
    assert val == expected_val
    with pytest.raises(DataError, match="Class 0 has 2"):
        split_trainval(make_items(tmp_path / "small", [2]))


def test_read_and_split_data_rule(tmp_path):
    image_dir = tmp_path / "images"
    for name, count in [("b_cls", 10), ("A_cls", 5), ("skip", 4)]:
        for i in range(count):
            write_image(image_dir / name / f"{i}.png")
    (image_dir / ".hidden").mkdir()
    random.seed(0)
    train, val, test = read_and_split_data(
        str(image_dir), ignored=["skip"], new_cnames={"A_cls": "a"}
    )
    sizes = {
        label: [sum(d.label == label for d in part) for part in (train, val, test)]
        for label in (0, 1)
    }
    assert sizes == {0: [2, 1, 2], 1: [5, 2, 3]}  # round(2.5) == 2 (half to even)
    assert {d.classname for d in train} == {"a", "b_cls"}
    assert all("/A_cls/" in d.impath for d in train if d.label == 0)
