#!/usr/bin/env python3
"""Restores Eva's databases from a backup set of scripts/backup: one database or all, from a local folder or
s3://bucket/prefix. See docs/backups.md.

    scripts/restore --from DIR|s3://bucket/prefix [--set NAME|latest] [--database NAME ...] [--list]

Checks first, touches nothing until they pass: the set is complete (its manifest exists), every chosen dump has the
manifest's size and sha256, the server answers, pg_restore is as new as the server and the pg_dump that wrote the set,
and the roles the dumps name (eva_owner, eva_app) exist (provision a new server with provision.sql first). Then each
database is dropped (its sessions ended: stop the services first) and recreated from its archive with
`pg_restore --create`: the same owner, grants, default privileges, row-level security and policies as when it was
dumped. The server comes from libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, ...), as the superuser or
the admin role that may create databases and bypasses row-level security.
Exit codes: 0 done, 1 failed, 2 usage, 3 database unreachable, 4 no such set or database in it, 5 checksum
mismatch, 6 pg_restore older than the server or the set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_sets import Manifest, SetStore, choose, store_for, verify  # noqa: E402
from pg_client import EXIT_FAILED, VERSION, BackupError, Server, client, connect, run_tool  # noqa: E402

ROLES = ("eva_owner", "eva_app")  # who owns Eva's objects and who is granted on them (provision.sql)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _major(version: str) -> int:
    match = VERSION.search(f"(PostgreSQL) {version}")
    return int(match.group(1)) if match else 0


def restore_database(server: Server, pg_restore: Path, archive: Path, database: str) -> None:
    quoted = '"' + database.replace('"', '""') + '"'
    server.execute("postgres", f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    run_tool([str(pg_restore), "--create", "--exit-on-error", "--no-password", "--dbname", "postgres",
              str(archive)], what=f"pg_restore of {database}")


def restore(store: SetStore, wanted: str, databases: Sequence[str] | None = None) -> Manifest:
    """Restores `databases` (all of the set when None) of the set `wanted` (a name or `latest`)."""
    name = choose(store, wanted)
    manifest = store.manifest(name)
    names = list(databases or manifest.names())
    files = [manifest.database(database).file for database in names]
    with tempfile.TemporaryDirectory(prefix="eva-restore-") as scratch:
        folder = store.fetch(name, Path(scratch), files)
        verify(folder, manifest, names)
        server = connect()
        pg_restore = client("pg_restore", max(server.major, _major(manifest.pg_dump_version)))
        missing = sorted(set(ROLES) - server.roles())
        if missing:
            raise BackupError(f"role {', '.join(missing)} does not exist on the server: provision it first "
                              f"(deploy/compose/init/postgres/provision.sql), then restore", EXIT_FAILED)
        for database in names:
            started = time.monotonic()
            dump = manifest.database(database)
            restore_database(server, pg_restore.path, folder / dump.file, database)
            version = server.alembic_version(database)
            if version != dump.alembic_version:
                raise BackupError(f"{database} restored at alembic {version}, the set says {dump.alembic_version}")
            say(f"restore {name} {database}: {dump.bytes} bytes in {time.monotonic() - started:.1f} s "
                f"(alembic {version})")
    return manifest


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/restore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", default=os.environ.get("EVA_BACKUP_DIR") or None,
                        metavar="DIR|s3://BUCKET/PREFIX", help="where the sets are (default $EVA_BACKUP_DIR)")
    parser.add_argument("--set", default="latest", help="the set's name (UTC time, e.g. 20261207T031500Z) or latest")
    parser.add_argument("--database", action="append", metavar="NAME",
                        help="only this database (repeatable); default every database of the set")
    parser.add_argument("--list", action="store_true", help="list the complete sets and exit")
    args = parser.parse_args(argv)
    if not args.source:
        parser.error("--from is required (or set EVA_BACKUP_DIR)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        store = store_for(args.source)
        if args.list:
            for name in store.sets():
                manifest = store.manifest(name)
                size = sum(dump.bytes for dump in manifest.databases)
                say(f"{name}  {len(manifest.databases)} databases  {size} bytes  PostgreSQL {manifest.server_version}")
            return 0
        started = time.monotonic()
        manifest = restore(store, args.set, args.database)
        say(f"restore {manifest.set}: done in {time.monotonic() - started:.1f} s")
    except BackupError as error:
        sys.stderr.write(f"restore: {error}\n")
        return error.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
