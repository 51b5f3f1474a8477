"""scripts/backup and scripts/restore against the test profile's real PostgreSQL (a scratch database shaped like a
service's: owned by eva_owner, forced row-level security, a SECURITY DEFINER lookup, a sequence) and a real MinIO
for the offsite copy: what a restore gives back, what it refuses before touching anything, and the exit codes."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backup
import backup_sets
import pg_client
import pytest
import restore
from eva_common.migrations import upgrade
from eva_testing.infra import free_port, test_infra
from eva_testing.pg_admin import admin_env, databases, fingerprint, row_counts, sql_as
from eva_testing.scripts import load_script

SCRIPTS = Path(__file__).resolve().parent.parent
ROOT = SCRIPTS.parent
T1 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=1)

SCHEMA = """
SET ROLE eva_owner;
CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notes USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY definer_lookup ON notes FOR SELECT TO eva_owner USING (true);
CREATE FUNCTION note_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = public
  AS 'SELECT count(*) FROM notes';
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO eva_app;
GRANT USAGE, SELECT ON SEQUENCE notes_id_seq TO eva_app;
RESET ROLE;
INSERT INTO notes (tenant_id, body) SELECT CASE WHEN n % 2 = 0 THEN 'a' ELSE 'b' END, 'note ' || n
  FROM generate_series(1, 500) AS n;
