"""One run folder, one writer (ammpl/utils/run_lock.py): a second train.py on a held folder
stops at once and changes nothing; a lock whose holder is gone is taken over; the holder
keeps a heartbeat; `ammpl-sweep` counts a run held elsewhere as skipped, not failed."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ammpl.cli.train import main
from ammpl.engine.logger import close_logger
from ammpl.sweep.executors import LocalExecutor
from ammpl.sweep.plan import Run
from ammpl.sweep.runner import ELSEWHERE, FINISHED, SweepRunner
from ammpl.utils.run_lock import LOCK_FILE, RunLock, RunLockedError, read_holder

TINY = ["MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1"]


def coop_args(repo_root: Path, root, out) -> list[str]:
    return [
        "--root", str(root), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(repo_root / "configs/datasets/caltech101.yaml"),
        "--config-file", str(repo_root / "configs/trainers/CoOp/vit_b16_ep50.yaml"),
        "--output-dir", str(out),
    ]  # fmt: skip


def write_lock(folder: Path, host: str, pid: int, age_s: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    started = time.time() - age_s
    path.write_text(json.dumps({"host": host, "pid": pid, "started": started}))
    os.utime(path, (started, started))
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_second_run_on_a_held_folder_stops_and_changes_nothing(
    repo_root, benchmark_root, tmp_path, capsys
):
    out = tmp_path / "run"
    args = coop_args(repo_root, benchmark_root, out) + TINY
    assert main(args) == 0  # a finished run: log.txt, checkpoints, results.json
    close_logger()  # as when that process ended
    assert not (out / LOCK_FILE).exists()  # released at the end
    capsys.readouterr()
    with RunLock(str(out)):  # this process now holds the folder, as a running run would
        before = snapshot(out)
        assert main([*args[:-2], "OPTIM.MAX_EPOCH", "2"]) == 2
        assert snapshot(out) == before  # no log line appended, no checkpoint written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"host {socket.gethostname()}, pid {os.getpid()}, started " in err[0]
    assert LOCK_FILE in err[0]  # and how to clear it by hand


def test_an_eval_into_a_held_folder_is_refused(repo_root, benchmark_root, tmp_path, capsys):
    out = tmp_path / "train"
    write_lock(out, socket.gethostname(), os.getpid())
    args = [*coop_args(repo_root, benchmark_root, out), "--eval-only", "--model-dir", str(out)]
    assert main(args + TINY) == 2
    assert "is being written by another run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]


def test_a_lock_whose_process_is_gone_is_taken_over(repo_root, benchmark_root, tmp_path, capsys):
    out = tmp_path / "run"
    write_lock(out, socket.gethostname(), dead_pid())
    assert main(coop_args(repo_root, benchmark_root, out) + TINY) == 0
    text = capsys.readouterr().out
    assert "taking over the lock of a run that is gone" in text and "no longer runs" in text
    assert (out / "results.json").is_file() and not (out / LOCK_FILE).exists()


def test_another_hosts_lock_is_stale_only_without_heartbeat(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    write_lock(folder, "node-17", 4242, age_s=60)  # heartbeat a minute ago: alive
    with pytest.raises(RunLockedError, match="host node-17, pid 4242"):
        RunLock(str(folder)).acquire()
    monkeypatch.setenv("AMMPL_LOCK_TIMEOUT_S", "30")  # now a minute is too long
    notices = []
    lock = RunLock(str(folder), say=notices.append)
    lock.acquire()
    try:
        assert "no heartbeat for 60 s (timeout 30 s)" in notices[0]
        assert read_holder(str(folder)).pid == os.getpid()
    finally:
        lock.release()
    assert not (folder / LOCK_FILE).exists()


def test_a_reused_pid_does_not_keep_a_lock(tmp_path):
    path = write_lock(tmp_path, socket.gethostname(), os.getpid())
    data = json.loads(path.read_text())
    data["process_start"] = "1"  # this pid belonged to a process that started at boot
    path.write_text(json.dumps(data))
    assert read_holder(str(tmp_path)).stale_reason() is not None


def test_the_holder_refreshes_its_heartbeat(tmp_path):
    lock = RunLock(str(tmp_path), heartbeat_s=0.05)
    lock.acquire()
    try:
        path = tmp_path / LOCK_FILE
        os.utime(path, (time.time() - 600, time.time() - 600))
        deadline = time.time() + 5
        while time.time() - path.stat().st_mtime > 60 and time.time() < deadline:
            time.sleep(0.05)
        assert time.time() - path.stat().st_mtime < 60
    finally:
        lock.release()


def test_sigterm_releases_the_lock(tmp_path, repo_root):
    code = (
        "import sys, time\n"
        "from ammpl.cli.train import hold_output_folder\n"
        "with hold_output_folder(sys.argv[1], None):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "held"
    assert (tmp_path / LOCK_FILE).exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_sweep_skips_runs_held_elsewhere(tmp_path):
    """A folder held before the sweep starts the run, and a run that stopped because another
    process took its folder meanwhile, are skipped (with who holds them), not failed; a run
    that needs one of them waits for a later sweep."""
    held, late, free = tmp_path / "held", tmp_path / "late", tmp_path / "free"
    write_lock(held, socket.gethostname(), os.getpid())
    take = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
    runs = [
        Run(0, ["bash", "-c", "exit 3"], str(held)),
        Run(1, ["bash", "-c", f"mkdir -p {late}; echo '{take}' > {late / LOCK_FILE}; exit 2"],
            str(late)),
        Run(2, ["bash", "-c", "true"], str(free)),
        Run(3, ["bash", "-c", "true"], str(tmp_path / "eval"), [1]),
    ]  # fmt: skip
    runner = SweepRunner(runs, LocalExecutor([], cpu_slots=1), str(tmp_path / "logs"),
                         str(tmp_path), poll_s=0.02, stream=io.StringIO())  # fmt: skip
    summary = runner.run()
    assert [s.state for s in summary.statuses] == [ELSEWHERE, ELSEWHERE, FINISHED, ELSEWHERE]
    assert summary.ok and summary.statuses[0].attempts == 0
    text = "\n".join(summary.lines)
    assert f"skipped: {held} (running elsewhere: host {socket.gethostname()}, pid" in text
    assert "needs " in text and "3 skipped (running elsewhere)" in text and "0 failed" in text


def test_under_torchrun_only_rank_0_takes_the_lock(tmp_path):
    from ammpl.cli.train import hold_output_folder
    from ammpl.engine.distributed import RankInfo

    write_lock(tmp_path, socket.gethostname(), os.getpid())  # held (by "rank 0")
    with hold_output_folder(str(tmp_path), RankInfo(1, 2, 1)):
        pass  # the other ranks neither check nor take it
    with pytest.raises(RunLockedError), hold_output_folder(str(tmp_path), RankInfo(0, 2, 0)):
        pass
