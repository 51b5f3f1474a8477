"""PostgreSQL client side of the backups: which pg_dump / pg_restore / psql to run, and short queries through psql.

Stdlib only (the backup image has Python, the PostgreSQL client binaries and botocore, nothing else). The server is
reached through libpq's own environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE, ...), never a command line.
A client binary is taken from $EVA_PG_BIN_DIR, else the newest /usr/lib/postgresql/<major>/bin that has it (Debian's
layout, also the official postgres images'), else $PATH; it must be of the server's major version or newer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

FIELD_SEPARATOR = "\x1f"
CONNECT_TIMEOUT_S = "10"
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")

# Exit codes of scripts/backup and scripts/restore (docs/backups.md).
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_NO_SET = 4
EXIT_CHECKSUM = 5
EXIT_CLIENT_TOO_OLD = 6


class BackupError(RuntimeError):
    """A failure meant for the operator: one message and the exit code that names its kind."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Binary:
    path: Path
    major: int
    version: str


def _version_of(path: Path) -> Binary | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False,  # noqa: S603
                             timeout=30).stdout
    except OSError:
        return None
    match = VERSION.search(out)
    if match is None:
        return None
    return Binary(path, int(match.group(1)), ".".join(g for g in match.groups() if g is not None))


def _candidates(name: str) -> list[Path]:
    override = os.environ.get("EVA_PG_BIN_DIR", "").strip()
    if override:
        return [Path(override) / name]
    found = [bindir / name for bindir in Path("/usr/lib/postgresql").glob("*/bin") if (bindir / name).is_file()]
    on_path = shutil.which(name)
    return found + ([Path(on_path)] if on_path else [])


def client(name: str, server_major: int) -> Binary:
    """The newest `name` (pg_dump, pg_restore, psql) here; refused when it is older than the server's major."""
    binaries = [b for b in (_version_of(path) for path in _candidates(name)) if b is not None]
    if not binaries:
        raise BackupError(f"{name} not found (install the PostgreSQL {server_major} client, or set EVA_PG_BIN_DIR)",
                          EXIT_CLIENT_TOO_OLD)
    newest = max(binaries, key=lambda b: b.major)
    if newest.major < server_major:
        raise BackupError(f"{name} {newest.version} ({newest.path}) is older than the server's PostgreSQL "
                          f"{server_major}: install the client of version {server_major} or newer",
                          EXIT_CLIENT_TOO_OLD)
    return newest


def libpq_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, PGCONNECT_TIMEOUT=os.environ.get("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S))
    env.update(extra or {})
    return env


def run_tool(argv: Sequence[str], *, what: str) -> str:
    """Run a client binary; a failure becomes a BackupError (unreachable server: EXIT_UNREACHABLE)."""
    result = subprocess.run(list(argv), env=libpq_env(), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        detail = result.stderr.strip()[-3000:]
        code = EXIT_UNREACHABLE if _unreachable(detail) else EXIT_FAILED
        raise BackupError(f"{what} failed: {detail}", code)
    return result.stdout


def _unreachable(stderr: str) -> bool:
    return any(text in stderr for text in ("could not connect", "Connection refused", "timeout expired",
                                           "could not translate host name", "No such file or directory\n\tIs"))


@dataclass(frozen=True, slots=True)
class Server:
    """The server libpq's environment names, with the psql that talks to it."""

    psql: Binary
    major: int
    version: str

    def query(self, database: str, sql: str) -> list[list[str]]:
        out = run_tool([str(self.psql.path), "-X", "-q", "-A", "-t", "-F", FIELD_SEPARATOR, "-v", "ON_ERROR_STOP=1",
                        "-d", database, "-c", sql], what=f"psql on {database}")
        return [line.split(FIELD_SEPARATOR) for line in out.splitlines() if line]

    def execute(self, database: str, sql: str) -> None:
        self.query(database, sql)

    def databases(self) -> set[str]:
        return {row[0] for row in self.query("postgres", "SELECT datname FROM pg_database")}

    def roles(self) -> set[str]:
        return {row[0] for row in self.query("postgres", "SELECT rolname FROM pg_roles")}

    def alembic_version(self, database: str) -> str | None:
        if self.query(database, "SELECT to_regclass('public.alembic_version') IS NULL") != [["f"]]:
            return None
        rows = self.query(database, "SELECT string_agg(version_num, ',' ORDER BY version_num) "
                                    "FROM public.alembic_version")
        return rows[0][0] or None if rows else None


def connect() -> Server:
    """The server of libpq's environment: fails with EXIT_UNREACHABLE when it does not answer."""
    psql = max((b for b in (_version_of(p) for p in _candidates("psql")) if b is not None),
               key=lambda b: b.major, default=None)
    if psql is None:
        raise BackupError("psql not found (install the PostgreSQL client, or set EVA_PG_BIN_DIR)", EXIT_CLIENT_TOO_OLD)
    probe = Server(psql, 0, "")
    try:
        rows = probe.query("postgres", "SELECT current_setting('server_version_num'), "
                                       "current_setting('server_version')")
    except BackupError as error:
        where = f"{os.environ.get('PGHOST', 'localhost')}:{os.environ.get('PGPORT', '5432')}"
        raise BackupError(f"PostgreSQL at {where} is unreachable or refused the login: {error}",
                          EXIT_UNREACHABLE) from error
    number, version = rows[0]
    return Server(psql, int(number) // 10000, version.split()[0])
