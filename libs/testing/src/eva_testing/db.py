"""A fresh, migrated database per test module: created as the owner role, used as the app role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from eva_common.migrations import upgrade

from eva_testing.infra import TestInfra

_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
    "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {app}",
)


@dataclass(frozen=True, slots=True)
class TestDatabase:
    __test__ = False

    name: str
    app_url: str
    owner_url: str
    owner_dsn: str


@asynccontextmanager
async def migrated_database(infra: TestInfra, service_dir: Path, prefix: str) -> AsyncIterator[TestDatabase]:
    """Creates `<prefix>_<random>`, runs the service's migrations as the owner, drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.raw_owner_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(infra.raw_owner_dsn(name))
    try:
        await conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {infra.app_user}')
        for statement in _GRANTS:
            await conn.execute(statement.format(app=infra.app_user, owner=infra.owner_user))
    finally:
        await conn.close()
    database = TestDatabase(
        name=name, app_url=infra.app_url(name), owner_url=infra.owner_url(name), owner_dsn=infra.raw_owner_dsn(name)
    )
    import asyncio

    await asyncio.to_thread(upgrade, service_dir, database.owner_url)
    try:
        yield database
    finally:
        admin = await asyncpg.connect(infra.raw_owner_dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
