"""scripts/mini/paper.sh: the AMMPL paper in miniature, planned, run and reported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from ammpl.paper.plan import QUICK_DATASETS, QUICK_METHODS, PaperSettings, plan

TITLES = ("Table 1", "Table 2", "Domain generalisation", "Table 3", "Figure 2", "Figure 3")
# A miniature paper: 2 datasets (the DG source and one target), AMMPL only, 1 seed, 1 epoch,
# 1 shot, one ablation row: 16 runs.
MINIATURE = ["--datasets", "mini_objects", "mini_objects_v2", "--methods", "ammpl",
             "--seeds", "1", "--epochs", "1", "--shots", "1", "--combos", "C1+C2+C3"]  # fmt: skip


def paper(repo_root, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        ["bash", str(repo_root / "scripts/mini/paper.sh"), *args],
        capture_output=True, text=True, env=environment, check=False,
    )  # fmt: skip


def by_section(stdout: str) -> dict[str, list[str]]:
    """The train.py commands the dry run lists under each section title."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in stdout.splitlines():
        if line.startswith("## "):
            current = line[3:]
            sections[current] = []
        elif "train.py" in line and not line.startswith("#"):
            sections[current].append(line)
    return sections


def test_dry_run_lists_every_table_and_figure_without_data(repo_root, tmp_path):
    result = paper(repo_root, "--dry-run", "--out", str(tmp_path / "paper"),
                   "--datasets", "mini_objects", "mini_objects_v2", "--seeds", "1",
                   "--shots", "4", "--methods", "ammpl", "dlp", "dpt", "coop")  # fmt: skip
    assert result.returncode == 0, result.stderr
    sections = by_section(result.stdout)
    for title in TITLES:
        (name,) = [s for s in sections if s.startswith(title)]
        assert sections[name], f"{name}: no runs listed"
    assert not (tmp_path / "paper").exists()  # a dry run writes nothing
    table1 = sections[next(s for s in sections if s.startswith("Table 1"))]
    assert any("SUBSAMPLE_CLASSES new" in c and "ZeroshotCLIP" in c for c in table1)
    assert any("IVLP/mini_language_only.yaml" in c for c in table1)  # DLP, not a second IVLP
    dg = sections[next(s for s in sections if s.startswith("Domain"))]
    assert any("--eval-only" in c and "mini_objects_v2.yaml" in c for c in dg)
    table3 = sections[next(s for s in sections if s.startswith("Table 3"))]
    assert len(table3) == 4 * 2 and all("CLASS_SPECIFIC True" in c for c in table3)
    figure2 = sections["Figure 2: few-shot curves"]
    dpt = [c for c in figure2 if "--trainer DPT" in c]
    assert dpt and all(c.rsplit("OPTIM.MAX_EPOCH", 1)[1].split()[0] == "10" for c in dpt)
    assert any("--trainer CoOp" in c and "CoOp/mini.yaml" in c for c in figure2)
    (figure3,) = sections["Figure 3: AMMPL's masks over training"]
    assert "TRAIN.CHECKPOINT_FREQ 1" in figure3 and "figure3" in figure3


def test_quick_is_one_seed_of_fewer_datasets_and_methods(tmp_path):
    sections = plan(PaperSettings(out=str(tmp_path), data=str(tmp_path), seeds=(1,), quick=True))
    calls = [call for section in sections for call in section.calls]
    assert calls and all(call.seeds == (1,) for call in calls)
    assert {m for call in calls for m in call.methods} <= {*QUICK_METHODS, "zsclip"}
    table1 = sections[0]
    assert table1.datasets == QUICK_DATASETS


def test_unknown_dataset_or_method_is_one_line(repo_root, tmp_path):
    for option, value in (("--datasets", "mini_nothing"), ("--methods", "coprompt")):
        result = paper(repo_root, "--dry-run", "--out", str(tmp_path), option, value)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


@pytest.fixture(scope="module")
def miniature(repo_root, tmp_path_factory):
    """One miniature paper (data built by the command itself); (out, first call)."""
    out = tmp_path_factory.mktemp("paper")
    first = paper(repo_root, "--out", str(out), *MINIATURE)
    return out, first


def test_miniature_paper_writes_a_report_with_every_section(miniature):
    out, first = miniature
    assert first.returncode == 0, first.stderr[-3000:]
    report = (out / "report.md").read_text()
    for title in TITLES:
        assert f"## {title}" in report
    assert "## Masks on background" in report
    for kind in ("b2n", "xd", "ablation", "fewshot"):
        assert f"ammpl-results table {kind} " in report
    for protocol in ("base2new", "xd", "ablation", "fewshot", "zeroshot"):
        assert f"CFG=mini ammpl-sweep {protocol} " in report
    assert "No table yet" not in report
    assert re.search(r"\| AMMPL +\| 1×4 +\|", report)  # the budget beside the numbers
    assert len(re.findall(r"\| ZS-CLIP +\| 0 ", report)) >= 2  # Table 1 and the DG table
    assert report.count("wall time: ") == len(TITLES)
    for name in ("mini_objects", "mini_objects_v2"):
        assert (out / "figure2" / f"{name}.png").stat().st_size > 0
        assert f"](figure2/{name}.png)" in report
    pictures = sorted((out / "figure3").glob("masks_*.png"))
    assert len(pictures) == 4 and all(f"](figure3/{p.name})" in report for p in pictures)
    assert (out / "data" / "mini_objects" / "masks").is_dir()  # the command built the data
    masks = report.split("## Masks on background")[1]
    assert re.search(r"\| few-shot \| MiniObjects \| 1 \| 1 \| \d", masks)
    assert "| base-to-new (base classes) | MiniObjectsV2 | 16 | 1 |" in masks
    assert "Figure 3's run, epoch by epoch:" in masks and "| 1 | 0." in masks


def test_running_the_paper_again_skips_every_finished_run(repo_root, miniature):
    out, first = miniature
    assert first.returncode == 0, first.stderr[-3000:]
    made = json.loads((out / "timings.json").read_text())
    again = paper(repo_root, "--out", str(out), *MINIATURE)
    assert again.returncode == 0, again.stderr[-3000:]
    assert " 0 finished now" in again.stderr and "run 1/" not in again.stderr
    timings = json.loads((out / "timings.json").read_text())
    for key, record in timings.items():
        assert record["last_call_runs_made"] == 0
        assert record["wall_s"] == made[key]["wall_s"]  # the time it took stays reported
    assert "the latest call found every run finished" in (out / "report.md").read_text()
