"""Image decoding, transforms, the dataset registry and DataManager's loaders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision.transforms as T
from _data_core_helpers import make_cfg, make_items
from PIL import Image
from torchvision.transforms import InterpolationMode

from ammpl.data import (
    DataManager,
    DatasetBase,
    build_dataset,
    build_transform,
    manager,
    read_image,
)
from ammpl.data.manager import build_data_loader
from ammpl.data.registry import dataset_root, require_dir
from ammpl.utils.errors import ConfigError, DataError


def test_read_image_rgb_and_clear_errors(tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("L", (5, 4), 128).save(gray)
    image = read_image(gray)
    assert image.mode == "RGB" and image.size == (5, 4)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"Cannot decode image .*broken.jpg: "):
        read_image(broken)
    with pytest.raises(DataError, match=r"Cannot decode image .*nope.png: file not found"):
        read_image(tmp_path / "nope.png")


def test_train_transform_clip_style():
    cfg = make_cfg()
    cfg.INPUT.RRCROP_SCALE = (0.5, 1.0)
    tfm = build_transform(cfg, is_train=True)
    kinds = [type(step) for step in tfm.transforms]
    assert kinds == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    crop = tfm.transforms[0]
    assert crop.interpolation == InterpolationMode.BICUBIC and crop.scale == (0.5, 1.0)
    out = tfm(Image.new("RGB", (50, 40), (10, 20, 30)))
    assert out.shape == (3, 32, 32)


def test_test_transform_resizes_shorter_edge_then_center_crops():
    cfg = make_cfg()
    cfg.INPUT.SIZE = (24, 24)
    cfg.INPUT.INTERPOLATION = "bilinear"
    tfm = build_transform(cfg, is_train=False)
    kinds = [type(step) for step in tfm.transforms]
    assert kinds == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert tfm.transforms[0].size == 24
    assert tfm.transforms[0].interpolation == InterpolationMode.BILINEAR
    assert tfm(Image.new("RGB", (60, 30))).shape == (3, 24, 24)


def test_transform_options_and_errors():
    cfg = make_cfg()
    plain = build_transform(cfg, is_train=True, choices=["random_flip"])
    assert [type(s) for s in plain.transforms][0] is T.Resize  # no crop chosen → resize
    forced = build_transform(cfg, is_train=True, choices=["resize", "center_crop"])
    assert [type(s) for s in forced.transforms] == [T.Resize, T.CenterCrop, T.ToTensor]
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg, is_train=True) is None
    cfg.INPUT.NO_TRANSFORM = False
    with pytest.raises(ConfigError, match="Unknown transform 'cutmix'.*random_resized_crop"):
        build_transform(cfg, choices=["cutmix"])
    cfg.INPUT.INTERPOLATION = "lanczos9"
    with pytest.raises(ConfigError, match="INPUT.INTERPOLATION"):
        build_transform(cfg)


def test_registry_errors(tmp_path):
    cfg = make_cfg(tmp_path / "absent", name="Shapez")
    with pytest.raises(ConfigError, match='Did you mean "Shapes"'):
        build_dataset(cfg)
    cfg.DATASET.NAME = ""
    with pytest.raises(ConfigError, match="DATASET.NAME is empty"):
        build_dataset(cfg)
    with pytest.raises(DataError, match=r"Dataset root '.*absent' does not exist \(set --root"):
        dataset_root(cfg)
    with pytest.raises(DataError, match="Toy folder '.*' does not exist \\(download it\\)"):
        require_dir(str(tmp_path / "x"), "Toy folder", "download it")


def test_datamanager_on_shapes(shapes_root, capsys):
    cfg = make_cfg(shapes_root, NUM_SHOTS=2)
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 3
    cfg.DATALOADER.TEST.BATCH_SIZE = 64
    dm = DataManager(cfg)
    out = capsys.readouterr().out
    for row in ("Dataset", "Shapes", "# classes", "# train_x", "# val", "# test"):
        assert row in out
    assert dm.num_classes == 4 and dm.num_source_domains == 0
    assert dm.lab2cname == {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    assert dm.train_loader_u is None
    assert len(dm.dataset.train_x) == 8 and len(dm.dataset.val) == 8
    assert len(dm.dataset.test) == 120

    batches = list(dm.train_loader_x)
    assert [len(b["label"]) for b in batches] == [3, 3]  # 8 images, last partial batch dropped
    batch = batches[0]
    assert set(batch) == {"img", "label", "domain", "impath", "index"}
    assert batch["img"].shape == (3, 3, 32, 32) and batch["img"].dtype == torch.float32
    test_sizes = [len(b["label"]) for b in dm.test_loader]
    assert test_sizes == [64, 56]  # test loaders never drop
    assert [b["index"].tolist() for b in dm.val_loader][0] == list(range(8))


def test_one_image_per_class_with_batch_32_still_trains(shapes_root):
    cfg = make_cfg(shapes_root, NUM_SHOTS=1, SUBSAMPLE_CLASSES="base")
    cfg.VERBOSE = False
    dm = DataManager(cfg)
    assert dm.num_classes == 2
    batches = list(dm.train_loader_x)
    assert len(batches) == 1 and len(batches[0]["label"]) == 2


class _ToyWithBadImages(DatasetBase):
    """Six images over two classes; images 1 and 4 are not decodable."""

    def __init__(self, cfg):
        items = make_items(Path(cfg.DATASET.ROOT), [3, 3])
        for index in (1, 4):
            with open(items[index].impath, "wb") as handle:
                handle.write(b"\x89PNG broken")
        self.bad_paths = sorted(items[index].impath for index in (1, 4))
        super().__init__(train_x=items, val=None, test=items)


@pytest.fixture
def bad_image_toy(monkeypatch):
    """DataManager builds the toy set instead of a registered reader (registry left alone)."""
    monkeypatch.setattr(manager, "build_dataset", _ToyWithBadImages)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.usefixtures("bad_image_toy")
def test_bad_images_are_skipped_and_counted(tmp_path, workers):
    cfg = make_cfg(tmp_path, name="_ToyWithBadImages", SKIP_BAD_IMAGES=True)
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.DATALOADER.TEST.BATCH_SIZE = 2
    dm = DataManager(cfg)
    seen = [path for batch in dm.test_loader for path in batch["impath"]]
    assert len(seen) == 4 and not set(seen) & set(dm.dataset.bad_paths)
    assert dm.skipped_images == 2
    assert sorted(dm.skipped_image_paths) == dm.dataset.bad_paths
    assert sum(len(b["label"]) for b in dm.train_loader_x) == 4
    assert dm.skipped_images == 4  # counted again on each pass


@pytest.mark.usefixtures("bad_image_toy")
def test_bad_image_stops_the_run_without_the_flag(tmp_path):
    cfg = make_cfg(tmp_path, name="_ToyWithBadImages")
    cfg.DATALOADER.NUM_WORKERS = 1
    dm = DataManager(cfg)
    with pytest.raises(DataError, match=r"Cannot decode image .*\.png: .*SKIP_BAD_IMAGES") as err:
        list(dm.test_loader)
    assert "\n" not in str(err.value)


def test_build_data_loader_rules(tmp_path):
    cfg = make_cfg()
    cfg.DATALOADER.NUM_WORKERS = 10_000
    items = make_items(tmp_path, [2, 2])
    loader = build_data_loader(cfg, "RandomSampler", items, batch_size=3, tfm=None, is_train=True)
    assert loader.drop_last and loader.num_workers == os.cpu_count()
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
    test_loader = build_data_loader(cfg, "SequentialSampler", items, batch_size=3, is_train=False)
    assert not test_loader.drop_last
    with pytest.raises(ConfigError, match="Unknown sampler 'RandomDomainSampler'"):
        build_data_loader(cfg, "RandomDomainSampler", items)
    with pytest.raises(DataError, match="empty"):
        build_data_loader(cfg, "SequentialSampler", [])
