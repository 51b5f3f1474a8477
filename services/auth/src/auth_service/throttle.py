"""Login throttling in Redis (shared by every replica): failed attempts per account and attempts per client IP.

An account is an email within one tenant that has it ("email + tenant candidate"); an email that exists nowhere
is counted under its own key, so unknown emails and wrong passwords are throttled alike. Every attempt counts and a
successful login clears its account's count: in effect N failures per window. Keys carry a digest of the email,
never the email itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from eva_common.ratelimit import Decision, Limit, Limiter

from auth_service.errors import LoginThrottled

ACCOUNT = "login-account"
CLIENT_IP = "login-ip"
NO_TENANT = "-"


def account_key(tenant_id: str | None, email: str) -> str:
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return f"{tenant_id or NO_TENANT}:{digest}"


class LoginThrottle:
    def __init__(self, *, limiter: Limiter, account_limit: Limit, ip_limit: Limit) -> None:
        self._limiter = limiter
        self._account_limit = account_limit
        self._ip_limit = ip_limit

    async def count_ip(self, ip: str | None) -> None:
        """Counts one attempt from this address; LoginThrottled once it is over its limit."""
        if not ip:
            return
        decision = await self._limiter.hit(CLIENT_IP, ip, self._ip_limit)
        if not decision.allowed:
            raise LoginThrottled(retry_after=decision.retry_after)

    async def count_accounts(self, keys: Sequence[str]) -> Decision:
        """Counts one attempt against each account; the strictest decision wins."""
        worst = Decision(True, 0, 0)
        for key in keys:
            decision = await self._limiter.hit(ACCOUNT, key, self._account_limit)
            if not decision.allowed and (worst.allowed or decision.retry_after > worst.retry_after):
                worst = decision
            elif worst.allowed and decision.count > worst.count:
                worst = decision
        return worst

    def first_refusal(self, decision: Decision) -> bool:
        """The attempt that crossed the limit (audited once per window, not on every refused retry)."""
        return not decision.allowed and decision.count == self._account_limit.requests + 1

    async def clear_account(self, key: str) -> None:
        await self._limiter.reset(ACCOUNT, key, self._account_limit)
