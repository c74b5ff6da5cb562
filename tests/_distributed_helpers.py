"""Run `ammpl-train` as the ranks of a torchrun job, cheaply: forked processes with torchrun's
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) that call the same
`main()` torchrun's workers would, without paying for a fresh interpreter and imports.

Every rank can record every file they open for writing, rename or delete under given
folders (through a Python audit hook), so a test can check that rank 0 alone writes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _writes_recorder(watched: list[str], found: list[str]):
    def is_watched(path) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        path = os.path.abspath(os.fsdecode(path))
        return any(path.startswith(folder) for folder in watched)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and is_watched(args[0]):
            mode, flags = args[1], args[2]
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
            if writes or (isinstance(flags, int) and flags & WRITE_FLAGS):
                found.append(f"open {os.fsdecode(args[0])}")
        elif event in ("os.rename", "os.remove", "os.mkdir", "shutil.rmtree") and is_watched(
            args[0]
        ):
            found.append(f"{event} {os.fsdecode(args[0])}")

    return hook


def _rank_main(
    rank: int,
    world_size: int,
    port: int,
    argv: list[str],
    watched: list[str],
    report: str,
    prepare: Callable[[], None] | None,
) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    import torch

    torch.set_num_threads(1)
    found: list[str] = []
    if watched:
        sys.addaudithook(_writes_recorder([os.path.abspath(w) for w in watched], found))
    code = 1
    try:
        from ammpl.cli.train import main

        if prepare is not None:
            prepare()
        code = main(argv)
    except BaseException:  # os._exit below would swallow the traceback
        traceback.print_exc()
    finally:
        if report:
            with open(f"{report}.rank{rank}.json", "w", encoding="utf-8") as handle:
                json.dump(found, handle)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_ranks(
    world_size: int,
    argv: list,
    watched: list[Path] = (),
    report: Path | None = None,
    timeout: float = 120,
    prepare: Callable[[], None] | None = None,
) -> list[int]:
    """Exit codes of `world_size` ranks running `ammpl-train argv` as one torchrun job;
    `prepare()` runs in each rank first (e.g. to register a trainer only the ranks see)."""
    context = multiprocessing.get_context("fork")
    port = free_port()
    args = [str(a) for a in argv]
    procs = [
        context.Process(
            target=_rank_main,
            args=(
                rank,
                world_size,
                port,
                args,
                [str(w) for w in watched],
                str(report or ""),
                prepare,
            ),
        )
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return [proc.exitcode for proc in procs]


def recorded_writes(report: Path, rank: int) -> list[str]:
    return json.loads(Path(f"{report}.rank{rank}.json").read_text())
