#!/usr/bin/env python3
"""A real S3-compatible server for tests: MinIO, built from source with `go install` from the Go module proxy.

    python3 scripts/s3_server.py install          # once; prints the binary's path (reused when present)
    python3 scripts/s3_server.py run [--port N]   # serves a temporary folder until Ctrl-C (for manual use)

The binary goes to .local/tools/minio/<version>/minio (scripts/tools.py, which pins it and serialises concurrent
installs with a file lock). $EVA_MINIO points at another minio binary instead. A cold build takes minutes
(the Go module and build caches under $HOME make later ones fast), so CI should run `install` before the tests.

Tests use `install()` and `running(...)`: a MinIO on a free loopback port below 32768 (outside Linux's ephemeral
range), with its own data folder and root credentials, ready once /minio/health/live answers, stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import processes  # noqa: E402  (scripts/processes.py: free ports, child processes)
import tools  # noqa: E402  (scripts/tools.py: the pinned tools)

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


class S3ServerError(RuntimeError):
    pass


def emit(line: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(line + "\n")
    stream.flush()


def install(root: Path = ROOT, *, log: bool = True) -> Path:
    """The minio binary: $EVA_MINIO, else the pinned build under .local/tools (scripts/tools.py, built once)."""
    try:
        return tools.go_install(tools.MINIO, root, log=log)
    except tools.ToolError as error:
        raise S3ServerError(f"minio: {error}") from error


@dataclass(frozen=True, slots=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    data_dir: Path


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/minio/health/live", timeout=2) as answer:  # noqa: S310 — loopback
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(binary: Path, data_dir: Path, *, port: int | None = None, region: str = "us-east-1",
            timeout: float = START_TIMEOUT_S) -> Iterator[S3Server]:
    """A MinIO serving `data_dir` on 127.0.0.1 until the block ends (SIGTERM, then SIGKILL after 10 s)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"eva-test-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    for _ in range(3 if port is None else 1):
        chosen, console = port or processes.free_port(), processes.free_port()
        url = f"http://127.0.0.1:{chosen}"
        log_path = data_dir.parent / f"{data_dir.name}.minio.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(binary), "server", str(data_dir), "--address", f"127.0.0.1:{chosen}",
                 "--console-address", f"127.0.0.1:{console}", "--quiet"],
                env=dict(os.environ, MINIO_ROOT_USER=access_key, MINIO_ROOT_PASSWORD=secret_key,
                         MINIO_REGION=region, MINIO_BROWSER="off", MINIO_UPDATE="off"),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + timeout
            while process.poll() is None and not _live(url):
                if time.monotonic() > deadline:
                    raise S3ServerError(f"minio did not become live within {timeout} s; see {log_path}")
                time.sleep(0.1)
            if process.poll() is not None:  # e.g. the port was taken meanwhile: try another one
                continue
            yield S3Server(endpoint_url=url, access_key=access_key, secret_key=secret_key, region=region,
                           data_dir=data_dir)
            return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    raise S3ServerError(f"minio exited at start; see {data_dir.parent / (data_dir.name + '.minio.log')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="build minio once into .local/tools and print its path")
    run = commands.add_parser("run", help="serve a temporary folder until Ctrl-C")
    run.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        binary = install()
        if args.command == "install":
            emit(str(binary))
            return 0
        with tempfile.TemporaryDirectory(prefix="eva-minio-") as folder, \
                running(binary, Path(folder) / "data", port=args.port) as server:
            emit(f"S3 endpoint {server.endpoint_url} region {server.region} access key {server.access_key} "
                 f"secret key {server.secret_key} (Ctrl-C stops)")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except S3ServerError as error:
        emit(f"s3_server: {error}", error=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
