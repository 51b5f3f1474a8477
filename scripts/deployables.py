#!/usr/bin/env python3
"""The registry of Eva's deployables (deploy/deployables.toml), as typed rows. Stdlib only: scripts/infra.py reads
it with plain ``python3`` before the uv venv exists.

    python3 scripts/deployables.py names|modules|databases       one per line
    python3 scripts/deployables.py docker-args <name>            the build arguments of deploy/Dockerfile
    python3 scripts/deployables.py check                         the rows against the workspace (exit 1 on a problem)

Other scripts ``import deployables`` and call :func:`load`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "deploy" / "deployables.toml"
PROFILES = ("dev", "test", "container")
REPLICA_PORT_STEP = 10
NAME = re.compile(r"^[a-z][a-z0-9-]*$")
MODULE = re.compile(r"^[a-z_][a-z0-9_]*$")
DATABASE = re.compile(r"^eva_[a-z0-9_]+$")
FIELDS = frozenset({"name", "package", "module", "directory", "database", "public", "dev_only", "http", "grpc",
                    "replicas"})


class RegistryError(ValueError):
    """The registry file is malformed."""


@dataclass(frozen=True, slots=True)
class Deployable:
    name: str
    package: str
    module: str
    directory: str
    http: Mapping[str, int]
    grpc: Mapping[str, int] | None = None
    database: str | None = None
    public: bool = False
    dev_only: bool = False
    replicas: Mapping[str, int] | None = None

    def http_port(self, profile: str) -> int:
        return self.http[profile]

    def grpc_port(self, profile: str) -> int | None:
        return self.grpc[profile] if self.grpc else None

    def replica_count(self, profile: str) -> int:
        return (self.replicas or {}).get(profile, 1)

    @property
    def grpc_target_env(self) -> str:
        """The variable through which peers find its gRPC server: EVA_<NAME>_GRPC_TARGET."""
        return f"EVA_{self.name.upper().replace('-', '_')}_GRPC_TARGET"

    def docker_args(self) -> dict[str, str]:
        """deploy/Dockerfile's build arguments for this deployable (the image's default ports: its container ones)."""
        args = {"SERVICE": self.name, "PACKAGE": self.package, "MODULE": self.module, "DIRECTORY": self.directory,
                "HTTP_PORT": str(self.http["container"])}
        if self.grpc:
            args["GRPC_PORT"] = str(self.grpc["container"])
        return args


def _ports(row: Mapping[str, Any], key: str, where: str) -> dict[str, int] | None:
    table = row.get(key)
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) != set(PROFILES):
        raise RegistryError(f"{where}: {key} needs a port for each of {', '.join(PROFILES)}")
    for profile, port in table.items():
        # local ports stay below Linux's ephemeral range (docs/conventions.md, Ports); containers have their own
        limit = 65536 if profile == "container" else 32768
        if not isinstance(port, int) or not 0 < port < limit:
            raise RegistryError(f"{where}: {key}.{profile} = {port!r} is not a port below {limit}")
    return {profile: int(port) for profile, port in table.items()}


def _row(row: Mapping[str, Any], index: int) -> Deployable:
    where = f"deployable #{index + 1} ({row.get('name', '?')})"
    unknown = set(row) - FIELDS
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for key in ("name", "package", "module", "directory"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise RegistryError(f"{where}: {key} is required")
    if not NAME.match(row["name"]) or not MODULE.match(row["module"]):
        raise RegistryError(f"{where}: name must match {NAME.pattern}, module {MODULE.pattern}")
    database = row.get("database")
    if database is not None and (not isinstance(database, str) or not DATABASE.match(database)):
        raise RegistryError(f"{where}: database must match {DATABASE.pattern}")
    http = _ports(row, "http", where)
    if http is None:
        raise RegistryError(f"{where}: http ports are required")
    replicas = row.get("replicas")
    if replicas is not None and (
        not isinstance(replicas, dict)
        or not set(replicas) <= {"dev", "test"}
        or not all(isinstance(n, int) and n >= 1 for n in replicas.values())
    ):
        raise RegistryError(f"{where}: replicas maps dev/test to a count >= 1")
    return Deployable(
        name=row["name"], package=row["package"], module=row["module"], directory=row["directory"], http=http,
        grpc=_ports(row, "grpc", where), database=database, public=bool(row.get("public", False)),
        dev_only=bool(row.get("dev_only", False)), replicas=dict(replicas) if replicas else None,
    )


def parse(text: str) -> tuple[Deployable, ...]:
    """The rows of a registry text, checked for shape and for clashes (names, modules, databases, ports)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"not valid TOML: {error}") from error
    rows = document.get("deployable")
    if not isinstance(rows, list) or not rows:
        raise RegistryError("no [[deployable]] rows")
    items = tuple(_row(row, index) for index, row in enumerate(rows))
    for label, values in (
        ("name", [d.name for d in items]),
        ("module", [d.module for d in items]),
        ("package", [d.package for d in items]),
        ("database", [d.database for d in items if d.database]),
    ):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise RegistryError(f"{label} used twice: {', '.join(duplicates)}")
    for profile in ("dev", "test"):
        taken: dict[int, str] = {}
        for item in items:
            ports = [item.http[profile] + REPLICA_PORT_STEP * n for n in range(item.replica_count(profile))]
            ports += [item.grpc[profile]] if item.grpc else []
            for port in ports:
                if port in taken:
                    raise RegistryError(f"{profile} port {port} is used by {taken[port]} and {item.name}")
                taken[port] = item.name
    return items


