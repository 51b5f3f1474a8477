#!/usr/bin/env python3
"""Logical backups of every Eva database: one compressed pg_dump archive (custom format) per database, a manifest
(time, sizes, sha256, PostgreSQL and Alembic versions), a folder named by the UTC start time, retention, and an
optional offsite copy on S3-compatible storage. See docs/backups.md.

    scripts/backup [--to DIR] [--s3 s3://bucket/prefix] [--keep N] [--max-age-days D] [--database NAME ...]
    scripts/backup --to DIR --check-age HOURS     # exit 0 when the newest set is younger (healthchecks, alerts)

The server comes from libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, ...), as a role that bypasses
row-level security (the superuser, or the managed service's admin role): Eva's tables force RLS, so the owner sees
no rows. The databases are the registry's (deploy/deployables.toml). Defaults also come from EVA_BACKUP_DIR,
EVA_BACKUP_S3_URL, EVA_BACKUP_KEEP and EVA_BACKUP_MAX_AGE_DAYS.
Exit codes: 0 done, 1 failed (or --check-age: no set that recent), 2 usage, 3 database unreachable, 6 pg_dump older
than the server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deployables  # noqa: E402  (scripts/deployables.py: the registry)
from backup_sets import (  # noqa: E402
    MANIFEST,
    DatabaseDump,
    LocalStore,
    Manifest,
    S3Store,
    SetStore,
    expired,
    set_name,
    set_time,
    sha256_of,
)
from pg_client import BackupError, Server, client, connect, run_tool  # noqa: E402

DEFAULT_DIR = "backups"
DEFAULT_KEEP = 7


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def registry_databases() -> list[str]:
    return [row.database for row in deployables.load() if row.database]


def dump_database(server: Server, pg_dump: Path, database: str, folder: Path) -> DatabaseDump:
    started = time.monotonic()
    target = folder / f"{database}.dump"
    version = server.alembic_version(database)
    run_tool([str(pg_dump), "--format=custom", "--compress=6", "--no-password", "--file", str(target),
              "--dbname", database], what=f"pg_dump of {database}")
    return DatabaseDump(name=database, file=target.name, bytes=target.stat().st_size, sha256=sha256_of(target),
                        alembic_version=version, seconds=round(time.monotonic() - started, 3))


def back_up(local: LocalStore, databases: Sequence[str], *, now: dt.datetime | None = None) -> str:
    """Dumps `databases` into a new complete set of `local`; returns its name."""
    server = connect()
    pg_dump = client("pg_dump", server.major)
    missing = sorted(set(databases) - server.databases())
    if missing:
        raise BackupError(f"no database {', '.join(missing)} on the server (provisioned and migrated?)")
    started = now or dt.datetime.now(dt.UTC)
    name = set_name(started)
    if (local.root / name).exists():
        raise BackupError(f"set {name} already exists in {local.describe()}")
    folder = local.partial(name)
    folder.mkdir(parents=True, exist_ok=False)
    local.sweep_partials(name)
    dumps = []
    for database in databases:
        dump = dump_database(server, pg_dump.path, database, folder)
        say(f"backup {name} {database}: {dump.bytes} bytes in {dump.seconds:.1f} s (alembic {dump.alembic_version})")
        dumps.append(dump)
    manifest = Manifest(set=name, started_at=started.isoformat(), finished_at=dt.datetime.now(dt.UTC).isoformat(),
                        server_version=server.version, pg_dump_version=pg_dump.version, databases=dumps)
    (folder / MANIFEST).write_text(manifest.to_json())
    local.put(name, folder)
    return name


def prune(store: SetStore, *, keep: int | None, max_age_days: float | None) -> list[str]:
    doomed = expired(store.sets(), keep=keep, max_age_days=max_age_days, now=dt.datetime.now(dt.UTC))
    for name in doomed:
        store.delete(name)
        say(f"retention: deleted {store.describe()}/{name}")
    return doomed


def check_age(local: LocalStore, hours: float, *, now: dt.datetime | None = None) -> int:
    """0 when the newest complete set of `local` is younger than `hours`, else 1 (with the reason on stderr)."""
    names = local.sets()
    age = ((now or dt.datetime.now(dt.UTC)) - set_time(names[-1])).total_seconds() / 3600 if names else None
    if age is not None and age < hours:
        say(f"backup: newest set {names[-1]} is {age:.1f} h old")
        return 0
    sys.stderr.write(f"backup: no set younger than {hours} h in {local.describe()}"
                     f"{f' (newest: {names[-1]}, {age:.1f} h old)' if names else ''}\n")
    return 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="scripts/backup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", default=env.get("EVA_BACKUP_DIR", DEFAULT_DIR),
                        help="local folder of the sets (default $EVA_BACKUP_DIR or ./backups)")
    parser.add_argument("--s3", default=env.get("EVA_BACKUP_S3_URL") or None, metavar="s3://BUCKET/PREFIX",
                        help="also upload the set there (default $EVA_BACKUP_S3_URL)")
    parser.add_argument("--keep", type=int, default=int(env.get("EVA_BACKUP_KEEP", DEFAULT_KEEP)),
                        help="keep the N newest sets (default $EVA_BACKUP_KEEP or 7; 0 turns the count off)")
    parser.add_argument("--max-age-days", type=float, default=float(env.get("EVA_BACKUP_MAX_AGE_DAYS") or 0) or None,
                        help="also delete sets older than this (default $EVA_BACKUP_MAX_AGE_DAYS; none)")
    parser.add_argument("--database", action="append", metavar="NAME",
                        help="only this database (repeatable); default every database of the registry")
    parser.add_argument("--check-age", type=float, metavar="HOURS",
                        help="back up nothing: exit 0 when the newest complete set is younger than HOURS, else 1")
    args = parser.parse_args(argv)
    known = registry_databases()
    unknown = sorted(set(args.database or []) - set(known))
    if unknown:
        parser.error(f"unknown database {', '.join(unknown)} (the registry has {', '.join(known)})")
    if args.keep < 0:
        parser.error("--keep must be 0 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    databases = args.database or registry_databases()
    local = LocalStore(Path(args.to))
    if args.check_age is not None:
        return check_age(local, args.check_age)
    keep = args.keep or None
    try:
        started = time.monotonic()
        name = back_up(local, databases)
        say(f"backup {name}: {len(databases)} databases in {time.monotonic() - started:.1f} s, "
            f"{local.describe()}/{name}")
        if args.s3:
            offsite = S3Store(args.s3)
            offsite.put(name, local.root / name)
            say(f"backup {name}: copied to {offsite.describe()}/{name}")
            prune(offsite, keep=keep, max_age_days=args.max_age_days)
        prune(local, keep=keep, max_age_days=args.max_age_days)
    except BackupError as error:
        sys.stderr.write(f"backup: {error}\n")
        return error.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
