"""Register, login, GetMe, service tokens and the JWKS, through the real gRPC servers of auth and tenant."""

import asyncio
import json
import statistics
import time

import grpc
import httpx
import jwt
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


async def test_register_then_login_then_get_me(stack) -> None:
    email = stack.email()
    registered = await stack.register(email=email.upper(), tenant_name="Hôtel Bella Vista")
    assert registered.user.email == email  # stored lowercased
    assert registered.user.role == "admin" and registered.user.active
    assert registered.tenant.slug.startswith("hotel-bella-vista")
    assert registered.tenant.status == "active" and registered.expires_in == 900
    claims = jwt.decode(registered.access_token, options={"verify_signature": False})
    assert claims["tid"] == registered.tenant.id == registered.user.tenant_id
    assert jwt.get_unverified_header(registered.access_token)["kid"] == "current"

    logged_in = await stack.login(email)
    assert logged_in.user.id == registered.user.id
    assert logged_in.refresh_token != registered.refresh_token

    me = await stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(logged_in.access_token))
    assert me.user.id == registered.user.id and me.user.email == email
    assert me.tenant.id == registered.tenant.id and me.tenant.name == "Hôtel Bella Vista"


async def test_stored_password_is_argon2id_and_refresh_token_is_hashed(stack) -> None:
    session = await stack.register()
    (row,) = await stack.sql(stack.auth_db, "SELECT password_hash FROM users WHERE id = $1", session.user.id)
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]
    rows = await stack.sql(stack.auth_db, "SELECT token_hash FROM refresh_tokens WHERE user_id = $1", session.user.id)
    assert len(rows) == 1 and rows[0]["token_hash"] != session.refresh_token


async def test_get_me_without_token_is_unauthenticated(stack) -> None:
    status, code = await stack.failure(stack.auth_stub.GetMe(auth_pb2.GetMeRequest()))
    assert status == grpc.StatusCode.UNAUTHENTICATED and code == "UNAUTHENTICATED"


async def test_wrong_password_and_unknown_email_look_the_same(stack) -> None:
    email = stack.email()
    await stack.register(email=email)
    wrong_password, unknown_email = [], []
    for _ in range(3):
        started = time.perf_counter()
        wrong = await stack.failure(stack.login(email, "wrong horse battery"))
        wrong_password.append(time.perf_counter() - started)
        started = time.perf_counter()
        unknown = await stack.failure(stack.login(stack.email(), "wrong horse battery"))
        unknown_email.append(time.perf_counter() - started)
        assert wrong == unknown == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    # an unknown email still pays for one argon2 verification (a dummy hash), so it is not measurably faster
    assert statistics.median(unknown_email) > 0.5 * statistics.median(wrong_password)


async def test_unknown_tenant_slug_is_invalid_credentials(stack) -> None:
    email = stack.email()
    await stack.register(email=email)
    assert await stack.failure(stack.login(email, tenant_slug="no-such-hotel")) == (
        grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def test_email_in_two_tenants_needs_a_slug(stack) -> None:
    email = stack.email()
    first = await stack.register(email=email, tenant_name="Twin Hotel")
    second = await stack.register(email=email, tenant_name="Twin Hotel")
    assert first.tenant.slug != second.tenant.slug
    status, code = await stack.failure(stack.login(email))
    assert status == grpc.StatusCode.ALREADY_EXISTS and code == "TENANT_REQUIRED"  # the gateway answers 409
    chosen = await stack.login(email, tenant_slug=second.tenant.slug.upper())
    assert chosen.tenant.id == second.tenant.id and chosen.user.id == second.user.id


async def test_email_in_two_tenants_with_different_passwords_logs_into_the_match(stack) -> None:
    email = stack.email()
    first = await stack.register(email=email)
    other = "another long password"
    await stack.auth_stub.Register(
        auth_pb2.RegisterRequest(tenant_name="Other Inn", name="Ana", email=email, password=other))
    session = await stack.login(email)
    assert session.tenant.id == first.tenant.id


async def test_inactive_user_cannot_log_in(stack) -> None:
    email = stack.email()
    session = await stack.register(email=email)
    await stack.sql(stack.auth_db, "UPDATE users SET active = false WHERE id = $1", session.user.id,
                    tenant=session.tenant.id)
    assert await stack.failure(stack.login(email)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    status, code = await stack.failure(
        stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(session.access_token)))
    assert (status, code) == (grpc.StatusCode.UNAUTHENTICATED, "USER_INACTIVE")
    refused = await stack.failure(stack.auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=session.refresh_token)))
    assert refused == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")


async def test_suspended_tenant_cannot_log_in_or_refresh(stack) -> None:
    email = stack.email()
    session = await stack.register(email=email)
    await stack.set_tenant_status(session.tenant.id, "suspended")
    assert await stack.failure(stack.login(email)) == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_SUSPENDED")
    refused = await stack.failure(stack.auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=session.refresh_token)))
    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_SUSPENDED")
    # a wrong password still says nothing about the tenant
    assert await stack.failure(stack.login(email, "wrong horse battery")) == (
        grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def test_invalid_registration_creates_no_tenant(stack) -> None:
    before = await stack.sql(stack.tenant_db, "SELECT count(*) AS n FROM tenants")
    request = auth_pb2.RegisterRequest(tenant_name="Weak Hotel", name="Ana", email=stack.email(), password="short")
    assert await stack.failure(stack.auth_stub.Register(request)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WEAK_PASSWORD")
    after = await stack.sql(stack.tenant_db, "SELECT count(*) AS n FROM tenants")
    assert after[0]["n"] == before[0]["n"]


async def test_concurrent_registrations_of_one_name_get_distinct_slugs(stack) -> None:
    sessions = await asyncio.gather(*(stack.register(tenant_name="Rush Hour Hotel") for _ in range(4)))
    slugs = {session.tenant.slug for session in sessions}
    assert len(slugs) == 4 and "rush-hour-hotel" in slugs


async def test_service_token_is_issued_to_known_clients_only(stack) -> None:
    token = await stack.service_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "service:webhook-ingest" and claims["typ"] == "service" and "tid" not in claims
    assert claims["exp"] - claims["iat"] == 300
    found = await stack.tenant_stub.ResolvePhoneNumber(
        tenant_pb2.ResolvePhoneNumberRequest(phone_number_id="999000111"), metadata=stack.bearer(token))
    assert not found.found
    for name, secret in (("webhook-ingest", "wrong"), ("stranger", "ingest-client-secret-for-tests")):
        assert await stack.failure(stack.service_token(name, secret)) == (
            grpc.StatusCode.UNAUTHENTICATED, "INVALID_CLIENT")


async def test_jwks_over_grpc_and_http(stack) -> None:
    response = await stack.auth_stub.GetJwks(auth_pb2.GetJwksRequest())
    transport = httpx.ASGITransport(app=stack.auth.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        http_jwks = await client.get("/.well-known/jwks.json")
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert http_jwks.status_code == 200 and "max-age" in http_jwks.headers["cache-control"]
    assert http_jwks.json() == json.loads(response.jwks_json)
    keys = http_jwks.json()["keys"]
    assert [key["kid"] for key in keys] == ["current", "previous"]
    assert all(key["kty"] == "OKP" and key["crv"] == "Ed25519" and "d" not in key for key in keys)
    assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok",
                                                                "workers": "ok"}
    assert alive.status_code == 200
