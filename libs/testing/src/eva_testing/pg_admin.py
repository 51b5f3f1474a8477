"""PostgreSQL as its superuser, for the tests of the backups (scripts/backup, scripts/restore): an admin role that
logs in over TCP on a local cluster of scripts/infra.py, and a scratch cluster made as a new install's."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from eva_testing.infra import free_port
from eva_testing.scripts import load_script

ADMIN_ROLE = "eva_test_admin"


def superuser_sql(profile: Any, sql: str, database: str = "postgres") -> str:
    """Runs `sql` as the cluster's superuser over its unix socket (peer authentication, as scripts/infra.py)."""
    infra = load_script("infra")
    bindir = infra.pg_bin_dir()
    psql = [str(bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(profile.pg_run), "-p", str(profile.pg_port),
            "-U", infra.PG_OS_USER, "-d", database, "-f", "-"]
    return str(infra.run(infra.as_postgres(psql), stdin=sql))


def admin_env(profile_name: str = "test", profile: Any = None) -> dict[str, str]:
    """libpq's environment for a superuser of the profile's cluster (the role is made, or its password reset)."""
    infra = load_script("infra")
    chosen = profile if profile is not None else infra.load_profile(profile_name)
    password = secrets.token_hex(16)
    superuser_sql(chosen, f"SELECT 'CREATE ROLE {ADMIN_ROLE}' WHERE NOT EXISTS "
                          f"(SELECT FROM pg_roles WHERE rolname = '{ADMIN_ROLE}') \\gexec\n"
                          f"ALTER ROLE {ADMIN_ROLE} LOGIN SUPERUSER PASSWORD '{password}';\n")
    return {"PGHOST": infra.HOST, "PGPORT": str(chosen.pg_port), "PGUSER": ADMIN_ROLE, "PGPASSWORD": password,
            "PGDATABASE": "postgres"}


@contextlib.contextmanager
def scratch_cluster(name: str) -> Iterator[Any]:
    """A second, empty PostgreSQL cluster on a free port (initdb with the Debian binaries, as scripts/infra.py makes
    its profiles), provisioned as a new install: roles eva_owner and eva_app and the registry's databases, empty.
    Stopped and deleted at the end."""
    infra = load_script("infra")
    profile = infra.Profile(name=name, pg_port=free_port(), redis_port=0, kafka_port=0, kafka_controller_port=0)
    shutil.rmtree(profile.root, ignore_errors=True)
    try:
        infra.pg_up(profile)
        yield profile
    finally:
        with contextlib.suppress(Exception):
            infra.pg_down(profile)
        shutil.rmtree(profile.root, ignore_errors=True)


# Every fact a restore must give back, one line each: the database's owner and grants, the public schema's, each
# relation's owner, grants and row-level security, the policies, default privileges, the extensions (name and
# version: their objects belong to whoever runs CREATE EXTENSION, the restoring superuser, which no dump records),
# the database's own functions (SECURITY DEFINER lookups), sequences' positions, and every table's rows (count and
# an md5 over the rows in order, read as a superuser, which row-level security does not filter).
FINGERPRINT_SQL = r"""
SELECT 'database', datname, datdba::regrole, coalesce(datacl::text, '') FROM pg_database
  WHERE datname = current_database();
SELECT 'schema', nspname, nspowner::regrole, coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public';
SELECT 'relation', relname, relkind, relowner::regrole, coalesce(relacl::text, ''), relrowsecurity,
  relforcerowsecurity FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'S', 'v');
SELECT 'policy', tablename, policyname, roles::text, cmd, coalesce(qual, ''), coalesce(with_check, '')
  FROM pg_policies WHERE schemaname = 'public';
SELECT 'default-acl', defaclrole::regrole, defaclobjtype, defaclacl::text FROM pg_default_acl;
SELECT 'extension', extname, extversion FROM pg_extension;
SELECT 'function', proname, proowner::regrole, prosecdef, coalesce(proacl::text, ''), md5(prosrc)
  FROM pg_proc p WHERE pronamespace = 'public'::regnamespace
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                   AND d.deptype = 'e');
SELECT 'sequence', sequencename, coalesce(last_value::text, '') FROM pg_sequences WHERE schemaname = 'public';
SELECT format('SELECT %L, %L, count(*), md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) '
              'FROM public.%I t', 'rows', tablename, tablename)
  FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename \gexec
"""


def sql_as(env: dict[str, str], database: str, sql: str) -> str:
    """Runs `sql` with psql in libpq's environment `env` (PGHOST, PGPORT, PGUSER, PGPASSWORD); its unaligned output."""
    infra = load_script("infra")
    psql = [str(infra.pg_bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database,
            "-f", "-"]
    result = subprocess.run(psql, input=sql, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"psql on {database} as {env.get('PGUSER')}: {result.stderr.strip()}")
    return result.stdout.strip()


def fingerprint(env: dict[str, str], database: str) -> list[str]:
    """The database's FINGERPRINT_SQL lines, sorted, as the superuser of libpq's environment `env`."""
    return sorted(line for line in sql_as(env, database, FINGERPRINT_SQL).splitlines() if line)


def databases(env: dict[str, str]) -> set[str]:
    return set(sql_as(env, "postgres", "SELECT datname FROM pg_database").splitlines())


def row_counts(lines: list[str]) -> dict[str, int]:
    """The row count per table of a fingerprint."""
    return {parts[1]: int(parts[2]) for parts in (line.split("|") for line in lines) if parts[0] == "rows"}
