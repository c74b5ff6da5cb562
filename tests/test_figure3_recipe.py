"""Figure 3 (issue 9, item 20): `ammpl-viz masks` labels rows by class and by the image's path
under the data root, draws a legend, says which classes it drew and how many epochs a run
has; the fake-data recipe of docs/REPRODUCING.md runs as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from ammpl.cli.viz import main as viz_main
from ammpl.data.cli import main as data_main
from ammpl.trainers.ammpl.viz import image_labels, legend_text


def recipe_commands(repo_root: Path) -> list[str]:
    """The fake-data block of the Figure 3 section, one string per command."""
    text = (repo_root / "docs" / "REPRODUCING.md").read_text()
    section = text.split("## Figure 3: mask pictures", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    fake = [block for block in blocks if "ammpl-data fake" in block]
    assert len(fake) == 1
    return [line for line in fake[0].replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def recipe_run(repo_root, fast_python, tmp_path_factory):
    """Run the block from a fresh folder (scripts, configs and train.py linked in)."""
    work = tmp_path_factory.mktemp("figure3")
    for name in ("scripts", "configs", "train.py"):
        (work / name).symlink_to(repo_root / name)
    fake, train, viz = recipe_commands(repo_root)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert fake.startswith("ammpl-data ")
        assert data_main(shlex.split(fake)[1:]) == 0
        env = dict(os.environ, PYTHON=fast_python, OMP_NUM_THREADS="1")
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {train}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        os.chdir(cwd)
    assert viz.startswith("ammpl-viz ")
    return work, done.stdout, shlex.split(viz)[1:]


class DrawnFigures:
    """The figures `ammpl-viz` saves: row labels and legend texts."""

    def __init__(self, monkeypatch) -> None:
        self.labels: list[list[str]] = []
        self.legends: list[list[str]] = []
        original = Figure.savefig

        def record(figure, *args, **kwargs):
            self.labels.append([ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()])
            self.legends.append([t.get_text() for lg in figure.legends for t in lg.get_texts()])
            return original(figure, *args, **kwargs)

        monkeypatch.setattr(Figure, "savefig", record)


def test_the_fake_data_recipe_runs_as_written(recipe_run, monkeypatch, capsys):
    work, train_out, viz_args = recipe_run
    assert "Notice: DATASET.NUM_SHOTS is 16" in train_out
    drawn = DrawnFigures(monkeypatch)
    monkeypatch.chdir(work)
    assert viz_main(viz_args) == 0, capsys.readouterr().err
    out = Path(viz_args[viz_args.index("--out") + 1])
    assert (work / out).stat().st_size > 0
    assert drawn.labels[0] == [
        "class: airplane\nairplanes/image_0001.jpg",
        "class: face\nairplanes/image_0001.jpg",
        "class: airplane\nFaces/image_0001.jpg",
        "class: face\nFaces/image_0001.jpg",
    ]
    assert drawn.legends[0] == [legend_text("threshold")]


def test_the_recipe_writes_only_under_the_ignored_output_folder(repo_root, recipe_run, monkeypatch):
    """Issue 20, item 5: no fake_data/ or figures/ left untracked in a clone."""
    work, _, viz_args = recipe_run
    monkeypatch.chdir(work)
    assert viz_main(viz_args) == 0
    assert sorted(p.name for p in work.iterdir()) == ["configs", "output", "scripts", "train.py"]
    assert (work / viz_args[viz_args.index("--out") + 1]).is_file()
    ignored = (repo_root / ".gitignore").read_text().splitlines()
    assert "/output/" in ignored


def test_without_classes_it_says_which_it_drew(recipe_run, monkeypatch, capsys):
    work, _, viz_args = recipe_run
    monkeypatch.chdir(work)
    at = viz_args.index("--classes")
    args = viz_args[:at] + viz_args[at + 3 :] + ["--mode", "expected"]
    drawn = DrawnFigures(monkeypatch)
    assert viz_main(args) == 0
    out = capsys.readouterr().out
    assert "Drew the first 4 of 5 classes (0 face, 1 leopard, 2 accordion, 3 airplane)" in out
    assert "--classes" in out
    assert drawn.legends[0] == [legend_text("expected")] and "1 − P" in drawn.legends[0][0]


def test_an_untrained_epoch_says_how_many_epochs_the_run_has(recipe_run, monkeypatch, capsys):
    work, _, viz_args = recipe_run
    monkeypatch.chdir(work)
    at = viz_args.index("--epochs")
    args = viz_args[: at + 1] + ["2", "7"] + viz_args[at + 4 :]
    assert viz_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "No checkpoint for epoch(s) [7]" in err
    assert "the run has 5 epochs (1–5)" in err and "saved: 1, 2, 3, 4, 5" in err
    model_dir = work / viz_args[viz_args.index("--model-dir") + 1]
    assert json.loads((model_dir / "results.json").read_text())["max_epoch"] == 5


def test_labels_tell_two_files_of_the_same_name_apart(tmp_path):
    paths = [str(tmp_path / "data" / c / "image_0001.jpg") for c in ("a", "b")]
    assert image_labels(paths) == ["a/image_0001.jpg", "b/image_0001.jpg"]
    assert image_labels(paths, tmp_path) == ["data/a/image_0001.jpg", "data/b/image_0001.jpg"]
    assert image_labels(paths[:1]) == ["image_0001.jpg"]
    assert image_labels(paths, tmp_path / "elsewhere") == ["a/image_0001.jpg", "b/image_0001.jpg"]
