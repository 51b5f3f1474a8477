"""Which users of a tenant are online, right across gateway replicas and their crashes.

A user is online while at least one of their sockets has an unexpired entry. Each socket's entry is written when
it signs in, refreshed by its gateway replica's heartbeat and removed when it disconnects; a replica that dies
stops refreshing, so its sockets' entries expire and the next `expire()` (any process may run it) takes them out.
Each change of a user's state is reported exactly once, to whichever caller made it, so only that caller
announces it (`presence:update`).

Presence is scoped like the Socket.io channel its announcements go to (`for_channel`): processes on another
channel (a test's own) never see, expire or "take" this deployment's entries.

Keys (one Redis primary, as deployed; the namespace is `rt:presence:<channel>`, shown here as `rt:presence`):
- `rt:presence:<tenant>:<user>`  ZSET connection id -> expiry (ms)
- `rt:presence:<tenant>`         ZSET user id -> latest expiry of the user's connections (ms)
- `rt:presence:tenants`          SET of tenants with entries (what `expire()` walks)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

NAMESPACE = "rt:presence"


def for_channel(channel: str) -> str:
    """The presence namespace of the processes that announce on Socket.io channel `channel`."""
    return f"{NAMESPACE}:{channel}"


# KEYS: user, tenant, tenants. ARGV: connection, expiry, now, user id, tenant id. Returns 1 if the user came online.
_CONNECT = """
local was_online = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[3], '+inf') > 0
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
if was_online then return 0 end
return 1
"""

# KEYS: user, tenant. ARGV: connection, now, user id. Returns 1 if the user went offline.
_DISCONNECT = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local latest = redis.call('ZRANGE', KEYS[1], 0, 0, 'REV', 'WITHSCORES')
if #latest == 0 then
  redis.call('DEL', KEYS[1])
  local listed = redis.call('ZREM', KEYS[2], ARGV[3])
  if removed == 1 or listed == 1 then return 1 end
  return 0
end
redis.call('ZADD', KEYS[2], latest[2], ARGV[3])
return 0
"""

# KEYS: tenant, tenants. ARGV: expiry, user-key prefix, then user id / connection id pairs. Refreshes only
# connections that still exist, so a heartbeat racing a disconnect does not bring the connection back.
_REFRESH = """
for i = 4, #ARGV, 2 do
  local key = ARGV[2] .. ARGV[i]
  if redis.call('ZSCORE', key, ARGV[i + 1]) then
    redis.call('ZADD', key, ARGV[1], ARGV[i + 1])
    redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[i])
  end
end
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""

# KEYS: tenant, tenants. ARGV: now, tenant id, user-key prefix. Returns the users that went offline.
_EXPIRE = """
local gone = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, user in ipairs(stale) do
  local key = ARGV[3] .. user
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local latest = redis.call('ZRANGE', key, 0, 0, 'REV', 'WITHSCORES')
  if #latest == 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], user)
    table.insert(gone, user)
  else
    redis.call('ZADD', KEYS[1], latest[2], user)
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
end
return gone
"""


@dataclass(frozen=True, slots=True)
class Connection:
    tenant_id: str
    user_id: str
    connection_id: str


@dataclass(frozen=True, slots=True)
class PresenceChange:
    tenant_id: str
    user_id: str
    online: bool


class PresenceStore:
    def __init__(
        self, redis: Redis, *, ttl_seconds: float, clock: Callable[[], float] = time.time, namespace: str = NAMESPACE
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._tenants_key = f"{namespace}:tenants"
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._connect = redis.register_script(_CONNECT)
        self._disconnect = redis.register_script(_DISCONNECT)
        self._refresh = redis.register_script(_REFRESH)
        self._expire = redis.register_script(_EXPIRE)

    def _tenant_key(self, tenant_id: str) -> str:
        return f"{self._namespace}:{tenant_id}"

    def _user_prefix(self, tenant_id: str) -> str:
        return f"{self._namespace}:{tenant_id}:"

    def _user_key(self, tenant_id: str, user_id: str) -> str:
        return self._user_prefix(tenant_id) + user_id

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def connect(self, connection: Connection) -> bool:
        """Records a signed-in socket; True when its user was offline until now."""
        now = self._now_ms()
        came_online = await self._connect(
            keys=[self._user_key(connection.tenant_id, connection.user_id), self._tenant_key(connection.tenant_id),
                  self._tenants_key],
            args=[connection.connection_id, now + self._ttl_ms, now, connection.user_id, connection.tenant_id],
        )
        return bool(int(came_online))

    async def disconnect(self, connection: Connection) -> bool:
        """Forgets a socket; True when it was its user's last one (the user is now offline)."""
        went_offline = await self._disconnect(
            keys=[self._user_key(connection.tenant_id, connection.user_id), self._tenant_key(connection.tenant_id)],
            args=[connection.connection_id, self._now_ms(), connection.user_id],
        )
        return bool(int(went_offline))

    async def refresh(self, connections: Iterable[Connection], *, batch: int = 500) -> None:
        """The heartbeat: pushes back the expiry of these (still recorded) sockets."""
        by_tenant: dict[str, list[str]] = {}
        for connection in connections:
            by_tenant.setdefault(connection.tenant_id, []).extend((connection.user_id, connection.connection_id))
        expiry = self._now_ms() + self._ttl_ms
        for tenant_id, pairs in by_tenant.items():
            for start in range(0, len(pairs), batch * 2):
                await self._refresh(keys=[self._tenant_key(tenant_id), self._tenants_key],
                                    args=[expiry, self._user_prefix(tenant_id), tenant_id,
                                          *pairs[start:start + batch * 2]])

    async def online(self, tenant_id: str) -> list[str]:
        """The tenant's online users (sorted)."""
        users = await self._redis.zrangebyscore(self._tenant_key(tenant_id), f"({self._now_ms()}", "+inf")
        return sorted(user.decode() if isinstance(user, bytes) else str(user) for user in users)

    async def expire(self) -> list[PresenceChange]:
        """Takes out every expired socket entry (a crashed replica's); the users left with none went offline."""
        now = self._now_ms()
        changes: list[PresenceChange] = []
        for raw in await self._redis.smembers(self._tenants_key):
            tenant_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            gone = await self._expire(keys=[self._tenant_key(tenant_id), self._tenants_key],
                                      args=[now, tenant_id, self._user_prefix(tenant_id)])
            changes.extend(
                PresenceChange(tenant_id=tenant_id, user_id=user.decode() if isinstance(user, bytes) else str(user),
                               online=False)
                for user in gone
            )
        return changes
