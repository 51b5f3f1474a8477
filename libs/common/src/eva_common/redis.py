"""Redis client factory and readiness check."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def create_redis(url: str, *, max_connections: int = 200, wait_seconds: float = 5.0) -> Redis:
    """A client whose pool waits up to `wait_seconds` for a free connection when `max_connections` are busy (a
    burst of thousands of sockets signing out at once queues instead of failing with MaxConnectionsError)."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds, decode_responses=True, socket_keepalive=True,
        health_check_interval=30, socket_connect_timeout=3,
    )
    return Redis(connection_pool=pool)


async def redis_ready(client: Redis) -> bool:
    return bool(await client.ping())
