"""`make demo` (ammpl.cli.demo): base-to-new on a mini dataset, one fallback notice, re-use.

The full demo (five methods, shipped demo configs) is what docs/MINI.md and the README time;
here a cut-down copy (zero-shot and CoOp, 4 shots, 2 epochs) checks the mechanics: the
table, the notice printed once per demo when ViT-B/16's weights are absent, and that a
second call re-uses the finished runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ammpl.cli import demo
from ammpl.clip import weights


def _quick_runs(repo_root: Path, tmp_path: Path) -> tuple:
    config = yaml.safe_load((repo_root / "configs/trainers/CoOp/mini.yaml").read_text())
    config["OPTIM"]["MAX_EPOCH"] = 2
    quick = tmp_path / "coop_quick.yaml"
    quick.write_text(yaml.safe_dump(config))
    return (
        ("Zero-shot CLIP", "ZeroshotCLIP", str(quick)),
        ("CoOp", "CoOp", str(quick)),
    )


def _no_weights():
    raise weights.WeightsNotFoundError("not found", ["path argument", "AMMPL_CLIP_PATH"])


def test_demo_prints_the_table_with_one_notice_and_reuses_runs(
    repo_root, mini_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(demo, "DEMO_RUNS", _quick_runs(repo_root, tmp_path))
    monkeypatch.setattr(demo, "SHOTS", 4)
    monkeypatch.setattr(demo, "find_real_weights", _no_weights)
    args = ["--root", str(mini_root), "--output-dir", str(tmp_path / "out")]
    assert demo.main(args) == 0
    first = capsys.readouterr().out
    assert first.count("weights not found") == 1
    assert "running the demo on `mini`" in first
    rows = {line.split()[0]: line for line in first.splitlines() if re.match(r"(Zero|CoOp)", line)}
    zero_shot = [float(x) for x in re.findall(r"\d+\.\d\d", rows["Zero-shot"])]
    coop = [float(x) for x in re.findall(r"\d+\.\d\d", rows["CoOp"])]
    base, novel, hm = coop[:3]
    assert abs(hm - 2 * base * novel / (base + novel)) < 0.01
    assert zero_shot[0] > 100 / 6  # the mini backbone is not at chance on the base classes
    run_dir = tmp_path / "out" / "mini" / demo.run_folder_tag("mini")
    assert (run_dir / "CoOp" / "new" / "results.json").is_file()

    assert demo.main(args) == 0  # finished runs are re-used: same numbers
    second = capsys.readouterr().out
    again = next(line for line in second.splitlines() if line.startswith("CoOp "))
    assert [float(x) for x in re.findall(r"\d+\.\d\d", again)] == coop


def test_runs_of_another_data_version_or_weights_are_not_reused(monkeypatch):
    from ammpl.mini import benchmark, model

    tag = demo.run_folder_tag("mini")
    assert tag.startswith(f"data-v{benchmark.GENERATOR_VERSION}") and model.MINI_WEIGHTS_HASH in tag
    assert demo.run_folder_tag("ViT-B/16") == f"data-v{benchmark.GENERATOR_VERSION}"
    monkeypatch.setattr(benchmark, "GENERATOR_VERSION", benchmark.GENERATOR_VERSION + 1)
    assert demo.run_folder_tag("mini") != tag
    monkeypatch.setattr(model, "MINI_WEIGHTS_HASH", "0" * 16)
    assert "0" * 16 in demo.run_folder_tag("mini")


def test_demo_backbone_override_skips_the_weights_lookup(monkeypatch):
    monkeypatch.setattr(demo, "find_real_weights", _no_weights)
    assert demo.choose_backbone("mini") == ("mini", [])
    name, overrides = demo.choose_backbone("ViT-B/16")
    assert name == "ViT-B/16" and overrides[-1] == "(224, 224)"
