"""Logger tee, precision modes, meters, seeding and RNG capture."""

from __future__ import annotations

import io
import random
import re
import sys

import numpy as np
import pytest
import torch

from ammpl.engine import (
    AverageMeter,
    MetricMeter,
    collect_env_info,
    count_num_param,
    set_random_seed,
    setup_logger,
)
from ammpl.engine import precision as precision_module
from ammpl.engine.logger import close_logger, terminal_stream
from ammpl.engine.precision import (
    autocast_context,
    make_grad_scaler,
    needs_grad_scaler,
    param_dtype,
    resolve_precision,
)
from ammpl.engine.utils import capture_rng_state, restore_rng_state
from ammpl.utils.errors import ConfigError


@pytest.fixture
def streams(monkeypatch):
    """Replace stdout/stderr inside the test body (pytest resets them between phases)."""

    def install():
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        return out, err

    yield install
    close_logger()


def test_logger_tees_stdout_and_stderr(tmp_path, streams):
    out, err = streams()
    session = setup_logger(tmp_path / "run")
    assert setup_logger(tmp_path / "run") is session  # idempotent
    print("to stdout")
    print("to stderr", file=sys.stderr)
    assert terminal_stream() is err
    close_logger()
    assert sys.stdout is out and sys.stderr is err
    assert (tmp_path / "run" / "log.txt").read_text() == "to stdout\nto stderr\n"
    assert out.getvalue() == "to stdout\n" and err.getvalue() == "to stderr\n"
    print("after close")
    assert "after close" not in (tmp_path / "run" / "log.txt").read_text()


def test_logger_appends_with_separator(tmp_path, streams):
    streams()
    log = tmp_path / "log.txt"
    log.write_text("first run, no newline at the end")
    setup_logger(tmp_path)
    print("second run")
    close_logger()
    lines = log.read_text().splitlines()
    assert lines[0] == "first run, no newline at the end"
    assert re.fullmatch(r"==== new run \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ====", lines[1])
    assert lines[2:] == ["second run"]
    assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]


def test_logger_switches_files(tmp_path, streams):
    streams()
    setup_logger(tmp_path / "a.txt")
    print("one")
    setup_logger(tmp_path / "b.log")
    print("two")
    close_logger()
    assert (tmp_path / "a.txt").read_text() == "one\n"
    assert (tmp_path / "b.log").read_text() == "two\n"
    assert setup_logger("") is None


def test_precision_on_cpu(capsys, monkeypatch):
    monkeypatch.setattr(precision_module, "_NOTIFIED", set())
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("amp", "cpu") == "fp32"
    assert resolve_precision("amp", "cpu") == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp32"
    notices = capsys.readouterr().out.splitlines()
    assert notices == [
        'Note: PREC "amp" needs a CUDA device; running in fp32 on cpu',
        'Note: PREC "fp16" needs a CUDA device; running in fp32 on cpu',
    ]
    assert param_dtype("fp16", "cpu") == torch.float32
    assert not needs_grad_scaler("amp", "cpu") and make_grad_scaler("amp", "cpu") is None
    layer = torch.nn.Linear(4, 4)
    with autocast_context("bf16", "cpu"):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast_context("amp", "cpu"):
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ConfigError, match="did you mean 'fp16'"):
        resolve_precision("fp61", "cpu")


def test_precision_on_cuda_device_names():
    # decisions only; no CUDA tensors are created
    assert resolve_precision("amp", "cuda") == "amp" and needs_grad_scaler("amp", "cuda")
    assert param_dtype("fp16", "cuda") == torch.float16
    assert param_dtype("amp", "cuda") == torch.float32
    assert not needs_grad_scaler("bf16", "cuda") and not needs_grad_scaler("fp16", "cuda")


def test_meters():
    meter = AverageMeter()
    meter.update(2.0)
    meter.update(torch.tensor(4.0), n=3)
    assert (meter.val, meter.avg, meter.count) == (4.0, 3.5, 4)
    metrics = MetricMeter()
    metrics.update({"loss": 1.5, "acc": torch.tensor(50.0)})
    metrics.update({"loss": 0.5, "acc": 100.0})
    assert str(metrics) == "loss 0.5000 (1.0000) acc 100.0000 (75.0000)"
    with pytest.raises(TypeError):
        metrics.update([1.0])


def test_seed_and_rng_capture_restore():
    set_random_seed(3)
    state = capture_rng_state()
    first = (random.random(), float(np.random.rand()), torch.rand(1).item(), np.random.randn())
    set_random_seed(99)
    restore_rng_state(state)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item(), np.random.randn()) == (
        first
    )
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True))
    assert random.random() == first[0]


def test_count_num_param_and_env_info():
    model = torch.nn.Linear(3, 2)
    assert count_num_param(model) == 8
    assert count_num_param(params=[{"params": [model.weight]}, model.bias]) == 8
    info = collect_env_info()
    assert info.splitlines()[1] == f"PyTorch: {torch.__version__}"
    assert "open_clip:" in info and "CUDA:" in info
