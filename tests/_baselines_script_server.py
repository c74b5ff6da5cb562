"""A pre-warmed `python` for shell-script tests: train.py runs without paying for imports.

The protocol scripts call `"$PYTHON" train.py ARGS` (and `"$PYTHON" -c CODE` for small
checks). Importing torch and open_clip takes seconds per call, which would make testing
every script end to end too slow. This module is both halves of a small fork server:

- `serve(socket_path)`: imports the heavy modules once, then for every request forks a
  child that takes over the caller's stdin/stdout/stderr (passed as file descriptors),
  working directory, environment and argv, and runs train.py as `__main__`;
- `client(socket_path, args)`: what `$PYTHON` points to (through `write_launcher`). For
  `train.py` it forwards the call and exits with the child's exit code; anything else
  (`-c CODE`, other files) runs in the real interpreter.

The scripts themselves run unmodified: bash, argument parsing, skip logic and train.py's
whole command line are exercised; only interpreter start-up is shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import traceback

HEADER = struct.Struct("!Q")


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(size)
        if not chunk:
            raise ConnectionError("client went away")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the caller's process and run the script."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    code = 0
    try:
        import runpy

        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001  (report everything, as the interpreter would)
        traceback.print_exc()
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(HEADER.pack(code))
        os._exit(code)


def serve(socket_path: str) -> None:
    import open_clip  # noqa: F401
    import torch  # noqa: F401

    import ammpl.cli.train  # noqa: F401
    import ammpl.data.datasets  # noqa: F401
    import ammpl.trainers  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        request = json.loads(_read_exactly(conn, HEADER.unpack(header)[0]))
        if os.fork() == 0:
            server.close()
            _run_child(conn, request, fds)
        for fd in fds:
            os.close(fd)
        conn.close()


def client(socket_path: str, args: list[str]) -> int:
    if not args or not args[0].endswith("train.py"):
        os.execv(sys.executable, [sys.executable, *args])
    payload = json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(socket_path)
        socket.send_fds(conn, [HEADER.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
        reply = conn.recv(HEADER.size)
    return HEADER.unpack(reply)[0] if len(reply) == HEADER.size else 1


def write_launcher(path: str, socket_path: str) -> str:
    """An executable to use as $PYTHON: forwards to `client` with this interpreter."""
    with open(path, "w") as handle:
        handle.write(
            f'#!/bin/sh\nexec "{sys.executable}" "{os.path.abspath(__file__)}" '
            f'client "{socket_path}" "$@"\n'
        )
    os.chmod(path, 0o755)
    return path


if __name__ == "__main__":
    mode, path, *rest = sys.argv[1:]
    if mode == "serve":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        serve(path)
    else:
        sys.exit(client(path, rest))


@contextlib.contextmanager
def warm_python(folder: str):
    """A `$PYTHON` launcher for the scripts, backed by a warm fork server (torch imported once)."""
    import subprocess

    socket_path = os.path.join(folder, "server.sock")
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", socket_path], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        yield write_launcher(os.path.join(folder, "python"), socket_path)
    finally:
        server.terminate()
        server.wait(timeout=10)
