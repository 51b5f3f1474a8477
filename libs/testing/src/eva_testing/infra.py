"""Where the test profile's real infrastructure listens (started by `make test` via scripts/infra.py)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TestInfra:
    __test__ = False

    pg_host: str
    pg_port: int
    owner_user: str
    owner_password: str
    app_user: str
    app_password: str
    redis_url: str
    kafka_bootstrap: str

    def owner_url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.owner_user}:{self.owner_password}@{self.pg_host}:{self.pg_port}/{database}"

    def app_url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.app_user}:{self.app_password}@{self.pg_host}:{self.pg_port}/{database}"

    def raw_owner_dsn(self, database: str) -> str:
        return f"postgresql://{self.owner_user}:{self.owner_password}@{self.pg_host}:{self.pg_port}/{database}"


def test_infra() -> TestInfra:
    return TestInfra(
        pg_host=os.environ.get("EVA_PG_HOST", "127.0.0.1"),
        pg_port=int(os.environ.get("EVA_PG_PORT", "25432")),
        owner_user=os.environ.get("EVA_PG_OWNER_USER", "eva_owner"),
        owner_password=os.environ.get("EVA_PG_OWNER_PASSWORD", "eva_owner"),
        app_user=os.environ.get("EVA_PG_APP_USER", "eva_app"),
        app_password=os.environ.get("EVA_PG_APP_PASSWORD", "eva_app"),
        redis_url=os.environ.get("EVA_REDIS_URL", "redis://127.0.0.1:26379/0"),
        kafka_bootstrap=os.environ.get("EVA_KAFKA_BOOTSTRAP", "127.0.0.1:29092"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


test_infra.__test__ = False  # type: ignore[attr-defined]  # a fixture helper, not a test
