"""Child processes of the test servers under scripts/ (the ACME CA, the edge): a free loopback port, a process that
is stopped when its block ends, and a wait that fails early when the process dies."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

# Local ports stay below Linux's ephemeral range (docs/conventions.md, "Ports").
PORT_RANGE = (20000, 32767)
STOP_TIMEOUT_S = 10.0


class ProcessError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1", *, udp_too: bool = False) -> int:
    """A port nobody listens on at `host` (TCP, and UDP when `udp_too`), below 32768."""
    for _ in range(200):
        port = random.randint(*PORT_RANGE)  # noqa: S311 - a port, not a secret
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp_too else (socket.SOCK_STREAM,)
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise ProcessError("no free port found below 32768")


@contextlib.contextmanager
def started(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str],
            cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` running with its output in `log_path` until the block ends (SIGTERM, SIGKILL after 10 s)."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(ready: Callable[[], bool], *, process: subprocess.Popen[bytes], what: str, log_path: Path,
               timeout: float) -> None:
    """Polls `ready` until it is true; fails when `process` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise ProcessError(f"{what} exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            raise ProcessError(f"{what} was not ready within {timeout:.0f} s; see {log_path}")
        time.sleep(0.1)
