#!/usr/bin/env python3
"""The compose edge (deploy/compose/edge/Caddyfile) outside Docker: the pinned Caddy (scripts/tools.py, built from
the Go module proxy; the compose image runs the same version) with the same Caddyfile, set from the environment.

    python3 scripts/edge_server.py install     # build Caddy once; prints its path
    python3 scripts/edge_server.py validate    # `caddy validate` + `caddy fmt` of the Caddyfile with example values

Tests use `validate(...)` and `running(...)`: Caddy with its own storage folder (certificates, ACME account) and
ports from `EdgeEnv`, ready once its local health endpoint answers, stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import processes  # noqa: E402  (scripts/processes.py)
import tools  # noqa: E402  (scripts/tools.py: the pinned tools)

ROOT = Path(__file__).resolve().parent.parent
CADDYFILE = ROOT / "deploy" / "compose" / "edge" / "Caddyfile"
START_TIMEOUT_S = 30.0
# What compose sets (deploy/compose/.env.example): enough to parse and validate the file.
EXAMPLE_ENV = {"EVA_DOMAIN": "eva.example.com", "EVA_ACME_EMAIL": "ops@example.com"}


class EdgeError(RuntimeError):
    pass


def install(*, log: bool = True) -> Path:
    try:
        return tools.go_install(tools.CADDY, log=log)
    except tools.ToolError as error:
        raise EdgeError(f"caddy: {error}") from error


def _env(values: Mapping[str, str], storage: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVA_EDGE_")}
    env.update(values)
    if storage is not None:  # certificates, the ACME account, autosaved config: nowhere near $HOME
        env.update(XDG_DATA_HOME=str(storage / "data"), XDG_CONFIG_HOME=str(storage / "config"), HOME=str(storage))
    return env


def validate(caddy: Path, values: Mapping[str, str], caddyfile: Path = CADDYFILE) -> list[str]:
    """What is wrong with the Caddyfile under these variables: `caddy validate` (the whole config provisioned,
    nothing served) and `caddy fmt` (formatted as Caddy writes it); empty when nothing."""
    problems: list[str] = []
    validated = subprocess.run([str(caddy), "validate", "--config", str(caddyfile), "--adapter", "caddyfile"],
                               env=_env(values), capture_output=True, text=True, timeout=60, check=False)
    if validated.returncode != 0:
        problems.append(f"caddy validate: {validated.stderr.strip()[-2000:]}")
    formatted = subprocess.run([str(caddy), "fmt", str(caddyfile)], capture_output=True, text=True, timeout=60,
                               check=False)
    if formatted.returncode != 0 or formatted.stdout != caddyfile.read_text():
        problems.append(f"caddy fmt: {caddyfile.name} is not formatted as `caddy fmt` writes it")
    return problems


def adapt(caddy: Path, values: Mapping[str, str], caddyfile: Path = CADDYFILE) -> dict[str, Any]:
    """The Caddyfile as Caddy's JSON config under these variables (`caddy adapt`)."""
    adapted = subprocess.run([str(caddy), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"],
                             env=_env(values), capture_output=True, text=True, timeout=60, check=False)
    if adapted.returncode != 0:
        raise EdgeError(f"caddy adapt: {adapted.stderr.strip()[-2000:]}")
    config: dict[str, Any] = json.loads(adapted.stdout)
    return config


def upstreams(config: Any) -> set[str]:
    """Every host:port the config proxies to: static upstreams' dial addresses and DNS-resolved upstreams' names."""
    found: set[str] = set()
    if isinstance(config, dict):
        if isinstance(config.get("dial"), str):
            found.add(config["dial"])
        dynamic = config.get("dynamic_upstreams")
        if isinstance(dynamic, dict) and "name" in dynamic:
            found.add(f"{dynamic['name']}:{dynamic.get('port', '')}")
        for value in config.values():
            found |= upstreams(value)
    elif isinstance(config, list):
        for value in config:
            found |= upstreams(value)
    return found


@dataclass(frozen=True, slots=True)
class EdgeEnv:
    """The variables of the Caddyfile for a run outside compose (defaults are compose's)."""

    domain: str
    acme_email: str
    acme_ca: str
    http_port: int
    https_port: int
    admin_port: int
    health_port: int
    ingest: str  # host:port
    n8n: str  # host:port
    grafana: str  # host:port
    gateway_host: str  # a name the resolver answers with every gateway replica's address
    gateway_port: int
    resolver: str  # host:port of a DNS server
    renew_interval: str = "10m"

    def values(self) -> dict[str, str]:
        return {
            "EVA_DOMAIN": self.domain,
            "EVA_ACME_EMAIL": self.acme_email,
            "EVA_ACME_CA": self.acme_ca,
            "EVA_EDGE_HTTP_PORT": str(self.http_port),
            "EVA_EDGE_HTTPS_PORT": str(self.https_port),
            "EVA_EDGE_ADMIN": f"127.0.0.1:{self.admin_port}",
            "EVA_EDGE_HEALTH_PORT": str(self.health_port),
            "EVA_EDGE_INGEST": self.ingest,
            "EVA_EDGE_N8N": self.n8n,
            "EVA_EDGE_GRAFANA": self.grafana,
            "EVA_EDGE_GATEWAY_HOST": self.gateway_host,
            "EVA_EDGE_GATEWAY_PORT": str(self.gateway_port),
            "EVA_EDGE_RESOLVER": self.resolver,
            "EVA_EDGE_RENEW_INTERVAL": self.renew_interval,
        }


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(caddy: Path, folder: Path, edge: EdgeEnv, *, extra_env: Mapping[str, str] | None = None,
            caddyfile: Path = CADDYFILE) -> Iterator[Path]:
    """`caddy run` with the Caddyfile until the block ends; yields its log file (JSON lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "caddy.log"
    env = _env({**edge.values(), **(extra_env or {})}, storage=folder)
    argv = [str(caddy), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    with processes.started(argv, log_path=log_path, env=env, cwd=folder) as process:
        processes.wait_until(lambda: _healthy(edge.health_port), process=process, what="caddy", log_path=log_path,
                             timeout=START_TIMEOUT_S)
        yield log_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="build caddy once into .local/tools and print its path")
    commands.add_parser("validate", help="caddy validate + caddy fmt of deploy/compose/edge/Caddyfile")
    args = parser.parse_args(argv)
    try:
        caddy = install()
    except EdgeError as error:
        sys.stderr.write(f"edge_server: {error}\n")
        return 2
    if args.command == "install":
        sys.stdout.write(f"{caddy}\n")
        return 0
    problems = validate(caddy, EXAMPLE_ENV)
    for problem in problems:
        sys.stderr.write(f"edge_server: {problem}\n")
    if not problems:
        sys.stdout.write(f"OK: {CADDYFILE.relative_to(ROOT)} is valid and formatted\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
