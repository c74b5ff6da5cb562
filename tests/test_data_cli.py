"""`ammpl-data check` on complete, partial and corrupted trees, and `ammpl-data fake`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _datasets_helpers import snapshot, tree_fixture

from ammpl.data.check import DATASET_STEMS, check_dataset
from ammpl.data.cli import main
from ammpl.data.fixtures import make_fixture

tree = tree_fixture()


def test_check_on_a_complete_tree_passes_and_writes_nothing(tree, capsys):
    before = snapshot(tree.root)
    assert main(["check", "--root", str(tree.root), "--decode"]) == 0
    out = capsys.readouterr().out
    assert out.count(" present ") == len(DATASET_STEMS)
    assert "15 present, 0 missing, 0 broken" in out
    assert snapshot(tree.root) == before


def test_check_accepts_config_stems_and_reports_only_those(tree, capsys):
    assert main(["check", "--root", str(tree.root), "dtd", "imagenet_a"]) == 0
    out = capsys.readouterr().out
    assert "DescribableTextures" in out and "ImageNetA" in out and "Food101" not in out


def test_check_reports_a_missing_dataset_folder(tmp_path, capsys):
    make_fixture(tmp_path, ["Caltech101"])
    assert main(["check", "--root", str(tmp_path), "Caltech101", "OxfordPets"]) == 1
    out = capsys.readouterr().out
    assert "Caltech101           present" in out
    assert f"OxfordPets           missing  {tmp_path / 'oxford_pets'}" in out
    assert "fix: download images.tar.gz and annotations.tar.gz" in out


def test_check_reports_a_split_entry_without_image_with_its_line(tmp_path):
    make_fixture(tmp_path, ["SUN397"])
    split_path = tmp_path / "sun397" / "split_zhou_SUN397.json"
    relpath = json.loads(split_path.read_text())["val"][1][0]
    (tmp_path / "sun397" / "SUN397" / relpath).unlink()
    line = split_path.read_text().splitlines().index(f'            "{relpath}",') + 1
    report = check_dataset(str(tmp_path), "SUN397")
    assert report.status == "broken"
    assert (
        f"1 of 50 listed images are missing: {tmp_path}/sun397/SUN397/{relpath}"
        in report.problems[0]
    )
    assert f"split_zhou_SUN397.json:{line})" in report.problems[0]
    assert "SUN397.tar.gz" in report.fixes[0]


def test_check_finds_a_truncated_jpeg_only_when_decoding(tmp_path, capsys):
    make_fixture(tmp_path, ["FGVCAircraft"])
    victim = next((tmp_path / "fgvc_aircraft" / "images").glob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:200])
    assert check_dataset(str(tmp_path), "FGVCAircraft").status == "present"
    assert main(["check", "--root", str(tmp_path), "fgvc_aircraft", "--decode"]) == 1
    out = capsys.readouterr().out
    assert "1 of 50 images cannot be decoded" in out and victim.name in out
    assert "images_variant_" in out and "DATASET.SKIP_BAD_IMAGES" in out


def test_check_names_a_missing_annotation_file(tmp_path):
    make_fixture(tmp_path, ["StanfordCars"], with_split_files=False)
    (tmp_path / "stanford_cars" / "devkit" / "cars_meta.mat").unlink()
    report = check_dataset(str(tmp_path), "StanfordCars")
    assert report.status == "broken" and "devkit/cars_meta.mat" in report.problems[0]


def test_check_notes_an_absent_split_file_but_passes(tmp_path):
    make_fixture(tmp_path, ["UCF101"], with_split_files=False)
    report = check_dataset(str(tmp_path), "UCF101")
    assert report.status == "present" and report.num_images == 50
    assert "split_zhou_UCF101.json is absent" in report.notes[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "--root", "{tmp}", "Food102"], 'Unknown dataset "Food102". Did you mean'),
        (["check", "--root", "{tmp}/nowhere"], "does not exist"),
        (["fake", "--root", "{tmp}", "--per-class", "2"], "n_per_class >= 4"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_fake_writes_checkable_data_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["fake", "--root", str(tmp_path), "eurosat", "ImageNetR", "--classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "EuroSAT" in out and "(3 classes, 15/6/9)" in out
    assert main(["check", "--root", str(tmp_path), "EuroSAT", "ImageNetR"]) == 0
    capsys.readouterr()
    assert main(["fake", "--root", str(tmp_path), "EuroSAT"]) == 2
    assert "Refusing to write fake data" in capsys.readouterr().err
    assert main(["fake", "--root", str(tmp_path), "EuroSAT", "--force", "--no-split-files"]) == 0


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ammpl.data.cli", "check", "--root", str(tmp_path), "dtd"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "DescribableTextures  missing" in result.stdout


def original_imagenetv2_items(dataset_dir) -> list[tuple[str, int, str]]:
    """What the original CoOp reader does: the 1000 folders 0 … 999, each named by its line
    of classnames.txt (`<wnid> <name>`, read into a wnid-keyed ordered dict)."""
    import os

    names = {}
    for line in (dataset_dir / "classnames.txt").read_text().splitlines():
        wnid, name = line.strip().split(" ", 1)
        names[wnid] = name
    classnames = list(names.values())
    image_dir = dataset_dir / "imagenetv2-matched-frequency-format-val"
    items = []
    for label in range(1000):
        folder = image_dir / str(label)
        for file in sorted(f for f in os.listdir(folder) if not f.startswith(".")):
            items.append((str(folder / file), label, classnames[label]))
    return items


def test_fake_imagenetv2_is_readable_by_the_original_reader(tmp_path):
    from ammpl.data.registry import build_dataset
    from ammpl.engine.config import get_cfg_default

    assert main(["fake", "--root", str(tmp_path), "imagenetv2", "--classes", "3"]) == 0
    dataset_dir = tmp_path / "imagenetv2"
    folders = sorted(
        p.name for p in (dataset_dir / "imagenetv2-matched-frequency-format-val").iterdir()
    )
    assert folders == sorted(str(i) for i in range(1000))
    lines = (dataset_dir / "classnames.txt").read_text().splitlines()
    assert len(lines) == 1000 and len({line.split(" ", 1)[0] for line in lines}) == 1000
    original = original_imagenetv2_items(dataset_dir)
    assert {label for _, label, _ in original} == {0, 1, 2}
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME = str(tmp_path), "ImageNetV2"
    ours = build_dataset(cfg)
    assert sorted((d.impath, d.label, d.classname) for d in ours.test) == sorted(original)
    assert len(ours.classnames) == 3
