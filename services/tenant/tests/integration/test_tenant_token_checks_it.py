"""The tenant service verifies callers against auth's JWKS over gRPC: forged, expired and downgraded tokens are
refused; a token signed with auth's previous key still verifies (rotation without logging anyone out)."""

import base64
import json
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration


def _claims(session, **changes) -> dict:
    now = int(time.time())
    return {"iss": "eva-auth", "aud": "eva", "sub": session.user.id, "tid": session.tenant.id, "role": "admin",
            "typ": "user", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **changes}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("kind", ["foreign key", "expired", "hs256", "alg none", "no kid", "user without tenant"])
async def test_forged_tokens_are_unauthenticated(stack, kind: str) -> None:
    session = await stack.register()
    claims, past = _claims(session), int(time.time()) - 3600
    tokens = {
        "foreign key": lambda: jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                          headers={"kid": "current"}),
        "expired": lambda: jwt.encode(_claims(session, iat=past - 600, exp=past), stack.current_key,
                                      algorithm="EdDSA", headers={"kid": "current"}),
        "hs256": lambda: jwt.encode(claims, "a-guessable-shared-secret-of-32-bytes", algorithm="HS256",
                                    headers={"kid": "current"}),
        "alg none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'current'})}.{_b64(claims)}.",
        "no kid": lambda: jwt.encode(claims, stack.current_key, algorithm="EdDSA"),
        "user without tenant": lambda: jwt.encode({k: v for k, v in claims.items() if k != "tid"},
                                                  stack.current_key, algorithm="EdDSA", headers={"kid": "current"}),
    }
    status, code = await stack.failure(stack.tenant_stub.GetTenant(
        tenant_pb2.GetTenantRequest(), metadata=stack.bearer(tokens[kind]())))
    assert status == grpc.StatusCode.UNAUTHENTICATED
    assert code == ("TOKEN_EXPIRED" if kind == "expired" else "TOKEN_INVALID")


async def test_the_real_token_passes(stack) -> None:
    session = await stack.register()
    tenant = await stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(),
                                               metadata=stack.bearer(session.access_token))
    assert tenant.id == session.tenant.id


async def test_token_signed_with_the_previous_key_still_verifies(stack) -> None:
    session = await stack.register()
    token = jwt.encode(_claims(session), stack.previous_key, algorithm="EdDSA", headers={"kid": "previous"})
    tenant = await stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(), metadata=stack.bearer(token))
    assert tenant.id == session.tenant.id
    # the previous key cannot pass itself off as the current one
    forged = jwt.encode(_claims(session), stack.previous_key, algorithm="EdDSA", headers={"kid": "current"})
    status, _ = await stack.failure(stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(),
                                                                metadata=stack.bearer(forged)))
    assert status == grpc.StatusCode.UNAUTHENTICATED
