#!/usr/bin/env python3
"""A real n8n for the end-to-end tests and the local stack: the npm package, pinned, installed under .local/tools.

    python3 scripts/n8n_server.py install                      # once; prints the n8n executable's path
    python3 scripts/n8n_server.py run [--port N] [--workflow F]...  # imports and activates F, serves until Ctrl-C

n8n 1.x runs on the machine's Node 20 (n8n 2.x wants Node 24). The package goes to
.local/tools/n8n/<N8N_VERSION>/ (`npm install`, a few minutes and ≈ 1 GB once; npm's cache under $HOME makes a
reinstall fast); a file lock serialises concurrent installs; $EVA_N8N points at another n8n executable instead.

Tests use `install()` and `running(...)`: an n8n on a free loopback port below 32768 with a user folder of its own
(SQLite, no telemetry, no templates, no version checks), the given workflows imported and activated with n8n's own
CLI before it starts, ready once `/healthz` answers, stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import processes  # noqa: E402  (scripts/processes.py: free ports, child processes)

ROOT = Path(__file__).resolve().parent.parent
N8N_VERSION = "1.123.81"
# Two of its dependencies cannot be installed as they are here: `xlsx` comes from cdn.sheetjs.com (only the npm
# registry is reachable), and the `isolated-vm` it names is built against Node 22's V8. Both are replaced by
# registry versions that install on Node 20 (npm `overrides`).
OVERRIDES = {"xlsx": "0.18.5", "isolated-vm": "5.0.4"}
INSTALL_TIMEOUT_S = 1800
START_TIMEOUT_S = 120.0


class N8nError(RuntimeError):
    pass


def emit(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def tools_dir(root: Path = ROOT) -> Path:
    return root / ".local" / "tools" / "n8n" / N8N_VERSION


def install(root: Path = ROOT, *, log: bool = True) -> Path:
    """The n8n executable: $EVA_N8N, else the pinned npm package under .local/tools (installed once)."""
    chosen = os.environ.get("EVA_N8N")
    if chosen:
        if not Path(chosen).is_file():
            raise N8nError(f"EVA_N8N={chosen} does not exist")
        return Path(chosen)
    target = tools_dir(root)
    executable = target / "node_modules" / ".bin" / "n8n"
    if executable.is_file():
        return executable
    npm = shutil.which("npm")
    if npm is None:
        raise N8nError("n8n is not installed and there is no npm to install it (or set EVA_N8N)")
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.is_file():  # another process installed it while we waited
            return executable
        if log:
            emit(f"n8n_server: installing n8n {N8N_VERSION} from npm (once)")
        started = time.monotonic()
        (target / "package.json").write_text(json.dumps({
            "name": "eva-n8n", "private": True, "dependencies": {"n8n": N8N_VERSION}, "overrides": OVERRIDES}))
        try:
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=target, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as error:
            raise N8nError(f"npm install of n8n timed out after {INSTALL_TIMEOUT_S} s") from error
        if result.returncode != 0 or not executable.is_file():
            raise N8nError(f"npm install n8n@{N8N_VERSION} failed:\n{result.stderr[-3000:]}")
        if log:
            emit(f"n8n_server: installed {executable} in {time.monotonic() - started:.0f} s")
    return executable


@dataclass(frozen=True, slots=True)
class N8n:
    url: str  # http://127.0.0.1:<port>
    folder: Path  # its user folder (database, logs)

    def webhook_url(self, path: str) -> str:
        """Where a Webhook trigger node with this path listens once its workflow is active."""
        return f"{self.url}/webhook/{path.strip('/')}"


def environment(folder: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "N8N_USER_FOLDER": str(folder),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "N8N_PROTOCOL": "http",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_RUNNERS_ENABLED": "false",
        "NODE_FUNCTION_ALLOW_BUILTIN": "crypto",  # the Code node verifies Eva's signature
        "N8N_BLOCK_ENV_ACCESS_IN_NODE": "false",  # the workflows read Eva's address and key from the environment
        "DB_SQLITE_POOL_SIZE": "1",
        **extra,
    }


def _cli(executable: Path, env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run([str(executable), *args], env=dict(env), capture_output=True, text=True, timeout=300,
                            check=False)
    if result.returncode != 0:
        raise N8nError(f"n8n {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def import_and_activate(executable: Path, env: Mapping[str, str], workflows: Sequence[Path]) -> None:
    """Imports each workflow file (its `id` kept) and marks it active, with n8n's CLI, before n8n starts."""
    for workflow in workflows:
        workflow_id = json.loads(workflow.read_text())["id"]
        _cli(executable, env, "import:workflow", f"--input={workflow}")
        _cli(executable, env, "update:workflow", f"--id={workflow_id}", "--active=true")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(*, workflows: Sequence[Path] = (), env: Mapping[str, str] | None = None,
            port: int | None = None, folder: Path | None = None) -> Iterator[N8n]:
    """An n8n serving the given workflows (imported and active) until the block ends; its user folder (database,
    credentials, the editor's owner) is `folder`, kept, or a temporary one."""
    executable = install()
    with contextlib.ExitStack() as cleanup:
        if folder is None:
            folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="eva-n8n-")))
        folder.mkdir(parents=True, exist_ok=True)
        chosen = port or processes.free_port()
        full_env = environment(folder, chosen, env or {})
        import_and_activate(executable, full_env, workflows)
        log = (folder / "n8n.log").open("w")
        process = subprocess.Popen([str(executable), "start"], env=full_env, stdout=log,  # noqa: S603
                                   stderr=subprocess.STDOUT, start_new_session=True)
        server = N8n(url=f"http://127.0.0.1:{chosen}", folder=folder)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _ready(server.url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise N8nError(f"n8n did not start:\n{(folder / 'n8n.log').read_text()[-3000:]}")
                time.sleep(0.5)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="install the pinned n8n (once) and print its path")
    serve = commands.add_parser("run", help="serve n8n with the given workflows until Ctrl-C")
    serve.add_argument("--port", type=int, default=5678)
    serve.add_argument("--workflow", type=Path, action="append", default=[])
    serve.add_argument("--folder", type=Path, default=None, help="n8n's user folder, kept (default: a temporary one)")
    args = parser.parse_args()
    if args.command == "install":
        sys.stdout.write(f"{install()}\n")
        return 0
    with running(workflows=args.workflow, port=args.port, folder=args.folder) as server:
        emit(f"n8n_server: n8n {N8N_VERSION} at {server.url} (user folder {server.folder})")
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
