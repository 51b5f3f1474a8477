#!/usr/bin/env python3
"""Pinned third-party tools for the tests and the validators, installed once under .local/tools/<name>/<version>/.

    python3 scripts/tools.py install [NAME ...]   # build/fetch the named tools (all when none); prints their paths
    python3 scripts/tools.py path NAME            # the path of one tool (installs it when missing)

Only registries are reachable from the machines that run Eva's tests, so every tool comes from one:
  * `GoTool`: a binary built with `go install module@version` from the Go module proxy (MinIO, kustomize, promtool,
    actionlint, Caddy, ...);
  * `GoSource`: a Go module's source tree, for files a project publishes in its repository (operators' CRDs),
    fetched with `go mod download` and read from the module cache;
  * `NpmPackage`: an npm package installed with `npm install` into its folder (schemas a project publishes only
    there, such as Strimzi's).

A file lock per tool serialises concurrent installs (pytest workers, a CI run beside a shell). Each tool has an
environment variable (`EVA_<NAME>`) that points at another binary instead. A cold Go build takes seconds to minutes;
the Go module and build caches under $HOME make later ones fast, so `make test` installs every tool before the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT_S = 1800


class ToolError(RuntimeError):
    """A tool is missing and cannot be installed here (no Go toolchain, a failed build, a bad override)."""


@dataclass(frozen=True, slots=True)
class GoTool:
    name: str  # the binary's name, and the folder under .local/tools
    package: str  # what `go install` builds (a main package)
    version: str  # the module version (semver or a pseudo-version)
    env: str  # the environment variable that points at another binary instead
    cgo: bool = False  # CGO_ENABLED for the build (static binaries by default)

    def folder(self, root: Path = ROOT) -> Path:
        return root / ".local" / "tools" / self.name / self.version


@dataclass(frozen=True, slots=True)
class GoSource:
    module: str
    version: str


@dataclass(frozen=True, slots=True)
class NpmPackage:
    name: str  # the folder under .local/tools
    package: str  # the npm package name
    version: str  # exact version

    def folder(self, root: Path = ROOT) -> Path:
        return root / ".local" / "tools" / self.name / self.version

    def directory(self, root: Path = ROOT) -> Path:
        """Where the package itself lies once installed."""
        return self.folder(root) / "node_modules" / self.package


# Every pinned binary the project's scripts and tests use. Bump a version here and the next run builds it.
# MinIO's release tags are not semver, so the module proxy knows its commits as pseudo-versions: one is pinned.
MINIO = GoTool("minio", "github.com/minio/minio", "v0.0.0-20260212201848-7aac2a2c5b7c", "EVA_MINIO")
KUSTOMIZE = GoTool("kustomize", "sigs.k8s.io/kustomize/kustomize/v5", "v5.7.1", "EVA_KUSTOMIZE")
# Operators' published schemas, for scripts/crd_schemas.py (the custom resources under deploy/k8s).
# CloudNativePG's and prometheus-operator's CRDs are files of their Go modules; Strimzi publishes its CRDs only as
# release assets, so its schemas come compiled into validators by the npm package of kubernetes-models
# (generated from strimzi-crds 0.49.0 and 1.0.0).
CNPG_CRDS = GoSource("github.com/cloudnative-pg/cloudnative-pg", "v1.27.1")
PROMETHEUS_OPERATOR_CRDS = GoSource("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
STRIMZI_SCHEMAS = NpmPackage("strimzi-schemas", "@kubernetes-models/strimzi-kafka-operator", "1.0.1")
ACTIONLINT = GoTool("actionlint", "github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12", "EVA_ACTIONLINT")
# The compose edge (deploy/compose/edge/Caddyfile; the edge image's tag is this version) and Let's Encrypt's test
# ACME server with its DNS stand-in, which scripts/tests/test_edge.py gets the edge's certificate from.
CADDY = GoTool("caddy", "github.com/caddyserver/caddy/v2/cmd/caddy", "v2.11.9", "EVA_CADDY")
PEBBLE = GoTool("pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble", "v2.10.3", "EVA_PEBBLE")
PEBBLE_CHALLTESTSRV = GoTool(
    "pebble-challtestsrv", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv", "v2.10.3",
    "EVA_PEBBLE_CHALLTESTSRV",
)
# Pebble's source: the test CA (test/certs/pebble.minica.pem) that signs its own HTTPS listeners.
PEBBLE_SOURCE = GoSource("github.com/letsencrypt/pebble/v2", PEBBLE.version)
# Prometheus v3.x tags are Go module versions v0.3xx.y (v3.16.0 is v0.316.0); promtool checks and unit-tests the rules.
PROMTOOL = GoTool("promtool", "github.com/prometheus/prometheus/cmd/promtool", "v0.316.0", "EVA_PROMTOOL")
TOOLS: dict[str, GoTool | NpmPackage] = {tool.name: tool for tool in (
    MINIO, KUSTOMIZE, ACTIONLINT, CADDY, PEBBLE, PEBBLE_CHALLTESTSRV, PROMTOOL, STRIMZI_SCHEMAS)}
SOURCES: tuple[GoSource, ...] = (CNPG_CRDS, PROMETHEUS_OPERATOR_CRDS, PEBBLE_SOURCE)


def emit(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolError("there is no Go toolchain to build it: install Go, or point the tool's variable at a binary")
    return go


def _run_go(args: list[str], *, env: dict[str, str], what: str) -> str:
    try:
        result = subprocess.run([_go(), *args], env=env, capture_output=True, text=True,
                                timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise ToolError(f"{what} timed out after {INSTALL_TIMEOUT_S} s") from error
    if result.returncode != 0:
        raise ToolError(f"{what} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def go_install(tool: GoTool, root: Path = ROOT, *, log: bool = True) -> Path:
    """The tool's binary: ${tool.env} when set, else the pinned build under .local/tools (built once)."""
    chosen = os.environ.get(tool.env)
    if chosen:
        if not Path(chosen).is_file():
            raise ToolError(f"{tool.env}={chosen} does not exist")
        return Path(chosen)
    folder = tool.folder(root)
    binary = folder / tool.name
    if binary.is_file():
        return binary
    with _locked(folder):
        if binary.is_file():  # another process built it while we waited
            return binary
        if log:
            emit(f"tools: building {tool.name} {tool.version} with go install (once)")
        started = time.monotonic()
        env = dict(os.environ, GOBIN=str(folder), CGO_ENABLED="1" if tool.cgo else "0")
        what = f"go install {tool.package}@{tool.version}"
        _run_go(["install", f"{tool.package}@{tool.version}"], env=env, what=what)
        if not binary.is_file():
            raise ToolError(f"go install {tool.package}@{tool.version} left no {binary}")
        if log:
            emit(f"tools: built {binary} in {time.monotonic() - started:.0f} s")
    return binary


