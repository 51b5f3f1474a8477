"""Login throttle decisions (the counting itself is eva_common's RateLimiter, exercised against Redis in the
integration tests)."""

from typing import Any

import pytest
from auth_service.errors import LoginThrottled
from auth_service.throttle import LoginThrottle, account_key
from eva_common.ratelimit import Limit


@pytest.fixture
def throttle(limiter: Any) -> LoginThrottle:
    return LoginThrottle(limiter=limiter, account_limit=Limit(3, 900), ip_limit=Limit(2, 300))


async def test_ip_attempts_are_counted_and_refused_past_the_limit(throttle: LoginThrottle, limiter: Any) -> None:
    await throttle.count_ip("198.51.100.7")
    await throttle.count_ip("198.51.100.7")
    with pytest.raises(LoginThrottled) as raised:
        await throttle.count_ip("198.51.100.7")
    assert raised.value.code == "LOGIN_THROTTLED" and raised.value.retry_after == 42
    await throttle.count_ip("198.51.100.8")  # another address has its own count
    await throttle.count_ip(None)  # no address (a direct gRPC caller): no per-IP limit
    assert limiter.counts[("login-ip", "198.51.100.7")] == 3


async def test_the_strictest_account_wins_and_the_first_refusal_is_marked(throttle: LoginThrottle) -> None:
    one, two = account_key("t1", "ana@h.com"), account_key("t2", "ana@h.com")
    for _ in range(3):
        assert (await throttle.count_accounts([one])).allowed
    decision = await throttle.count_accounts([two, one])
    assert not decision.allowed and decision.count == 4 and throttle.first_refusal(decision)
    again = await throttle.count_accounts([one])
    assert not again.allowed and not throttle.first_refusal(again)


async def test_clearing_an_account_restarts_its_count(throttle: LoginThrottle, limiter: Any) -> None:
    key = account_key("t1", "ana@h.com")
    for _ in range(3):
        await throttle.count_accounts([key])
    await throttle.clear_account(key)
    assert (await throttle.count_accounts([key])).count == 1
    assert limiter.resets == [("login-account", key)]


def test_account_keys_do_not_contain_the_email() -> None:
    key = account_key("t1", "ana@hotel.com")
    assert "ana" not in key and key.startswith("t1:")
    assert account_key(None, "ana@hotel.com").startswith("-:")
    assert account_key("t1", "ana@hotel.com") != account_key("t2", "ana@hotel.com")
