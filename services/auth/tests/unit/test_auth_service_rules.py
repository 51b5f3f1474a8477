"""Use-case rules that need no database: validation before the tenant exists, service tokens, GetMe's caller."""

from typing import Any

import jwt
import pytest
from auth_service.passwords import Passwords
from auth_service.service import AuthService
from auth_service.tokens import KeyRing, SigningKey, TokenIssuer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva_common.auth import Principal
from eva_common.errors import InvalidArgument, PermissionDenied, Unauthenticated


class NoDatabase:
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the database must not be reached")


@pytest.fixture
def service(passwords: Passwords, tenant_directory: Any) -> AuthService:
    tokens = TokenIssuer(
        keys=KeyRing([SigningKey(kid="k1", private_key=Ed25519PrivateKey.generate())]), issuer="eva-auth",
        audience="eva", access_ttl_seconds=900, service_ttl_seconds=300,
    )
    return AuthService(
        sessions=NoDatabase(),  # type: ignore[arg-type]
        passwords=passwords, tokens=tokens, tenants=tenant_directory,
        service_clients={"webhook-ingest": "ingest-client-secret-1234"}, refresh_ttl_seconds=3600,
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
