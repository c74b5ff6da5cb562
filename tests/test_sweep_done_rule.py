"""The "already finished" rule (ammpl/sweep/done.py), alone and through scripts/common.sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ammpl.sweep.done import (
    DONE,
    PENDING,
    RunConflictError,
    check_folder,
    parse_train_args,
    requested_settings,
    run_state,
)

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "configs/trainers/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc.yaml"
DTD = REPO / "configs/datasets/dtd.yaml"
TINY = ["MODEL.BACKBONE.NAME", "tiny", "OPTIM.MAX_EPOCH", "1"]


def command(
    folder: Path, *opts: str, config: Path = CFG, seed: int = 1, flags: tuple = ()
) -> list[str]:
    return [*flags, "--root", "/data", "--seed", str(seed), "--trainer", "AMMPL",
            "--dataset-config-file", str(DTD), "--config-file", str(config),
            "--output-dir", str(folder), "DATASET.NUM_SHOTS", "2", *opts]  # fmt: skip


def record_run(folder: Path, argv: list[str], finished: bool = True, **extra) -> None:
    """A results.json as train.py writes it for `argv`."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "trainer": "AMMPL",
        "backbone": {"name": "tiny", "source": "random:tiny (seed 0)"},
        "settings": requested_settings(parse_train_args(argv)),
        "results": {"test": {"accuracy": 50.0}} if finished else {},
        **extra,
    }
    (folder / "results.json").write_text(json.dumps(record))


def test_same_settings_done_and_unfinished_pending(tmp_path):
    run = tmp_path / "run"
    assert run_state(command(run, *TINY)) == PENDING  # nothing there
    record_run(run, command(run, *TINY), finished=False)
    assert run_state(command(run, *TINY)) == PENDING
    record_run(run, command(run, *TINY))
    assert run_state(command(run, *TINY)) == DONE
    # the data root and the loader workers do not change a result
    other_root = command(run, *TINY, "DATALOADER.NUM_WORKERS", "0")
    other_root[1] = "/elsewhere"
    assert run_state(other_root) == DONE


def test_a_trial_run_blocks_the_real_one_with_one_line(tmp_path):
    run = tmp_path / "run"
    record_run(run, command(run, *TINY))
    with pytest.raises(RunConflictError) as error:
        run_state(command(run))
    message = str(error.value)
    assert "backbone (MODEL.BACKBONE.NAME): tiny there, ViT-B/16 requested" in message
    assert "use another OUTPUT_ROOT or delete that folder" in message and "\n" not in message
    with pytest.raises(RunConflictError, match="seed"):
        run_state(command(run, *TINY, seed=2))
    with pytest.raises(RunConflictError, match="OPTIM.LR: 0.0035 there, 0.01 requested"):
        run_state(command(run, *TINY, "OPTIM.LR", "0.01"))
    with pytest.raises(RunConflictError, match="OPTIM.MAX_EPOCH"):
        run_state(command(run, "MODEL.BACKBONE.NAME", "tiny"))


def test_an_unfinished_run_with_other_settings_is_an_error_too(tmp_path):
    run = tmp_path / "run"
    record_run(run, command(run, *TINY), finished=False)
    with pytest.raises(RunConflictError):  # resuming it would load the trial's checkpoint
        run_state(command(run))


def test_config_compared_by_content_not_path(tmp_path):
    run = tmp_path / "run"
    record_run(run, command(run, *TINY))
    moved = tmp_path / "moved.yaml"
    shutil.copy(CFG, moved)
    assert run_state(command(run, *TINY, config=moved)) == DONE
    moved.write_text(CFG.read_text().replace("MAX_EPOCH: 5", "MAX_EPOCH: 7"))
    with pytest.raises(RunConflictError, match="OPTIM.MAX_EPOCH"):
        run_state(command(run, "MODEL.BACKBONE.NAME", "tiny", config=moved))


def test_an_override_equal_to_the_config_value_is_the_same_setting(tmp_path):
    run = tmp_path / "run"
    record_run(run, command(run, *TINY))
    same = command(run, *TINY, "OPTIM.LR", "0.0035", "DATASET.SUBSAMPLE_CLASSES", "all")
    assert run_state(same) == DONE
    # YAML reads `WARMUP_CONS_LR: 1e-5` as text, the override as a number: still equal
    assert run_state(command(run, *TINY, "OPTIM.WARMUP_CONS_LR", "1e-5")) == DONE


def test_evaluations_compare_the_model_folder_relative_to_the_run(tmp_path):
    def evaluation(root: Path, epoch: str = "1") -> list[str]:
        flags = ("--eval-only", "--model-dir", str(root / "train"), "--load-epoch", epoch)
        return command(root / "eval", *TINY, flags=flags)

    record_run(tmp_path / "a" / "eval", evaluation(tmp_path / "a"))
    shutil.move(tmp_path / "a", tmp_path / "b")  # the whole output tree moved
    assert run_state(evaluation(tmp_path / "b")) == DONE
    with pytest.raises(RunConflictError, match="load-epoch: 1 there, 2 requested"):
        run_state(evaluation(tmp_path / "b", "2"))


def test_fallback_and_older_records(tmp_path):
    run = tmp_path / "run"
    argv = command(run)  # ViT-B/16 asked, the demo fallback trained the tiny one
    record_run(run, argv, backbone={"name": "tiny", "source": "random:tiny (fallback: x)"})
    with pytest.raises(RunConflictError, match="backbone weights"):
        run_state(argv)
    legacy = {"trainer": "AMMPL", "seed": 1, "num_shots": 2, "backbone": {"name": "tiny"},
              "results": {"test": {"accuracy": 1.0}}}  # fmt: skip
    (run / "results.json").write_text(json.dumps(legacy))
    with pytest.raises(RunConflictError, match="backbone"):
        run_state(argv)
    assert run_state(command(run, *TINY)) == DONE
    assert check_folder(str(run), None) == DONE  # no request: the test result alone


def test_scripts_use_the_rule(repo_root, tmp_path):
    """scripts/common.sh: skip the same run, refuse a folder holding another one."""
    folder = tmp_path / "output/dtd/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc_2shots/seed1"
    data = tmp_path / "data"
    data.mkdir()
    argv = ["--root", str(data), "--seed", "1", "--trainer", "AMMPL", "--dataset-config-file",
            str(repo_root / "configs/datasets/dtd.yaml"), "--config-file", str(CFG),
            "--output-dir", str(folder), "DATASET.NUM_SHOTS", "2", *TINY]  # fmt: skip
    record_run(folder, argv)
    env = {**os.environ, "DATA": str(data), "PYTHON": sys.executable}

    def fewshot(*opts: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(repo_root / "scripts/ammpl/fewshot.sh"), "dtd", "2", "1", *opts],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    same = fewshot(*TINY)
    assert same.returncode == 0 and "Skip this job" in same.stdout
    real = fewshot()
    assert real.returncode == 2 and len(real.stderr.strip().splitlines()) == 1
    assert "holds a run with other settings (backbone" in real.stderr


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_rule_sits_below_train_py_and_the_sweep():
    """train.py records the settings and the sweep compares them: both import the rule from
    `ammpl.utils.run_settings`, so train.py never reaches up into `ammpl.sweep`."""
    train = _imported_modules(REPO / "ammpl/cli/train.py")
    assert not [m for m in train if m.startswith("ammpl.sweep")]
    assert "ammpl.utils.run_settings" in train
    rule = _imported_modules(REPO / "ammpl/utils/run_settings.py")
    assert {m for m in rule if m.startswith("ammpl")} <= {"ammpl.utils.errors", "ammpl.utils.io"}
