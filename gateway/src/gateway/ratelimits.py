"""Edge rate limits, counted in Redis (eva_common.ratelimit) so every replica shares them: per user (an API key
counts as its own user) and per tenant on authenticated /api/* calls, per client IP on /auth/* and on API-key
exchanges. A refusal is 429 RATE_LIMITED with Retry-After; every counted call answers RateLimit-Limit and
RateLimit-Remaining for the limit closest to running out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eva_common.auth import Principal
from eva_common.errors import ResourceExhausted, Unavailable
from eva_common.ratelimit import HitCounter as HitCounter  # what the app passes: RateLimiter, or a fake in tests
from eva_common.ratelimit import Limit
from redis.exceptions import RedisError

MINUTE = 60


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining)}


class RateLimited(ResourceExhausted):
    """429 RATE_LIMITED with Retry-After (from retry_after) and the RateLimit-* headers of the exhausted limit."""

    def __init__(self, detail: str, *, retry_after: int, quota: Quota) -> None:
        super().__init__(detail, code="RATE_LIMITED", retry_after=retry_after)
        self.headers = quota.headers()


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    key: str
    limit: Limit
    scope: str  # for the error detail: "for this user", …


class EdgeLimits:
    def __init__(
        self, *, counter: HitCounter, user_per_minute: int, tenant_per_minute: int, auth_ip_per_minute: int
    ) -> None:
        self._counter = counter
        self.user = Limit(user_per_minute, MINUTE)
        self.tenant = Limit(tenant_per_minute, MINUTE)
        self.auth_ip = Limit(auth_ip_per_minute, MINUTE)

    async def caller(self, principal: Principal) -> Quota:
        """One authenticated /api/* call: counted for the user (or key) and for its tenant."""
        checks = [_Check("user", principal.subject, self.user, "for this user")]
        if principal.tenant_id:
            checks.append(_Check("tenant", principal.tenant_id, self.tenant, "for this tenant"))
        return await self._check(checks)

    async def auth_call(self, ip: str) -> Quota:
        """One /auth/* call from this client IP."""
        return await self._check([_Check("auth-ip", ip, self.auth_ip, "from this address")])

    async def key_exchange(self, ip: str) -> Quota:
        """One API-key exchange at auth (a key not in the cache) from this client IP."""
        return await self._check([_Check("api-key-ip", ip, self.auth_ip, "with API keys from this address")])

    async def _check(self, checks: Sequence[_Check]) -> Quota:
        quotas: list[Quota] = []
        for check in checks:
            try:
                decision = await self._counter.hit(check.name, check.key, check.limit)
            except RedisError as error:
                raise Unavailable("the rate limiter is unavailable", code="UPSTREAM_UNAVAILABLE") from error
            quota = Quota(check.limit.requests, max(0, check.limit.requests - decision.count))
            if not decision.allowed:
                raise RateLimited(f"too many requests {check.scope}; retry later", retry_after=decision.retry_after,
                                  quota=quota)
            quotas.append(quota)
        return min(quotas, key=lambda quota: quota.remaining)
