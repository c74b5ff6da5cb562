"""`ammpl-sweep` end to end on fixture data with the tiny backbone, and its runner.

Runs start through `$PYTHON`, here a warm fork server (tests/_baselines_script_server.py),
so each run pays no interpreter start-up; the sweep itself, the per-method scripts it
expands and every train.py command line run unmodified.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ammpl.results.collect import collect_runs
from ammpl.results.render import render
from ammpl.results.tables import base_to_new_table
from ammpl.sweep import cli
from ammpl.sweep.executors import LocalExecutor, Request
from ammpl.sweep.plan import Run, SweepSpec, expand, method_steps
from ammpl.sweep.runner import BLOCKED, FAILED, FINISHED, PENDING, SweepRunner

QUICK = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


def script(repo_root: Path, cwd: Path, name: str, *args, env: dict) -> None:
    result = subprocess.run(
        ["bash", str(repo_root / "scripts" / name), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def b2n_table(root: Path) -> str:
    return render(base_to_new_table(collect_runs(str(root)), seeds=(1, 2)), "md")


def test_sweep_on_two_slots_matches_the_scripts_and_resumes(
    repo_root, benchmark_root, fast_python, tmp_path, sweep
):
    common = ["base2new", "--methods", "ammpl", "--datasets", "caltech101", "--seeds", "1", "2"]
    common += ["--data", str(benchmark_root), "--python", fast_python, "--output-root", "out"]
    code, out, err = sweep(tmp_path, *common, "--gpus", "none", "--slots", "2", "--", *QUICK)
    assert code == 0, err[-3000:]
    assert "run 4/4:" in err and "4 finished now" in err
    assert "| Caltech101" in out  # the base-to-new table of the sweep's runs

    # the same runs, one after the other, through the per-method scripts
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": "seq"}
    for seed in (1, 2):
        script(repo_root, tmp_path, "ammpl/base2new_train.sh", "caltech101", seed, *QUICK, env=env)
        script(repo_root, tmp_path, "ammpl/base2new_test.sh", "caltech101", seed, *QUICK, env=env)
    table = b2n_table(tmp_path / "out")
    assert table == b2n_table(tmp_path / "seq")
    assert table in out

    again = sweep(tmp_path, *common, "--", *QUICK)
    assert again[0] == 0 and "4 run(s) already finished" in again[2]
    assert "run 1/" not in again[2] and "0 finished now, 4 already finished" in again[2]

    # a folder holding these runs refuses a request with other settings, before anything runs
    other = sweep(tmp_path, *common, "--", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1")
    assert other[0] == 2 and len(other[2].strip().splitlines()) == 1
    assert "backbone (MODEL.BACKBONE.NAME): tiny there" in other[2]


def test_dry_run_lists_commands_folders_and_states(benchmark_root, tmp_path, sweep):
    code, out, err = sweep(
        tmp_path, "fewshot", "--methods", "ammpl", "maple", "--datasets", "dtd", "--seeds", "1",
        "--shots", "2", "--data", str(benchmark_root), "--output-root", "o", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    commands = out.strip().splitlines()
    assert len(commands) == 2 and all("train.py" in c for c in commands)
    assert "[pending] o/dtd/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc_2shots/seed1" in err
    assert not (tmp_path / "o").exists()


def test_runs_wait_for_the_runs_whose_folders_they_read(benchmark_root, tmp_path):
    """PLOT++ stage 2 (PRETRAIN_DIR inside the stage-1 folder) and a base-to-new evaluation
    (--model-dir) start only after the run they read from."""
    spec = SweepSpec(
        protocol="fewshot", methods=["plotpp"], data=str(benchmark_root),
        output_root=str(tmp_path / "o"), datasets=["dtd"], seeds=[1, 2], shots=[1],
    )  # fmt: skip
    runs = expand(spec)
    folders = [Path(run.output_dir).relative_to(tmp_path / "o").as_posix() for run in runs]
    assert folders == [
        "dtd/PLOTPP/vit_1shots/vision_M4/seed1",
        "dtd/PLOTPP/vit_1shots/joint_M4/seed1",
        "dtd/PLOTPP/vit_1shots/joint_M4/seed2",
    ]
    assert [run.depends_on for run in runs] == [[], [0], [0]]

    spec = SweepSpec(
        protocol="base2new", methods=["kgcoop"], data=str(benchmark_root),
        output_root=str(tmp_path / "o"), datasets=["dtd"], seeds=[1],
    )  # fmt: skip
    assert [run.depends_on for run in expand(spec)] == [[], [0]]


def test_a_failing_run_is_retried_then_reported(fast_python, tmp_path, sweep):
    empty = tmp_path / "no_data"
    (empty / "dtd").mkdir(parents=True)  # the folder is there (checked before the runs), empty
    code, _, err = sweep(
        tmp_path, "fewshot", "--methods", "ammpl", "--datasets", "dtd", "--seeds", "1",
        "--shots", "1", "--data", str(empty), "--python", fast_python, "--retries", "1",
        "--gpus", "none", "--", *QUICK,
    )  # fmt: skip
    assert code == 1
    assert "retry 1/1" in err and "after 2 attempt(s)" in err
    assert "DescribableTextures: expected images in" in err  # the tail of the run's log


# --- the runner alone, on plain commands -------------------------------------------------


def shell_run(index: int, folder: Path, code: str, depends_on=()) -> Run:
    return Run(index, ["bash", "-c", code], str(folder), list(depends_on))


def test_retry_succeeds_and_dependents_wait(tmp_path):
    marker = tmp_path / "tried"
    flaky = f"[ -e {marker} ] || {{ touch {marker}; echo first try fails; exit 3; }}"
    runs = [
        shell_run(0, tmp_path / "a", flaky),
        shell_run(1, tmp_path / "b", f"test -e {marker}", depends_on=[0]),
        shell_run(2, tmp_path / "c", "echo boom; exit 4"),
        shell_run(3, tmp_path / "d", "true", depends_on=[2]),
    ]
    stream = io.StringIO()
    runner = SweepRunner(runs, LocalExecutor([], cpu_slots=2), str(tmp_path / "logs"),
                         str(tmp_path), retries=1, poll_s=0.02, stream=stream)  # fmt: skip
    summary = runner.run()
    progress = stream.getvalue()
    assert "run 1/4: " in progress and "retry 1/1" in progress
    assert "running" in progress and "pending" in progress and ", ETA " in progress
    assert [s.state for s in summary.statuses] == [FINISHED, FINISHED, FAILED, BLOCKED]
    assert [s.attempts for s in summary.statuses] == [2, 1, 2, 0]
    text = "\n".join(summary.lines)
    assert "boom" in text and "exit code 4 after 2 attempt(s)" in text
    assert "not run: " in text and not summary.ok


def test_gpu_slots_get_their_own_device(tmp_path):
    executor = LocalExecutor(["3", "5"], per_gpu=2)
    assert executor.capacity == 4
    log = tmp_path / "log.txt"
    request = Request(["bash", "-c", "echo dev=$CUDA_VISIBLE_DEVICES"], str(tmp_path), str(log))
    jobs = executor.submit([request] * 3)
    while any(executor.poll(j) is None for j in jobs):
        time.sleep(0.01)
    assert sorted(line for line in log.read_text().splitlines() if line.startswith("dev=")) == [
        "dev=3",
        "dev=3",
        "dev=5",
    ]


class _InterruptAfterStart(LocalExecutor):
    def poll(self, handle):
        raise KeyboardInterrupt


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "background"])
def test_ctrl_c_ends_running_runs(tmp_path, sigint_ignored):
    # "background": a sweep started with `nohup … &` has SIGINT ignored, and its children
    # would inherit that; the runs must still end at once when the sweep is interrupted.
    import signal

    runs = [shell_run(i, tmp_path / str(i), "sleep 30") for i in range(3)]
    executor = _InterruptAfterStart([], cpu_slots=2)
    runner = SweepRunner(runs, executor, str(tmp_path / "logs"), str(tmp_path), poll_s=0.01)
    start = time.time()
    previous = signal.getsignal(signal.SIGINT)
    if sigint_ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        summary = runner.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert summary.interrupted and time.time() - start < 20
    assert [s.state for s in summary.statuses] == [PENDING] * 3
    started = [s.handle.process for s in summary.statuses if s.handle is not None]
    assert len(started) == 2 and all(p.poll() is not None for p in started)
    assert "run the same command again to resume" in summary.lines[-1]


# --- cluster executors -------------------------------------------------------------------


def zeroshot_args(benchmark_root, fast_python, *datasets: str) -> list[str]:
    return [
        "zeroshot", "--methods", "zsclip", "--datasets", *(datasets or ["dtd"]),
        "--data", str(benchmark_root),
        "--python", fast_python, "--output-root", "out", "--gpus-per-run", "0",
    ]  # fmt: skip


def test_submitit_executor_with_its_local_cluster(benchmark_root, fast_python, tmp_path, sweep):
    pytest.importorskip("submitit")
    args = [*zeroshot_args(benchmark_root, fast_python, "dtd", "eurosat"), "--executor", "slurm"]
    args += ["--slurm-cluster", "local", "--time", "10", "--", *QUICK]
    code, out, err = sweep(tmp_path, *args)
    assert code == 0, err[-3000:]
    for dataset in ("dtd", "eurosat"):
        assert (tmp_path / f"out/ZeroshotCLIP/vit_b16/{dataset}/results.json").is_file()
    assert "[job " in err and "2 finished now" in err and "| DTD" in out
    again = sweep(tmp_path, *args)
    assert again[0] == 0 and "2 run(s) already finished" in again[2]


def test_ready_runs_go_to_slurm_as_one_job_array(tmp_path):
    pytest.importorskip("submitit")
    from contextlib import contextmanager

    from ammpl.sweep.slurm import SlurmExecutor

    calls = []

    class Recorder:  # stands in for submitit.AutoExecutor on a Slurm cluster
        @contextmanager
        def batch(self):
            calls.append("batch")
            yield
            calls.append("sent")

        def submit(self, task):
            calls.append(task.command[0])
            return task

    executor = SlurmExecutor(str(tmp_path), cluster="local")
    executor.executor = Recorder()
    requests = [Request([name], str(tmp_path), "log") for name in ("a", "b", "c")]
    executor.submit(requests)
    assert calls == ["batch", "a", "b", "c", "sent"]


def test_submitit_requeues_the_same_run(tmp_path):
    pytest.importorskip("submitit")
    from ammpl.sweep.slurm import SweepTask

    task = SweepTask(["true"], str(tmp_path), str(tmp_path / "log"))
    resubmission = task.checkpoint()
    assert resubmission.function is task  # the same command into the same folder: resumes


def test_ray_executor_on_a_local_ray(benchmark_root, fast_python, tmp_path, sweep):
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[cluster]'")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        args = [*zeroshot_args(benchmark_root, fast_python), "--executor", "ray"]
        code, out, err = sweep(tmp_path, *args, "--", *QUICK)
    finally:
        ray.shutdown()
    assert code == 0, err[-3000:]
    assert "1 finished now" in err and "| DTD" in out
    assert (tmp_path / "out/ZeroshotCLIP/vit_b16/dtd/results.json").is_file()


def test_a_missing_extra_is_one_line(benchmark_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    monkeypatch.delitem(sys.modules, "ammpl.sweep.ray_executor", raising=False)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["zeroshot", "--methods", "zsclip", "--datasets", "dtd", "--data",
                     str(benchmark_root), "--executor", "ray"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "needs the 'ray' package" in err and ".[cluster]" in err


def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DATA", raising=False)
    assert cli.main(["fewshot", "--methods", "ammpl"]) == 2
    assert "DATA is not set" in capsys.readouterr().err
    assert cli.main(["ablation", "--methods", "maple", "--data", str(tmp_path)]) == 2
    assert "no ablation runs for METHOD 'maple'" in capsys.readouterr().err
    assert cli.main(["fewshot", "--methods", "nope", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    listed = err.split("fewshot methods: ")[1].split()
    assert "unknown METHOD 'nope'" in err
    assert {"coop", "plot", "plotpp", "prograd", "tcp"} <= set(listed)


def test_run_all_wraps_the_sweep(repo_root, benchmark_root, fast_python, tmp_path):
    """scripts/run_all.sh: one run at a time, "run i/N" before each, a summary at the end."""
    env = {**os.environ, "DATA": str(benchmark_root), "PYTHON": fast_python,
           "OUTPUT_ROOT": "out", "DATASETS": "dtd eurosat"}  # fmt: skip
    result = subprocess.run(
        ["bash", str(repo_root / "scripts/run_all.sh"), "zeroshot", "zsclip", *QUICK],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run 1/2: out/ZeroshotCLIP/vit_b16/dtd" in result.stderr
    assert "run 2/2: out/ZeroshotCLIP/vit_b16/eurosat" in result.stderr
    assert "sweep of 2 run(s)" in result.stderr and "2 finished now" in result.stderr
    assert "| DTD" in result.stdout and "| EuroSAT" in result.stdout


class _Refusing(LocalExecutor):
    def submit(self, requests):
        raise RuntimeError("sbatch: error: invalid partition specified: gpu-big\nmore")


def test_a_refused_submission_is_one_line(tmp_path):
    from ammpl.sweep.runner import SubmitError

    runner = SweepRunner([shell_run(0, tmp_path / "a", "true")], _Refusing([]),
                         str(tmp_path / "logs"), str(tmp_path), stream=io.StringIO())  # fmt: skip
    with pytest.raises(SubmitError, match="could not start 1 run.*invalid partition specified"):
        runner.run()


def test_help_names_every_method_with_scripts(repo_root):
    """`--methods` help is read from scripts/*/fewshot.sh, so a new method shows up there;
    run_all.sh's usage text names each too."""
    text = " ".join(cli.build_parser().format_help().split())
    methods = {p.parent.name for p in (repo_root / "scripts").glob("*/fewshot.sh")}
    methods.discard("protocols")
    assert {"vp", "dpt", "plot", "plotpp", "promptsrc", "kgcoop"} <= methods
    assert all(f" {m} " in text for m in methods)
    assert "fewshot only: vp dpt plot plotpp;" in text
    header = (repo_root / "scripts" / "run_all.sh").read_text().split("# Env")[0]
    assert methods <= set(re.findall(r"[a-z]+", header))


