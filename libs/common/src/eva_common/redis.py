"""Redis client factory and readiness check."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(
        url, decode_responses=True, socket_keepalive=True, health_check_interval=30, socket_connect_timeout=3
    )


async def redis_ready(client: Redis) -> bool:
    return bool(await client.ping())
