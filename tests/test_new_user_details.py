"""Small things a new user met (issue 20, item 5): a wrong dataset root leaves no output
folder, an invalid YAML file is named with line and column, and the mask picture's legend
fits a one-column figure. (The weights-fallback notice: tests/test_clip_backbones.py; the
Figure 3 recipe's output folder: tests/test_figure3_recipe.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ammpl.cli.train import main as train_main
from ammpl.engine.config import get_cfg_default, merge_from_file
from ammpl.trainers.ammpl.viz import PICTURE_MODES, MaskHistory, render_mask_grid
from ammpl.utils.errors import ConfigError


def train_args(repo_root: Path, root: Path, out: Path, config: str) -> list[str]:
    return [
        "--root", str(root),
        "--trainer", "CoOp",
        "--dataset-config-file", str(repo_root / "configs/datasets/caltech101.yaml"),
        "--config-file", str(repo_root / config),
        "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", "tiny",
    ]  # fmt: skip


@pytest.mark.parametrize("root_exists", [False, True])
def test_a_wrong_dataset_root_leaves_no_output_folder(repo_root, tmp_path, capsys, root_exists):
    root = tmp_path / "data"
    if root_exists:
        root.mkdir()  # a root, but without caltech-101/
    out = tmp_path / "output" / "run"
    code = train_main(train_args(repo_root, root, out, "configs/trainers/CoOp/vit_b16_ep50.yaml"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert ("caltech-101" if root_exists else "Dataset root") in err
    assert not (tmp_path / "output").exists()


def test_invalid_yaml_is_named_with_line_and_column(repo_root, benchmark_root, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  LR: 0.002\n   MAX_EPOCH: 5\n")
    with pytest.raises(ConfigError) as info:
        merge_from_file(get_cfg_default(), bad)
    message = str(info.value)
    assert f"{bad}:3:13 is not valid YAML: mapping values are not allowed here" in message
    assert "\n" not in message

    tab = tmp_path / "tab.yaml"
    tab.write_text("OPTIM:\n\tLR: 0.1\n")
    out = tmp_path / "out"
    assert train_main(train_args(repo_root, benchmark_root, out, str(tab))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{tab}:2:1 is not valid YAML" in err


@pytest.mark.parametrize("mode", PICTURE_MODES)
def test_the_legend_of_a_one_column_picture_is_not_cut_off(tmp_path, mode):
    keep = torch.ones(2, 14, 14)
    keep[:, 3:6, 4:9] = 0
    history = MaskHistory([5], [keep], ["cat", "dog"], True, 224)
    image = np.full((224, 224, 3), 200.0)
    png = render_mask_grid([image], ["a/b.png"], history, [0], tmp_path / "one.png", mode)
    pixels = np.asarray(Image.open(png).convert("L"))
    width = pixels.shape[1]
    image_rows = np.nonzero((np.abs(pixels.astype(int) - 200) < 3).sum(axis=1) > 50)[0]
    assert (pixels[image_rows.max() + 2 :] < 128).any()  # the legend is drawn under it ...
    margin = width // 40
    assert (pixels[:, :margin] == 255).all() and (pixels[:, -margin:] == 255).all()  # ... whole