def load(path: Path = REGISTRY) -> tuple[Deployable, ...]:
    return parse(path.read_text())


def by_name(name: str, items: Sequence[Deployable] | None = None) -> Deployable:
    for item in items if items is not None else load():
        if item.name == name:
            return item
    raise KeyError(f"no deployable {name!r} in {REGISTRY.relative_to(ROOT)}")


def workspace_problems(items: Sequence[Deployable], root: Path = ROOT) -> list[str]:
    """Rows that do not match the tree: folder, pyproject name, importable module, migrations."""
    problems: list[str] = []
    for item in items:
        folder = root / item.directory
        pyproject = folder / "pyproject.toml"
        if not pyproject.is_file():
            problems.append(f"{item.name}: no {item.directory}/pyproject.toml")
            continue
        declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
        if declared != item.package:
            problems.append(f"{item.name}: {item.directory}/pyproject.toml names {declared!r}, not {item.package!r}")
        if not (folder / "src" / item.module / "__main__.py").is_file():
            problems.append(f"{item.name}: no {item.directory}/src/{item.module}/__main__.py (python -m {item.module})")
        if item.database and not (folder / "alembic.ini").is_file():
            problems.append(f"{item.name}: has database {item.database} but no {item.directory}/alembic.ini")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["names", "modules", "databases", "docker-args", "check"])
    parser.add_argument("name", nargs="?")
    args = parser.parse_args(argv)
    try:
        items = load()
    except RegistryError as error:
        sys.stderr.write(f"{REGISTRY.relative_to(ROOT)}: {error}\n")
        return 1
    lines: list[str]
    if args.command == "names":
        lines = [d.name for d in items]
    elif args.command == "modules":
        lines = [d.module for d in items]
    elif args.command == "databases":
        lines = [d.database for d in items if d.database]
    elif args.command == "docker-args":
        if not args.name:
            parser.error("docker-args needs a deployable's name")
        lines = [f"--build-arg={key}={value}" for key, value in by_name(args.name, items).docker_args().items()]
    else:
        lines = workspace_problems(items)
        for line in lines:
            sys.stderr.write(f"{REGISTRY.relative_to(ROOT)}: {line}\n")
        return 1 if lines else 0
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
