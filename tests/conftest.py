"""Session-wide test setup: offline, a private HOME, and shared fixture data.

Everything runs on the tiny random CLIP (`MODEL.BACKBONE.NAME tiny`) and on fixture
datasets written to temporary folders in the exact on-disk layout of the real ones.

`make test` runs the suite on pytest-xdist workers (`-n logical --dist loadfile`); plain
`pytest` runs it in one process. Each worker is a process of its own with its own
temporary folders (`tmp_path_factory`), so the session fixtures below (HOME, data, the
warm `python`) are built once per worker and never shared: nothing here needs a lock.
Each test file runs on one worker, so a module-scoped fixture is still built once.
(Not `--dist loadgroup`: with pytest >= 9.2 it silently stops grouping,
pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Never touch the network or the user's caches from a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.pop("AMMPL_CLIP_PATH", None)


def _share_cores_between_workers() -> None:
    """Under xdist, give each worker its share of the cores (before torch is imported, and
    for the processes the tests start): N workers of all-core thread pools would fight."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        os.environ["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // int(workers)))


_share_cores_between_workers()


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory):
    """A throw-away HOME so caches (~/.cache/clip, ~/.cache/ammpl) never leak between runs."""
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    yield home
    if old is not None:
        os.environ["HOME"] = old


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def benchmark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny copies of every benchmark dataset (5 classes, 10 images each)."""
    from ammpl.data.fixtures import make_fixture

    root = tmp_path_factory.mktemp("benchmarks")
    make_fixture(root)
    return root


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in demo data, generated once per session."""
    return tmp_path_factory.mktemp("shapes_data")


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MiniColors dataset of the mini benchmark, built once per session."""
    from ammpl.mini.benchmark import build_benchmark

    root = tmp_path_factory.mktemp("mini_data")
    build_benchmark(str(root), ["MiniColors"], log=lambda _: None)
    return root


@pytest.fixture(scope="session")
def fast_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`$PYTHON` for scripts and train.py calls: a launcher talking to a warm fork server
    (tests/_baselines_script_server.py), so no call pays for importing torch again."""
    from tests import _baselines_script_server as script_server

    with script_server.warm_python(str(tmp_path_factory.mktemp("python"))) as launcher:
        yield launcher


@pytest.fixture
def sweep(capfd):
    """ammpl-sweep in this process from `cwd`: (exit code, stdout, stderr)."""

    def call(cwd: Path, *args: str) -> tuple[int, str, str]:
        from ammpl.sweep import cli

        here = os.getcwd()
        os.chdir(cwd)
        try:
            code = cli.main(list(args))
        finally:
            os.chdir(here)
        out, err = capfd.readouterr()
        return code, out, err

    return call
