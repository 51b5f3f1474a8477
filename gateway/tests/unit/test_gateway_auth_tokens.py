"""The edge's authentication: only unexpired user tokens signed by auth's key, pinned to EdDSA."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2
from eva_common.errors import Unauthenticated
from eva_testing.tokens import TestTokenIssuer
from gateway.auth import verify_user_token


def _claims(issuer: TestTokenIssuer) -> dict[str, object]:
    now = int(time.time())
    return {"iss": issuer.issuer, "aud": issuer.audience, "iat": now, "exp": now + 600, "jti": "j1",
            "sub": "u1", "tid": "t1", "role": "admin", "typ": "user"}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _refused_code(issuer: TestTokenIssuer, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verify_user_token(issuer.verifier(), token)
    return caught.value.code


async def test_a_valid_user_token_gives_its_principal(issuer: TestTokenIssuer) -> None:
    token = issuer.user_token(user_id="u1", tenant_id="t1", role="attendant")
    principal = await verify_user_token(issuer.verifier(), token)
    assert (principal.subject, principal.tenant_id, principal.role, principal.kind) == ("u1", "t1", "attendant", "user")
    assert principal.token == token


async def test_an_expired_token_is_token_expired(issuer: TestTokenIssuer) -> None:
    assert await _refused_code(issuer, issuer.user_token(user_id="u1", tenant_id="t1", ttl=-60)) == "TOKEN_EXPIRED"


async def test_a_token_signed_by_a_foreign_key_is_token_invalid(issuer: TestTokenIssuer) -> None:
    same_kid = TestTokenIssuer(kid=issuer.kid)
    other_kid = TestTokenIssuer()
    assert await _refused_code(issuer, same_kid.user_token(user_id="u1", tenant_id="t1")) == "TOKEN_INVALID"
    assert await _refused_code(issuer, other_kid.user_token(user_id="u1", tenant_id="t1")) == "TOKEN_INVALID"


async def test_service_tokens_are_refused_at_the_edge(issuer: TestTokenIssuer) -> None:
    assert await _refused_code(issuer, issuer.service_token(service="messaging")) == "TOKEN_INVALID"


async def test_hmac_and_none_algorithms_are_refused(issuer: TestTokenIssuer) -> None:
    hmac_token = jwt.encode(_claims(issuer), "a-shared-secret-of-enough-length-32b", algorithm="HS256",
                            headers={"kid": issuer.kid})
    none_token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{_b64(_claims(issuer))}."
    assert await _refused_code(issuer, hmac_token) == "TOKEN_INVALID"
    assert await _refused_code(issuer, none_token) == "TOKEN_INVALID"
    assert await _refused_code(issuer, "not-a-jwt") == "TOKEN_INVALID"


def _me() -> auth_pb2.Me:
    return auth_pb2.Me(
        user=auth_pb2.User(id="u1", tenant_id="t1", name="Ana", email="ana@hotel.test", role="admin", active=True),
        tenant=tenant_pb2.Tenant(id="t1", name="Hotel", slug="hotel", status="active"),
    )


async def test_me_forwards_the_verified_token(http: httpx.AsyncClient, issuer: TestTokenIssuer, fake_clients) -> None:
    fake_clients.auth.responses["GetMe"] = _me()
    token = issuer.user_token(user_id="u1", tenant_id="t1")
    response = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["user"]["tenantId"] == "t1"
    assert fake_clients.tokens == [token]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "UNAUTHENTICATED"),
        ("Basic dXNlcjpwYXNz", "UNAUTHENTICATED"),
        ("Bearer ", "UNAUTHENTICATED"),
        ("Bearer not-a-jwt", "TOKEN_INVALID"),
    ],
)
async def test_unauthenticated_requests_get_401_problems(
    http: httpx.AsyncClient, fake_clients, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == code
    assert fake_clients.tokens == []  # nothing reached the upstream


async def test_expired_and_service_tokens_get_401_over_http(http: httpx.AsyncClient, issuer: TestTokenIssuer) -> None:
    expired = issuer.user_token(user_id="u1", tenant_id="t1", ttl=-60)
    service = issuer.service_token()
    first = await http.get("/auth/me", headers={"Authorization": f"Bearer {expired}"})
    second = await http.get("/auth/me", headers={"Authorization": f"Bearer {service}"})
    assert (first.status_code, first.json()["code"]) == (401, "TOKEN_EXPIRED")
    assert (second.status_code, second.json()["code"]) == (401, "TOKEN_INVALID")
