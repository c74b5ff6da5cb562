"""Every reader on its fixture: class names and order, sizes, labels, base/new, errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from _datasets_helpers import BENCHMARKS, SPLIT_FILE_DATASETS, VARIANTS, tree_fixture

from ammpl.data.check import DATASET_STEMS
from ammpl.data.fixtures import ALL_DATASETS
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.utils.errors import DataError

tree = tree_fixture()
ALL = BENCHMARKS + VARIANTS


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Writes (ImageNet's list cache) go here, so the fixture tree itself stays pristine."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("name", ALL)
def test_reader_reproduces_the_fixture(tree, cache_dir, name):
    info = tree.infos[name]
    ds = tree.build(name, CACHE_DIR=cache_dir)
    assert ds.classnames == info.classnames
    assert ds.num_classes == len(info.classnames)
    assert len(ds.train_x) == info.sizes["train"]
    assert len(ds.val or []) == info.sizes["val"]
    assert len(ds.test) == info.sizes["test"]
    dataset_dir = str(tree.dataset_dir(name))
    for item in ds.train_x + (ds.val or []) + ds.test:
        assert 0 <= item.label < ds.num_classes
        assert item.classname == info.classnames[item.label]
        assert item.domain == 0
        assert item.impath.startswith(dataset_dir + os.sep) and os.path.isfile(item.impath)


@pytest.mark.parametrize("name", SPLIT_FILE_DATASETS)
def test_split_file_order_and_prefix_are_kept(tree, name):
    info = tree.infos[name]
    ds = tree.build(name)
    cls = DATASET_REGISTRY.get(name)
    split = json.loads((tree.dataset_dir(name) / info.split_file).read_text())
    prefix = cls.image_dir_of(str(tree.dataset_dir(name)))
    for part, items in (("train", ds.train_x), ("val", ds.val), ("test", ds.test)):
        expected = [(os.path.join(prefix, p), label, c) for p, label, c in split[part]]
        assert [(d.impath, d.label, d.classname) for d in items] == expected


def test_dataset_specific_naming_rules(tree):
    caltech = tree.build("Caltech101")
    assert caltech.classnames[:4] == ["face", "leopard", "accordion", "airplane"]
    folders = {os.path.basename(os.path.dirname(d.impath)) for d in caltech.train_x}
    assert "Faces" in folders and not folders & {"BACKGROUND_Google", "Faces_easy"}

    eurosat = tree.build("EuroSAT")
    first = eurosat.train_x[0]
    assert first.classname == "Annual Crop Land" and "/2750/AnnualCrop/" in first.impath

    ucf = tree.build("UCF101")
    handstand = [d for d in ucf.train_x if d.classname == "Handstand_Pushups"]
    assert handstand and all(
        "/Handstand_Pushups/v_HandStandPushups_" in d.impath for d in handstand
    )
    assert "Yo_Yo" in ucf.classnames

    cars = tree.build("StanfordCars")
    assert cars.classnames[0] == "2000 AM General Hummer SUV"
    assert all("/cars_train/" in d.impath for d in cars.train_x + cars.val)
    assert all("/cars_test/" in d.impath for d in cars.test)

    assert "outdoor apartment_building" in tree.build("SUN397").classnames
    assert {"BAE 146-200", "F/A-18"} <= set(tree.build("FGVCAircraft").classnames)
    assert "british_shorthair" in tree.build("OxfordPets").classnames
    assert "polka-dotted" in tree.build("DescribableTextures").classnames


@pytest.mark.parametrize("name", BENCHMARKS)
def test_base_and_new_halves_are_relabelled(tree, cache_dir, name):
    info = tree.infos[name]
    n_base = (info.num_classes + 1) // 2
    halves = {"base": info.classnames[:n_base], "new": info.classnames[n_base:]}
    for mode, names in halves.items():
        ds = tree.build(name, SUBSAMPLE_CLASSES=mode, CACHE_DIR=cache_dir)
        assert ds.classnames == names and ds.num_classes == len(names)
        for part in ("train", "val", "test"):
            items = {"train": ds.train_x, "val": ds.val, "test": ds.test}[part]
            assert len(items) == info.per_class[part] * len(names)
            assert {d.label for d in items} == set(range(len(names)))
            assert all(d.classname == names[d.label] for d in items)
    if name == "ImageNet":
        assert ds.val == ds.test


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_ignore_few_shot_and_subsampling(tree, name, capsys):
    ds = tree.build(name, NUM_SHOTS=1, SUBSAMPLE_CLASSES="base")
    assert len(ds.test) == tree.infos[name].sizes["test"] and ds.val is None
    assert ds.train_x == ds.test
    assert "test-only" in capsys.readouterr().out
    assert not (tree.dataset_dir(name) / "split_fewshot").exists()


@pytest.mark.parametrize("name", ["ImageNetA", "ImageNetR"])
def test_imagenet_a_and_r_use_the_present_synsets_sorted(tree, name):
    lines = (tree.dataset_dir(name) / "classnames.txt").read_text().splitlines()
    classnames = dict(line.split(" ", 1) for line in lines)
    ds = tree.build(name)
    image_dir = tree.dataset_dir(name) / DATASET_REGISTRY.get(name).image_subdir
    wnids = sorted(p.name for p in image_dir.iterdir() if p.is_dir())
    assert len(classnames) == 2 * len(wnids)  # a superset, as the 1000-line file is
    assert ds.classnames == [classnames[w] for w in wnids]
    for item in ds.test:
        assert os.path.basename(os.path.dirname(item.impath)) == wnids[item.label]


def test_imagenetv2_labels_follow_the_classnames_line_order(tree):
    lines = (tree.dataset_dir("ImageNetV2") / "classnames.txt").read_text().splitlines()
    ds = tree.build("ImageNetV2")
    assert len(lines) == 1000  # as the real file; only the first classes have images
    assert ds.classnames == [line.split(" ", 1)[1] for line in lines][: len(ds.classnames)]
    for item in ds.test:
        assert os.path.basename(os.path.dirname(item.impath)) == str(item.label)


def test_missing_dataset_folder_says_what_to_download(tmp_path, tree):
    from _datasets_helpers import FixtureTree

    empty = FixtureTree(tmp_path, tree.infos)
    with pytest.raises(DataError) as error:
        empty.build("Food101")
    message = str(error.value)
    assert str(tmp_path / "food-101") in message and "download" in message
    assert "\n" not in message


def test_missing_annotation_file_is_named(tmp_path, tree):
    from _datasets_helpers import FixtureTree

    from ammpl.data.fixtures import make_fixture

    infos = make_fixture(tmp_path, ["OxfordPets"], with_split_files=False)
    (tmp_path / "oxford_pets" / "annotations" / "test.txt").unlink()
    with pytest.raises(DataError, match=r"annotations/test\.txt.*split_zhou_OxfordPets\.json"):
        FixtureTree(tmp_path, infos).build("OxfordPets")


def test_split_entry_without_image_fails_with_the_file(tmp_path):
    from _datasets_helpers import FixtureTree

    from ammpl.data.fixtures import make_fixture

    infos = make_fixture(tmp_path, ["DescribableTextures"])
    victim = tmp_path / "dtd" / "images" / "banded" / "banded_0001.jpg"
    victim.unlink()
    with pytest.raises(DataError, match="banded_0001.jpg"):
        FixtureTree(tmp_path, infos).build("DescribableTextures")


def test_fgvc_list_naming_an_unknown_variant_points_at_the_line(tmp_path):
    from _datasets_helpers import FixtureTree

    from ammpl.data.fixtures import make_fixture

    infos = make_fixture(tmp_path, ["FGVCAircraft"])
    test_list = tmp_path / "fgvc_aircraft" / "images_variant_test.txt"
    test_list.write_text(test_list.read_text() + "1234567 Concorde\n")
    line = len(test_list.read_text().splitlines())
    with pytest.raises(DataError, match=rf"images_variant_test\.txt:{line}: .*Concorde"):
        FixtureTree(tmp_path, infos).build("FGVCAircraft")


def test_every_dataset_config_names_its_reader(repo_root):
    import ammpl.data.datasets  # noqa: F401

    for name, stem in DATASET_STEMS.items():
        config = yaml.safe_load((repo_root / "configs" / "datasets" / f"{stem}.yaml").read_text())
        assert config == {"DATASET": {"NAME": name}}
        assert name in DATASET_REGISTRY
    assert set(DATASET_STEMS) == set(ALL)
    assert tuple(DATASET_STEMS) == ALL_DATASETS


def test_fixture_rejects_sizes_the_split_rules_cannot_split(tmp_path):
    from ammpl.data.fixtures import make_fixture

    with pytest.raises(ValueError):
        make_fixture(tmp_path, ["Food101"], n_per_class=3)
    with pytest.raises(ValueError):
        make_fixture(tmp_path, ["NoSuchSet"])
    shutil.rmtree(tmp_path)