def test_config_family_options_reach_the_coop_and_zeroshot_steps(tmp_path):
    """--coop-cfg picks CoOp's epoch-by-shots family, --zs-cfg the zero-shot config."""
    args = cli.build_parser().parse_args(
        ["fewshot", "--methods", "coop", "--datasets", "dtd", "imagenet", "--shots", "1", "2",
         "8", "--seeds", "1", "--coop-cfg", "rn50", "--zs-cfg", "rn101", "--data", str(tmp_path)]
    )  # fmt: skip
    spec = cli.spec_from_args(args)
    configs = [(s.args[0], s.args[1]) for s in method_steps(spec, "coop")]
    assert configs == [
        ("dtd", "rn50_ep50"), ("dtd", "rn50_ep100"), ("dtd", "rn50"),
        ("imagenet", "rn50_ep50"), ("imagenet", "rn50_ep50"), ("imagenet", "rn50_ep50"),
    ]  # fmt: skip
    spec.protocol = "zeroshot"
    assert [s.args[:2] for s in method_steps(spec, "zsclip")] == [
        ["dtd", "rn101"],
        ["imagenet", "rn101"],
    ]


def test_log_dir_and_no_table(benchmark_root, fast_python, tmp_path, sweep):
    """`--log-dir` puts each run's log where asked; `--no-table` skips the closing table,
    which a second call (everything already finished) prints."""
    logs = tmp_path / "my_logs"
    args = (
        "fewshot", "--methods", "ammpl", "--datasets", "dtd", "--seeds", "1", "--shots", "1",
        "--data", str(benchmark_root), "--python", fast_python, "--gpus", "none",
        "--log-dir", str(logs),
    )  # fmt: skip
    code, out, _ = sweep(tmp_path, *args, "--no-table", "--", *QUICK)
    assert code == 0
    (log,) = logs.rglob("*.log")
    assert "accuracy" in log.read_text()
    assert not (tmp_path / "output" / ".sweep").exists()
    assert "|" not in out
    code, out, _ = sweep(tmp_path, *args, "--", *QUICK)
    assert code == 0 and "|" in out
