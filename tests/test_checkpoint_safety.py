"""Loading a checkpoint never runs code from it; Dassl/CoOp checkpoints still load."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from test_cli_train import TINY, assert_one_line_error, cli_error, common_args
from torch import nn

from ammpl.engine.checkpoint import TRUST_ENV, load_checkpoint
from ammpl.utils.errors import CheckpointError


class _RunsCommand:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(path, marker, dassl_content=False):
    state = {"state_dict": {"ctx": torch.zeros(2, 4)}, "epoch": 1, "payload": _RunsCommand(marker)}
    if dassl_content:
        state.update(val_result=np.float64(71.5), dtype=np.dtype("float32"))
    torch.save(state, path)
    return path


class _DasslStyleWarmup(torch.optim.lr_scheduler.LRScheduler):
    """Dassl's `_BaseWarmupScheduler` keeps its successor as an attribute, so its
    `state_dict()` (torch's default) pickles the successor scheduler and its optimizer."""

    def __init__(self, optimizer, successor, warmup_epoch, cons_lr):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        self.cons_lr = cons_lr
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]


def dassl_checkpoint(path):
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9, weight_decay=5e-4)
    successor = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 50)
    scheduler = _DasslStyleWarmup(optimizer, successor, 1, 1e-5)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {
        "state_dict": model.state_dict(),
        "epoch": 2,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "val_result": np.float64(71.5),
    }
    torch.save(state, path)
    return state


@pytest.fixture(autouse=True)
def untrusted(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


@pytest.mark.parametrize("dassl_content", [False, True])
def test_crafted_checkpoint_does_not_run(tmp_path, dassl_content):
    marker = tmp_path / "ran"
    path = crafted_checkpoint(tmp_path / "model.pth.tar-1", marker, dassl_content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "system" in message and TRUST_ENV in message


def test_trusting_a_file_loads_it_fully(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "ran"
    path = crafted_checkpoint(tmp_path / "model.pth.tar-1", marker)
    monkeypatch.setenv(TRUST_ENV, "1")
    load_checkpoint(path)
    assert marker.exists()  # the user asked for it: the file's code ran
    assert TRUST_ENV in capsys.readouterr().out
    marker.unlink()
    monkeypatch.delenv(TRUST_ENV)
    load_checkpoint(path, trust=True)
    assert marker.exists()


def test_dassl_format_checkpoint_loads_without_trust(tmp_path):
    path = tmp_path / "model.pth.tar-2"
    saved = dassl_checkpoint(path)
    loaded = load_checkpoint(path)
    assert loaded["val_result"] == 71.5 and loaded["epoch"] == 2
    successor = loaded["scheduler"]["successor"]
    assert isinstance(successor, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert successor.T_max == 50
    assert successor.last_epoch == saved["scheduler"]["successor"].last_epoch
    assert isinstance(successor.optimizer, torch.optim.SGD)
    assert loaded["optimizer"]["param_groups"] == saved["optimizer"]["param_groups"]
    for key, value in saved["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value)


def test_numpy_1_scalar_name_is_accepted(tmp_path):
    """Files written under numpy 1 name `numpy.core.multiarray.scalar`."""
    path = tmp_path / "old.pth.tar"
    torch.save({"val_result": np.float64(3.5)}, path)
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    pickled = next(name for name in entries if name.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in entries[pickled]
    entries[pickled] = entries[pickled].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    assert load_checkpoint(path)["val_result"] == 3.5


def test_eval_only_refuses_a_crafted_checkpoint(repo_root, benchmark_root, fast_python, tmp_path):
    model_dir = tmp_path / "trained"
    (model_dir / "prompt_learner").mkdir(parents=True)
    marker = tmp_path / "ran"
    crafted_checkpoint(model_dir / "prompt_learner" / "model.pth.tar-1", marker)
    (model_dir / "prompt_learner" / "checkpoint").write_text("model.pth.tar-1\n")
    out = tmp_path / "eval"
    args = common_args(repo_root, benchmark_root, "caltech101", out, "CoOp")
    args += ["--eval-only", "--model-dir", model_dir, "--load-epoch", 1] + TINY
    result = cli_error(args, repo_root, fast_python)
    assert_one_line_error(result, "Refusing to load", "system", TRUST_ENV)
    assert not marker.exists()
