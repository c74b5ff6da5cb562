"""bench/gpu_check.sh without a GPU: the script parses and lists its steps within the time
budget, refuses to run without CUDA, and its summary is built from real (CPU, tiny) bench
records, a pytest JUnit report and the step log."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from bench import ammpl_step, clip_encoders, methods_step
from bench.gpu_summary import build_summary
from bench.records import count_flops, write_records

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"
STEPS = ["cuda_tests", "clip_encoders", "methods_fp16", "methods_bf16", "ammpl_step", "ddp"]


def test_script_parses_and_its_steps_fit_in_eight_minutes():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == STEPS + ["summary", "predicted"]
    limits = [int(m) for m in re.findall(r"\(≤\s*(\d+)s\)", done.stdout)]
    assert len(limits) == len(STEPS) and sum(limits) < 8 * 60
    assert "-m cuda" in lines[0] and "--backbone vit_b16" in lines[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the check would run")
def test_script_without_a_gpu_is_a_one_line_error(tmp_path):
    python = tmp_path / "python"  # answers the script's torch.cuda.device_count() query
    python.write_text("#!/bin/sh\necho 0\n")
    python.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(python), "GPU_CHECK_OUT": str(tmp_path / "out")}
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, cwd=REPO, timeout=60, env=env
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: no CUDA GPU is visible")
    assert not (tmp_path / "out").exists()


def test_flops_of_a_linear_layer():
    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    assert count_flops(lambda: layer(x)) == 2 * 2 * 4 * 3


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
errors="0" failures="1" skipped="2" tests="66" time="123.4"></testsuite></testsuites>"""


def test_summary_from_real_bench_records(tmp_path):
    out = tmp_path / "gpu_check"
    common = ["--json"]
    assert clip_encoders.main(["--batch", "1", "--iters", "1", *common, str(out / "ce.json")]) == 0
    methods_step.main(
        ["--iters", "1", "--methods", "ZS-CLIP", "CoOp", "--eval-batch", "2", "--threads", "1"]
        + [*common, str(out / "methods_step_fp32.json")]
    )
    ammpl_args = ["--classes", "2", "--repeats", "1", "--min-seconds", "0", "--threads", "1"]
    assert ammpl_step.main([*ammpl_args, *common, str(out / "ammpl_step.json")]) == 0
    ddp_row = {
        "processes": [1, 2],
        "seconds": [20.0, 12.5],
        "max_rel_diff": 3e-6,
        "metrics": [{}, {}],
        "ok": True,
    }
    write_records(
        str(out / "ddp.json"), "ddp_check", torch.device("cpu"), {"backend": "nccl"}, [ddp_row]
    )
    (out / "cuda_tests.xml").write_text(JUNIT)
    (out / "steps.tsv").write_text("cuda_tests\t1\t130\nclip_encoders\t0\t12\nddp\t124\t90\n")

    table = build_summary(out)
    lines = table.splitlines()
    assert lines[0].startswith("Device: ") and "torch" in lines[0]
    assert lines[2] == "| check | case | precision | time | images/s | peak memory | TFLOP/s |"
    rows = [line.split(" | ") for line in lines[4:]]
    assert all(len(row) == 7 for row in rows)
    assert "| CUDA tests | 63 passed, 1 failed, 2 skipped | fp16 / amp / bf16 | 123 s |" in table
    image = [row for row in rows if row[0] == "| tiny image forward" and "fused=on" in row[1]]
    assert image and float(image[0][6].rstrip(" |")) > 0  # achieved TFLOP/s
    assert any("CoOp (train batch 32, eval 2)" in row[1] and "ms" in row[3] for row in rows)
    assert any(row[1].startswith("k = 2, fast path") for row in rows)
    assert "1 vs 2 processes (nccl): same weights and metrics" in table
    assert "cuda_tests: FAILED (exit 1)" in table and "ddp: FAILED (exit 124)" in table
