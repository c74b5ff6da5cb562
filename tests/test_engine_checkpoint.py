"""Checkpoint files: Dassl's format, atomic writes, and one-line errors for bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from ammpl.engine import (
    load_checkpoint,
    load_pretrained_weights,
    resume_from_checkpoint,
    save_checkpoint,
)
from ammpl.engine.checkpoint import (
    load_state_dict_checked,
    missing_checkpoint_error,
    saved_epochs,
)
from ammpl.utils.errors import CheckpointError


def small_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def state_for(model, epoch, optimizer=None):
    return {
        "state_dict": model.state_dict(),
        "epoch": epoch,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": None,
        "val_result": None,
    }


def no_temp_files(folder):
    return not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_save_writes_file_pointer_and_best_copy(tmp_path, capsys):
    model = small_model()
    path = save_checkpoint(state_for(model, 3), tmp_path / "m", is_best=True)
    assert path == str(tmp_path / "m" / "model.pth.tar-3")
    assert sorted(os.listdir(tmp_path / "m")) == [
        "checkpoint",
        "model-best.pth.tar",
        "model.pth.tar-3",
    ]
    assert (tmp_path / "m" / "checkpoint").read_text() == "model.pth.tar-3\n"
    out = capsys.readouterr().out
    assert f"Checkpoint saved to {path}" in out and "Best checkpoint saved to" in out
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["state_dict"][key], value)
    assert load_checkpoint(tmp_path / "m" / "model-best.pth.tar")["epoch"] == 3
    assert no_temp_files(tmp_path / "m")


def test_named_save_and_module_prefix(tmp_path):
    wrapped = {"module.0.weight": torch.ones(3, 4), "head.bias": torch.zeros(2)}
    state = {"state_dict": wrapped, "epoch": 1}
    save_checkpoint(state, tmp_path, model_name="model-best.pth.tar")
    loaded = load_checkpoint(tmp_path / "model-best.pth.tar")
    assert set(loaded["state_dict"]) == {"0.weight", "head.bias"}
    assert set(state["state_dict"]) == {"module.0.weight", "head.bias"}  # caller's dict untouched
    assert (tmp_path / "checkpoint").read_text() == "model-best.pth.tar\n"


def test_interrupted_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    model = small_model()
    save_checkpoint(state_for(model, 1), tmp_path, model_name="model.pth.tar-1")
    before = (tmp_path / "model.pth.tar-1").read_bytes()

    real_save = torch.save

    def dying_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state_for(model, 1), tmp_path, model_name="model.pth.tar-1")
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "model.pth.tar-1").read_bytes() == before
    assert no_temp_files(tmp_path)


def test_missing_checkpoint():
    with pytest.raises(CheckpointError, match="No checkpoint at /nowhere/model.pth.tar-5"):
        load_checkpoint("/nowhere/model.pth.tar-5")
    with pytest.raises(CheckpointError, match="No checkpoint path given"):
        load_checkpoint("")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_or_truncated_checkpoint(tmp_path, damage):
    path = save_checkpoint(state_for(small_model(), 2), tmp_path)
    data = open(path, "rb").read()
    broken = {"truncate": data[: len(data) // 2], "garbage": b"\x80not a pickle", "empty": b""}
    with open(path, "wb") as handle:
        handle.write(broken[damage])
    size = len(broken[damage])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"Checkpoint {path} is corrupt or truncated ({size:,} bytes): delete it and re-run training"
    )


def test_numpy_scalars_load_without_full_unpickling(tmp_path):
    path = tmp_path / "dassl.pth.tar"
    torch.save({"state_dict": {}, "epoch": 5, "val_result": np.float64(71.5)}, path)
    loaded = load_checkpoint(path)
    assert loaded["val_result"] == 71.5 and loaded["epoch"] == 5


def test_resume_from_checkpoint_restores_model_and_optimizer(tmp_path, capsys):
    model = small_model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(state_for(model, 7, optimizer), tmp_path)

    fresh = small_model(1)
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    assert resume_from_checkpoint(tmp_path, fresh, fresh_optimizer) == 7
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    buffers = [s["momentum_buffer"] for s in fresh_optimizer.state_dict()["state"].values()]
    assert len(buffers) == 4
    assert (
        f'Successfully loaded checkpoint "{tmp_path / "model.pth.tar-7"}"'
        in capsys.readouterr().out
    )


def test_resume_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint pointer file"):
        resume_from_checkpoint(tmp_path, small_model())
    (tmp_path / "checkpoint").write_text("\n")
    with pytest.raises(CheckpointError, match="is empty"):
        resume_from_checkpoint(tmp_path, small_model())
    save_checkpoint(state_for(small_model(), 1), tmp_path)
    other = nn.Sequential(nn.Linear(4, 5))
    with pytest.raises(CheckpointError, match="shape mismatch in 0.weight"):
        resume_from_checkpoint(tmp_path, other)


def test_load_state_dict_checked_messages():
    model = small_model()
    state = dict(model.state_dict())
    state.pop("2.bias")
    state["extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_checked(model, state, "f.pth")
    assert "missing keys 2.bias; unexpected keys extra" in str(info.value)
    subset = {k: v for k, v in small_model(3).state_dict().items() if k.startswith("2.")}
    load_state_dict_checked(model, subset, required_keys=["2.weight", "2.bias"])
    assert torch.equal(model.state_dict()["2.bias"], subset["2.bias"])


def test_load_pretrained_weights(tmp_path, capsys):
    source = small_model(0)
    state = {k: v for k, v in source.state_dict().items()}
    state["0.weight"] = torch.zeros(7, 7)  # wrong shape: discarded
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    target = small_model(1)
    loaded = load_pretrained_weights(target, tmp_path / "w.pth")
    assert sorted(loaded) == ["0.bias", "2.bias", "2.weight"]
    assert torch.equal(target.state_dict()["2.weight"], source.state_dict()["2.weight"])
    assert "Layers discarded due to unmatched keys or size: ['0.weight']" in capsys.readouterr().out
    torch.save({"other": torch.zeros(1)}, tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="No tensor in .* matches the model"):
        load_pretrained_weights(target, tmp_path / "none.pth")


def test_missing_checkpoint_error_lists_saved_epochs(tmp_path):
    folder = tmp_path / "prompt_learner"
    for epoch in (2, 10):
        save_checkpoint(state_for(small_model(), epoch), folder)
    assert saved_epochs(folder) == [2, 10]
    message = str(missing_checkpoint_error(folder / "model.pth.tar-5"))
    assert message == (
        f"No checkpoint at {folder / 'model.pth.tar-5'}; saved epochs there: 2, 10 "
        "(pass --load-epoch 10)"
    )
    assert "does not exist" in str(missing_checkpoint_error(tmp_path / "x" / "model.pth.tar-1"))
