"""Login throttling in the real Redis: per account (5 failures in 15 minutes) and per client IP (30 attempts in
5 minutes), answered RESOURCE_EXHAUSTED / LOGIN_THROTTLED with a Retry-After that survives the gRPC hop."""

import asyncio
import uuid

import grpc
import pytest
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva_common.errors import ResourceExhausted
from eva_common.grpc.client import create_channel, rpc

pytestmark = pytest.mark.integration

WRONG = "wrong horse battery"


def unique_ip() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


async def test_five_failures_lock_the_account_even_for_the_right_password(stack) -> None:
    admin = await stack.register(tenant_name="Throttle Hotel")
    email = admin.user.email
    for _ in range(5):
        assert await stack.failure(stack.login(email, WRONG)) == (
            grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    locked = await stack.failure(stack.login(email))
    assert locked == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED")
    assert locked.retry_after is not None and 1 <= int(locked.retry_after) <= 900
    # another account is not affected
    other = await stack.register(tenant_name="Unthrottled Hotel")
    assert (await stack.login(other.user.email)).user.id == other.user.id


async def test_unknown_emails_are_throttled_like_known_ones(stack) -> None:
    email = stack.email("ghost")
    answers = [await stack.failure(stack.login(email, WRONG)) for _ in range(6)]
    assert answers[:5] == [(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")] * 5
    assert answers[5] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED") and answers[5].retry_after


async def test_a_successful_login_clears_the_account_count(stack) -> None:
    admin = await stack.register(tenant_name="Forgetful Hotel")
    email = admin.user.email
    for _ in range(4):
        await stack.failure(stack.login(email, WRONG))
    assert (await stack.login(email)).user.id == admin.user.id
    for _ in range(5):  # a full allowance again
        assert (await stack.failure(stack.login(email, WRONG))).code == "INVALID_CREDENTIALS"
    assert (await stack.failure(stack.login(email, WRONG))).code == "LOGIN_THROTTLED"


async def test_each_tenant_of_an_email_is_its_own_account(stack) -> None:
    email = stack.email("shared")
    first = await stack.register(email=email, tenant_name="Shared One")
    second = await stack.register(email=email, tenant_name="Shared Two")
    for _ in range(6):
        await stack.failure(stack.login(email, WRONG, tenant_slug=first.tenant.slug))
    assert (await stack.failure(stack.login(email, tenant_slug=first.tenant.slug))).code == "LOGIN_THROTTLED"
    # without a slug the attempt touches both accounts, so it is refused too; the other tenant alone is open
    assert (await stack.failure(stack.login(email))).code == "LOGIN_THROTTLED"
    assert (await stack.login(email, tenant_slug=second.tenant.slug)).tenant.id == second.tenant.id


async def test_thirty_attempts_from_one_address_then_it_waits(stack) -> None:
    ip, other_ip = unique_ip(), unique_ip()
    gate = asyncio.Semaphore(5)  # a few at a time: argon2 is deliberately slow and memory-hungry

    async def attempt():
        async with gate:
            return await stack.failure(stack.login(stack.email("spray"), WRONG, ip=ip))

    attempts = await asyncio.gather(*(attempt() for _ in range(30)))
    assert {attempt.code for attempt in attempts} == {"INVALID_CREDENTIALS"}
    admin = await stack.register(tenant_name="Sprayed Hotel")
    blocked = await stack.failure(stack.login(admin.user.email, ip=ip))  # the right password, the wrong address
    assert blocked == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED") and int(blocked.retry_after) >= 1
    assert (await stack.login(admin.user.email, ip=other_ip)).user.id == admin.user.id


async def test_retry_after_travels_back_as_a_domain_error(stack) -> None:
    """What the gateway does with the answer: the shared client turns it into ResourceExhausted(retry_after=...),
    which the HTTP error handler sends as a Retry-After header."""
    email = stack.email("hop")
    channel = create_channel(f"127.0.0.1:{stack.auth.grpc_server.port}")
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    try:
        for _ in range(5):
            await stack.failure(stack.login(email, WRONG))
        with pytest.raises(ResourceExhausted) as raised:
            await rpc(stub.Login, auth_pb2.LoginRequest(email=email, password=WRONG), token=None, timeout=10)
    finally:
        await channel.close()
    assert raised.value.code == "LOGIN_THROTTLED"
    assert isinstance(raised.value.retry_after, int) and 1 <= raised.value.retry_after <= 900
