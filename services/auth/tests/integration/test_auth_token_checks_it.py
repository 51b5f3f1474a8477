"""GetMe is verified by auth against its own keys: forged, expired and downgraded tokens are refused."""

import base64
import json
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva.auth.v1 import auth_pb2

pytestmark = pytest.mark.integration


def _claims(session, **changes) -> dict:
    now = int(time.time())
    return {"iss": "eva-auth", "aud": "eva", "sub": session.user.id, "tid": session.tenant.id, "role": "admin",
            "typ": "user", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **changes}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(stack, session) -> dict[str, str]:
    claims = _claims(session)
    past = int(time.time()) - 3600
    return {
        "foreign key": jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                  headers={"kid": "current"}),
        "expired": jwt.encode(_claims(session, iat=past - 600, exp=past), stack.current_key, algorithm="EdDSA",
                              headers={"kid": "current"}),
        "hs256": jwt.encode(claims, "a-shared-secret-guessed-by-someone-else", algorithm="HS256",
                            headers={"kid": "current"}),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'current'})}.{_b64(claims)}.",
        "wrong audience": jwt.encode(_claims(session, aud="other"), stack.current_key, algorithm="EdDSA",
                                     headers={"kid": "current"}),
        "unknown kid": jwt.encode(claims, stack.current_key, algorithm="EdDSA", headers={"kid": "nope"}),
        "garbage": "not.a.jwt",
    }


async def test_forged_tokens_are_refused_by_get_me(stack) -> None:
    session = await stack.register()
    for name, token in forged_tokens(stack, session).items():
        status, _ = await stack.failure(
            stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(token)))
        assert status == grpc.StatusCode.UNAUTHENTICATED, name


async def test_token_signed_with_the_previous_key_still_verifies(stack) -> None:
    session = await stack.register()
    token = jwt.encode(_claims(session), stack.previous_key, algorithm="EdDSA", headers={"kid": "previous"})
    me = await stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(token))
    assert me.user.id == session.user.id and me.tenant.id == session.tenant.id  # tenant verified it too