def npm_install(package: NpmPackage, root: Path = ROOT, *, log: bool = True) -> Path:
    """The package's folder under .local/tools/<name>/<version>/node_modules (installed once with npm)."""
    target = package.directory(root)
    if (target / "package.json").is_file():
        return target
    folder = package.folder(root)
    with _locked(folder):
        if (target / "package.json").is_file():
            return target
        npm = shutil.which("npm")
        if npm is None:
            raise ToolError(f"there is no npm to install {package.package}")
        if log:
            emit(f"tools: installing {package.package}@{package.version} with npm (once)")
        started = time.monotonic()
        (folder / "package.json").write_text(
            json.dumps({"private": True, "dependencies": {package.package: package.version}}, indent=2) + "\n"
        )
        try:
            result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                                    capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as error:
            raise ToolError(f"npm install {package.package} timed out after {INSTALL_TIMEOUT_S} s") from error
        if result.returncode != 0 or not (target / "package.json").is_file():
            raise ToolError(f"npm install {package.package}@{package.version} failed:\n{result.stderr[-3000:]}")
        if log:
            emit(f"tools: installed {target} in {time.monotonic() - started:.0f} s")
    return target


def install_tool(tool: GoTool | NpmPackage, root: Path = ROOT) -> Path:
    return go_install(tool, root) if isinstance(tool, GoTool) else npm_install(tool, root)


def go_source(source: GoSource) -> Path:
    """The module's source tree in Go's module cache (read-only), downloaded once from the module proxy."""
    out = _run_go(["mod", "download", "-json", f"{source.module}@{source.version}"], env=dict(os.environ),
                  what=f"go mod download {source.module}@{source.version}")
    folder = json.loads(out).get("Dir")
    if not folder or not Path(folder).is_dir():
        raise ToolError(f"go mod download {source.module}@{source.version} gave no source folder")
    return Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="install the named tools (all when none) and print their paths")
    install.add_argument("names", nargs="*", metavar="NAME", help=", ".join(TOOLS))
    path = commands.add_parser("path", help="the path of one tool (installed when missing)")
    path.add_argument("name", choices=list(TOOLS))
    args = parser.parse_args(argv)
    unknown = sorted(set(getattr(args, "names", [])) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    try:
        if args.command == "path":
            sys.stdout.write(f"{install_tool(TOOLS[args.name])}\n")
        else:
            for name in args.names or list(TOOLS):
                sys.stdout.write(f"{install_tool(TOOLS[name])}\n")
            if not args.names:
                for source in SOURCES:
                    sys.stdout.write(f"{go_source(source)}\n")
    except ToolError as error:
        emit(f"tools: {error}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