"""


@pytest.fixture(scope="module")
def admin() -> dict[str, str]:
    return admin_env()


@pytest.fixture
def pg(admin: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """libpq's environment of the scripts: the test cluster's superuser."""
    for key, value in admin.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EVA_PG_BIN_DIR", raising=False)
    return admin


def _psql(env: dict[str, str], database: str, sql: str, *, user: str | None = None,
          password: str | None = None) -> str:
    return sql_as({**env, "PGUSER": user, "PGPASSWORD": password} if user and password else env, database, sql)


@pytest.fixture
def database(pg: dict[str, str]) -> Iterator[str]:
    name = f"eva_bk_{uuid.uuid4().hex[:8]}"
    _psql(pg, "postgres", f"CREATE DATABASE {name} OWNER eva_owner;\nREVOKE ALL ON DATABASE {name} FROM PUBLIC;\n"
                          f"GRANT CONNECT, TEMPORARY ON DATABASE {name} TO eva_app;\n")
    _psql(pg, name, "ALTER SCHEMA public OWNER TO eva_owner;\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\n"
                    "GRANT USAGE ON SCHEMA public TO eva_app;\n" + SCHEMA)
    try:
        yield name
    finally:
        _psql(pg, "postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")


def _drop(env: dict[str, str], name: str) -> None:
    _psql(env, "postgres", f"DROP DATABASE {name} WITH (FORCE);")
    assert name not in databases(env)


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, check=False, timeout=120)


# ---------------------------------------------------------------- retention


def test_retention_keeps_the_newest_sets_and_drops_the_old_ones() -> None:
    names = [backup_sets.set_name(T1 + dt.timedelta(days=day)) for day in range(10)]
    now = T1 + dt.timedelta(days=9, hours=1)
    assert backup_sets.expired(names, keep=3, max_age_days=None, now=now) == names[:7]
    assert backup_sets.expired(names, keep=None, max_age_days=2.5, now=now) == names[:7]
    assert backup_sets.expired(names, keep=8, max_age_days=5, now=now) == names[:5]  # whichever deletes more
    assert backup_sets.expired(names, keep=None, max_age_days=None, now=now) == []
    # the newest set survives any policy, even one that would delete everything
    assert backup_sets.expired(names, keep=0, max_age_days=0.001, now=now + dt.timedelta(days=30)) == names[:9]


def test_the_age_check_tells_whether_a_recent_set_exists(tmp_path: Path) -> None:
    local = backup_sets.LocalStore(tmp_path)
    assert backup.check_age(local, 26, now=T2) == 1  # no set at all
    (tmp_path / backup_sets.set_name(T1)).mkdir()
    assert backup.check_age(local, 26, now=T2) == 1  # incomplete: no manifest
    (tmp_path / backup_sets.set_name(T1) / backup_sets.MANIFEST).write_text("{}")
    assert backup.check_age(local, 26, now=T2) == 0
    assert backup.check_age(local, 26, now=T1 + dt.timedelta(hours=27)) == 1
    assert _run("backup", "--to", str(tmp_path), "--check-age", "1").returncode == 1  # T1 is long ago


# ---------------------------------------------------------------- backup and restore


def test_a_restore_gives_back_rows_owners_grants_and_row_level_security(database: str, pg: dict[str, str],
                                                                         tmp_path: Path) -> None:
    before = fingerprint(pg, database)
    assert row_counts(before)["notes"] == 500
    local = backup_sets.LocalStore(tmp_path / "sets")
    name = backup.back_up(local, [database], now=T1)
    manifest = local.manifest(name)
    dump = manifest.database(database)
    assert name == "20260102T030405Z" and local.sets() == [name] and not list(local.root.glob(".*.partial"))
    assert dump.sha256 == backup_sets.sha256_of(local.root / name / dump.file) and dump.bytes > 0
    assert manifest.server_version and manifest.pg_dump_version

    _drop(pg, database)
    restore.restore(local, "latest", [database])

    assert fingerprint(pg, database) == before  # rows, sequences, owners, grants, policies, functions
    app = {"user": "eva_app", "password": os.environ.get("EVA_PG_APP_PASSWORD", "eva_app")}
    assert _psql(pg, database, "SELECT count(*) FROM notes", **app) == "0"  # fail-closed without a tenant
    tenant_a = "SELECT set_config('app.tenant_id', 'a', false);\nSELECT count(*) FROM notes WHERE tenant_id <> 'a'"
    assert _psql(pg, database, tenant_a + ";\nSELECT count(*) FROM notes", **app).splitlines()[1:] == ["0", "250"]
    assert _psql(pg, database, "SELECT note_count()", **app) == "500"  # the definer lookup still sees every row


def test_a_damaged_archive_is_refused_before_anything_is_touched(database: str, pg: dict[str, str],
                                                                  tmp_path: Path) -> None:
    local = backup_sets.LocalStore(tmp_path / "sets")
    name = backup.back_up(local, [database], now=T1)
    _psql(pg, database, "INSERT INTO notes (tenant_id, body) VALUES ('a', 'written after the backup')")
    archive = local.root / name / f"{database}.dump"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    result = _run("restore", "--from", str(local.root), "--database", database, env=pg)

    assert result.returncode == pg_client.EXIT_CHECKSUM, result.stderr
    assert "sha256" in result.stderr and "damaged" in result.stderr
    assert row_counts(fingerprint(pg, database))["notes"] == 501  # the database was not dropped


def test_a_missing_or_incomplete_set_is_refused(tmp_path: Path, pg: dict[str, str]) -> None:
    empty = _run("restore", "--from", str(tmp_path / "nothing"), env=pg)
    assert empty.returncode == pg_client.EXIT_NO_SET and "no backup set" in empty.stderr
    incomplete = tmp_path / "sets" / "20260102T030405Z"  # a run that died before its manifest
    incomplete.mkdir(parents=True)
    (incomplete / "eva_auth.dump").write_bytes(b"PGDMP")
    named = _run("restore", "--from", str(tmp_path / "sets"), "--set", incomplete.name, env=pg)
    assert named.returncode == pg_client.EXIT_NO_SET and "no complete backup set" in named.stderr
    listed = _run("restore", "--from", str(tmp_path / "sets"), "--list", env=pg)
    assert listed.returncode == 0 and listed.stdout == ""


def test_an_unreachable_server_exits_3(tmp_path: Path, pg: dict[str, str], database: str) -> None:
    local = backup_sets.LocalStore(tmp_path / "sets")
    backup.back_up(local, [database], now=T1)
    away = {"PGPORT": str(free_port()), "PGCONNECT_TIMEOUT": "3"}
    backed = _run("backup", "--to", str(tmp_path / "other"), "--database", "eva_auth", env=away)
    restored = _run("restore", "--from", str(local.root), "--database", database, env=away)
    for result in (backed, restored):
        assert result.returncode == pg_client.EXIT_UNREACHABLE, result.stderr
        assert "unreachable" in result.stderr
    assert not (tmp_path / "other").exists() or not backup_sets.LocalStore(tmp_path / "other").sets()


def _old_client_folder(tmp_path: Path, name: str) -> Path:
    """A folder whose psql is the real one and whose `name` says it is PostgreSQL 9.6."""
    folder = tmp_path / "old-bin"
    folder.mkdir(exist_ok=True)
    (folder / "psql").symlink_to(load_script("infra").pg_bin_dir() / "psql")
    fake = folder / name
    fake.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) 9.6.24'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return folder


def test_a_client_older_than_the_server_is_refused(tmp_path: Path, pg: dict[str, str], database: str) -> None:
    local = backup_sets.LocalStore(tmp_path / "sets")
    backup.back_up(local, [database], now=T1)
    folder = _old_client_folder(tmp_path, "pg_dump")
    backed = _run("backup", "--to", str(tmp_path / "other"), "--database", "eva_auth",
                  env={"EVA_PG_BIN_DIR": str(folder)})
    assert backed.returncode == pg_client.EXIT_CLIENT_TOO_OLD and "older than the server" in backed.stderr
    (folder / "pg_restore").write_text("#!/bin/sh\necho 'pg_restore (PostgreSQL) 9.6.24'\n")
    (folder / "pg_restore").chmod(0o755)
    restored = _run("restore", "--from", str(local.root), "--database", database, env={"EVA_PG_BIN_DIR": str(folder)})
    assert restored.returncode == pg_client.EXIT_CLIENT_TOO_OLD, restored.stderr
    assert row_counts(fingerprint(pg, database))["notes"] == 500


# ---------------------------------------------------------------- offsite copy on S3 (MinIO)


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server_script = load_script("s3_server")
    with server_script.running(server_script.install(), tmp_path_factory.mktemp("minio") / "data") as server:
        yield server


@pytest.fixture
def bucket(minio: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in {"EVA_BACKUP_S3_ENDPOINT_URL": minio.endpoint_url, "EVA_BACKUP_S3_REGION": minio.region,
                       "EVA_BACKUP_S3_ACCESS_KEY_ID": minio.access_key,
                       "EVA_BACKUP_S3_SECRET_ACCESS_KEY": minio.secret_key, "EVA_BACKUP_S3_PATH_STYLE": "true"}.items():
        monkeypatch.setenv(key, value)
    name = f"eva-backups-{uuid.uuid4().hex[:8]}"
    backup_sets.S3Store(f"s3://{name}/x").client.create_bucket(Bucket=name)
    return name


def test_sets_go_offsite_to_s3_keep_their_retention_and_restore_from_there(
        database: str, pg: dict[str, str], bucket: str, tmp_path: Path) -> None:
    before = fingerprint(pg, database)
    local = backup_sets.LocalStore(tmp_path / "sets")
    offsite = backup_sets.S3Store(f"s3://{bucket}/eva/nightly")
    for moment in (T1, T2):
        offsite.put(backup.back_up(local, [database], now=moment), local.root / backup_sets.set_name(moment))
    assert offsite.sets() == ["20260102T030405Z", "20260102T040405Z"]
    keys = [item["Key"] for item in offsite.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"eva/nightly/20260102T040405Z/{database}.dump" in keys

    assert backup.prune(offsite, keep=1, max_age_days=None) == ["20260102T030405Z"]
    assert offsite.sets() == ["20260102T040405Z"]
    assert not [key for key in (item["Key"] for item in offsite.client.list_objects_v2(Bucket=bucket)["Contents"])
                if "20260102T030405Z" in key]

    for name in local.sets():
        local.delete(name)  # the local copy is lost with the machine: only the offsite one is left
    _drop(pg, database)
    assert restore.restore(offsite, "latest", [database]).set == "20260102T040405Z"
    assert fingerprint(pg, database) == before


@pytest.fixture
def registry_databases() -> list[str]:
    """eva_ingest and eva_n8n of the test cluster at their migrations' head (on a fresh cluster nothing has migrated
    them yet: the end-to-end stack starts later), as the stack's own start would leave them."""
    infra = test_infra()
    rows = {row.database: row for row in load_script("deployables").load() if row.database}
    chosen = ["eva_ingest", "eva_n8n"]
    for name in chosen:
        upgrade(ROOT / rows[name].directory, infra.owner_url(name))
    return chosen


def test_the_entry_points_back_up_the_registry_databases_to_disk_and_s3(pg: dict[str, str], bucket: str,
                                                                       registry_databases: list[str],
                                                                       tmp_path: Path) -> None:
    url = f"s3://{bucket}/eva"
    backed = _run("backup", "--to", str(tmp_path / "sets"), "--s3", url, "--database", "eva_ingest",
                  "--database", "eva_n8n")
    assert backed.returncode == 0, backed.stderr
    [name] = backup_sets.LocalStore(tmp_path / "sets").sets()
    assert f"copied to {url}/{name}" in backed.stdout
    listed = _run("restore", "--from", url, "--list")
    assert listed.returncode == 0 and listed.stdout.startswith(f"{name}  2 databases"), listed.stderr
    manifest = backup_sets.S3Store(url).manifest(name)
    assert manifest.names() == registry_databases
    assert all(dump.alembic_version for dump in manifest.databases)  # the schema version of each database
    unknown = _run("backup", "--to", str(tmp_path / "sets"), "--database", "eva_nope")
    assert unknown.returncode == 2 and "unknown database eva_nope" in unknown.stderr
