"""Missing images found while a dataset is built are reported together (issue 9, item 18):
how many, the first few, and the split file and line that list each; through `ammpl-train`
that is one line and exit code 2. Undecodable images point to `ammpl-data check --decode`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ammpl.cli.train import main as train_main
from ammpl.data.fixtures import make_fixture
from ammpl.data.registry import build_dataset
from ammpl.engine.config import get_cfg_default
from ammpl.utils.errors import DataError


def dtd_with_missing(root: Path, count: int) -> list[tuple[str, int]]:
    """Delete `count` test images of a DTD fixture; (absolute path, split-file line) of each."""
    make_fixture(root, ["DescribableTextures"])
    split_path = root / "dtd" / "split_zhou_DescribableTextures.json"
    lines = split_path.read_text().splitlines()
    gone = []
    for relpath, _, _ in json.loads(split_path.read_text())["test"][:count]:
        (root / "dtd" / "images" / relpath).unlink()
        gone.append(
            (str(root / "dtd" / "images" / relpath), lines.index(f'            "{relpath}",') + 1)
        )
    return gone


def test_all_missing_images_are_reported_at_once_with_file_and_line(tmp_path):
    gone = dtd_with_missing(tmp_path, 4)
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.VERBOSE = str(tmp_path), "DescribableTextures", False
    with pytest.raises(DataError) as info:
        build_dataset(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("4 of 50 listed images are missing: ")
    for path, line in gone[:3]:
        assert (
            f"{path} (listed at {tmp_path}/dtd/split_zhou_DescribableTextures.json:{line})"
            in message
        )
    assert gone[3][0] not in message and ", …" in message  # the first few, then an ellipsis
    assert "entry" not in message


def test_train_reports_the_missing_images_in_one_line(repo_root, tmp_path, capsys):
    dtd_with_missing(tmp_path / "data", 2)
    code = train_main(
        [
            "--root", str(tmp_path / "data"),
            "--trainer", "CoOp",
            "--dataset-config-file", str(repo_root / "configs/datasets/dtd.yaml"),
            "--config-file", str(repo_root / "configs/trainers/CoOp/vit_b16_ep50.yaml"),
            "--output-dir", str(tmp_path / "out"),
            "MODEL.BACKBONE.NAME", "tiny",
        ]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 2 of 50 listed images are missing")
    assert "split_zhou_DescribableTextures.json:" in err[0]


def test_undecodable_images_of_a_batch_are_reported_together(tmp_path):
    from ammpl.data.manager import DataManager

    make_fixture(tmp_path, ["DescribableTextures"])
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.VERBOSE = str(tmp_path), "DescribableTextures", False
    cfg.DATALOADER.NUM_WORKERS = 0
    dm = DataManager(cfg)
    victims = [item.impath for item in dm.dataset.test[:4]]
    for path in victims:
        Path(path).write_bytes(b"not an image")
    with pytest.raises(DataError) as info:
        next(iter(dm.test_loader))
    message = str(info.value)
    assert "\n" not in message and message.startswith("4 images of one batch cannot be decoded")
    assert all(path in message for path in victims[:3]) and victims[3] not in message
    assert f"`ammpl-data check --root {tmp_path} DescribableTextures --decode`" in message
