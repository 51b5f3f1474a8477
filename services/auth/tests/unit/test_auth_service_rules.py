"""Use-case rules that need no database: validation before the tenant exists, service tokens, GetMe's caller,
API-key exchange (against a fake tenant service) and the IP throttle, which refuses before any database work."""

from typing import Any

import jwt
import pytest
from auth_service.domain import VerifiedApiKey
from auth_service.service import AuthService
from eva_common.audit import RequestMeta
from eva_common.auth import Principal, TokenVerifier
from eva_common.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"tenant_name": "  "}, "VALIDATION_FAILED"),
        ({"name": ""}, "VALIDATION_FAILED"),
        ({"email": "not-an-email"}, "INVALID_EMAIL"),
        ({"password": "short"}, "WEAK_PASSWORD"),
        ({"password": "ana@hotel.com"}, "WEAK_PASSWORD"),
    ],
)
async def test_register_validates_before_creating_the_tenant(
    service: AuthService, tenant_directory: Any, fields: dict[str, str], code: str
) -> None:
    request = {"tenant_name": "Hotel Azul", "name": "Ana", "email": "ana@hotel.com",
               "password": "correct horse battery", **fields}
    with pytest.raises(InvalidArgument) as raised:
        await service.register(**request)
    assert raised.value.code == code
    assert tenant_directory.created == []


def test_service_token_for_a_known_client(service: AuthService) -> None:
    issued = service.issue_service_token(service_name="webhook-ingest", client_secret="ingest-client-secret-1234")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["sub"] == "service:webhook-ingest" and claims["typ"] == "service" and "tid" not in claims
    assert issued.expires_in == 300


@pytest.mark.parametrize(
    ("name", "secret"),
    [("webhook-ingest", "wrong-secret"), ("webhook-ingest", ""), ("unknown", "ingest-client-secret-1234"),
     ("unknown", "")],
)
def test_service_token_refused(service: AuthService, name: str, secret: str) -> None:
    with pytest.raises(Unauthenticated) as raised:
        service.issue_service_token(service_name=name, client_secret=secret)
    assert raised.value.code == "INVALID_CLIENT"


async def test_get_me_is_for_users(service: AuthService) -> None:
    principal = Principal(subject="service:x", kind="service", role="service", tenant_id=None, token="t",
                          token_id="j", issued_at=0, expires_at=0)
    with pytest.raises(PermissionDenied):
        await service.get_me(principal=principal)


async def test_get_me_refuses_api_keys(service: AuthService) -> None:
    principal = Principal(subject="apikey:k1", kind="api_key", role="api_key", tenant_id="t1", token="t",
                          token_id="j", issued_at=0, expires_at=0, scopes=("messages:read",))
    with pytest.raises(PermissionDenied) as raised:
        await service.get_me(principal=principal)
    assert raised.value.code == "USER_ONLY"


# ---------------------------------------------------------------------- API keys


async def test_api_key_exchange_signs_a_scoped_short_lived_token(
    service: AuthService, tenant_directory: Any, token_keys: Any
) -> None:
    tenant_directory.api_keys["eva_abcdefgh_secret"] = VerifiedApiKey(
        True, "key-1", "tenant-a", ("messages:read", "messages:send"), "active")
    session = await service.exchange_api_key(api_key=" eva_abcdefgh_secret ")
    assert tenant_directory.keys_asked == ["eva_abcdefgh_secret"]
    assert (session.tenant_id, session.key_id, session.expires_in) == ("tenant-a", "key-1", 300)
    assert session.scopes == ("messages:read", "messages:send")
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    assert claims["typ"] == "api_key" and claims["sub"] == "apikey:key-1" and claims["role"] == "api_key"
    assert claims["tid"] == "tenant-a" and claims["scopes"] == ["messages:read", "messages:send"]
    assert claims["exp"] - claims["iat"] == 300 and abs(claims["iat_ms"] // 1000 - claims["iat"]) <= 1
    principal = await TokenVerifier(jwks_source=token_keys.jwks_source(), issuer="eva-auth",
                                    audience="eva").verify(session.access_token)
    assert principal.is_api_key and principal.tenant_id == "tenant-a"
    principal.require_scope("messages:send")
    with pytest.raises(PermissionDenied):
        principal.require_scope("usage:read")
    assert "eva_abcdefgh_secret" not in repr(session) and session.access_token not in repr(session)


@pytest.mark.parametrize("key", ["", "   ", "x" * 600])
async def test_blank_or_oversized_api_key_is_refused_without_asking_tenant(
    service: AuthService, tenant_directory: Any, key: str
) -> None:
    with pytest.raises(Unauthenticated) as raised:
        await service.exchange_api_key(api_key=key)
    assert raised.value.code == "API_KEY_INVALID" and tenant_directory.keys_asked == []


@pytest.mark.parametrize(
    "verified",
    [VerifiedApiKey(False, "", "", (), ""), VerifiedApiKey(False, "key-1", "tenant-a", (), "active"),
     VerifiedApiKey(True, "", "tenant-a", (), "active")],
)
async def test_invalid_api_key_is_refused(service: AuthService, tenant_directory: Any,
                                          verified: VerifiedApiKey) -> None:
    tenant_directory.api_keys["eva_k"] = verified
    with pytest.raises(Unauthenticated) as raised:
        await service.exchange_api_key(api_key="eva_k")
    assert raised.value.code == "API_KEY_INVALID"


@pytest.mark.parametrize("error", [NotFound("no key"), Unauthenticated("bad"), InvalidArgument("malformed")])
async def test_tenant_refusals_become_api_key_invalid(service: AuthService, tenant_directory: Any,
                                                      error: Exception) -> None:
    tenant_directory.api_key_error = error
    with pytest.raises(Unauthenticated) as raised:
        await service.exchange_api_key(api_key="eva_k")
    assert raised.value.code == "API_KEY_INVALID"


async def test_api_key_of_a_suspended_tenant_is_refused(service: AuthService, tenant_directory: Any) -> None:
    tenant_directory.api_keys["eva_k"] = VerifiedApiKey(True, "key-1", "tenant-a", (), "suspended")
    with pytest.raises(PermissionDenied) as raised:
        await service.exchange_api_key(api_key="eva_k")
    assert raised.value.code == "TENANT_SUSPENDED"


async def test_unavailable_tenant_service_is_not_an_invalid_key(service: AuthService, tenant_directory: Any) -> None:
    tenant_directory.api_key_error = Unavailable("down", code="UPSTREAM_UNAVAILABLE")
    with pytest.raises(Unavailable):
        await service.exchange_api_key(api_key="eva_k")


# ---------------------------------------------------------------------- login throttling (before any database work)


async def test_login_from_a_throttled_ip_is_refused_before_anything_else(service: AuthService, limiter: Any) -> None:
    limiter.counts[("login-ip", "203.0.113.9")] = 30
    with pytest.raises(ResourceExhausted) as raised:
        await service.login(email="ana@hotel.com", password="whatever-long", client=RequestMeta(ip="203.0.113.9"))
    assert raised.value.code == "LOGIN_THROTTLED" and raised.value.retry_after == 42
