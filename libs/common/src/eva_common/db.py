"""Async PostgreSQL engine and sessions (SQLModel over asyncpg), with the tenant set per transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(url: str | SecretStr, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    return create_async_engine(
        url.get_secret_value() if isinstance(url, SecretStr) else url,
        pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800, echo=echo
    )


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: SessionFactory, *, tenant_id: str | None = None) -> AsyncIterator[AsyncSession]:
    """One transaction; when a tenant is given it is set as `app.tenant_id` for row-level security."""
    async with factory() as session, session.begin():
        if tenant_id is not None:
            connection = await session.connection()
            await connection.execute(
                text("SELECT set_config('app.tenant_id', :tenant_id, true)"), {"tenant_id": tenant_id}
            )
        yield session


async def database_ready(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True
