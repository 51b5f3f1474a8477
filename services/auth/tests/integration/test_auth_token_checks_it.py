"""GetMe is verified by auth against its own keys: forged, expired and downgraded tokens are refused."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration


def _claims(session, **changes) -> dict:
    now = int(time.time())
    return {"iss": "eva-auth", "aud": "eva", "sub": session.user.id, "tid": session.tenant.id, "role": "admin",
            "typ": "user", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **changes}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hmac_signed(claims: dict, secret: bytes, kid: str = "current") -> str:
    """HS256 by hand (PyJWT refuses to use a public key as an HMAC secret, which is the point of the attack)."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def public_key_secrets(stack, jwks: dict) -> dict[str, bytes]:
    public = stack.current_key.public_key()
    return {
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk x": jwks["keys"][0]["x"].encode(),
        "jwk json": json.dumps(jwks["keys"][0]).encode(),
    }


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
        "wrong issuer": jwt.encode(_claims(session, iss="evil"), stack.current_key, algorithm="EdDSA",
                                   headers={"kid": "current"}),
        "not yet valid": jwt.encode(_claims(session, nbf=int(time.time()) + 600), stack.current_key,
                                    algorithm="EdDSA", headers={"kid": "current"}),
        "no kid": jwt.encode(claims, stack.current_key, algorithm="EdDSA"),
        "unknown type": jwt.encode(_claims(session, typ="admin"), stack.current_key, algorithm="EdDSA",
                                   headers={"kid": "current"}),
        "user without tenant": jwt.encode({k: v for k, v in claims.items() if k != "tid"}, stack.current_key,
                                          algorithm="EdDSA", headers={"kid": "current"}),
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


async def test_hs256_signed_with_the_public_key_is_refused_everywhere(stack) -> None:
    session = await stack.register()
    jwks = json.loads((await stack.auth_stub.GetJwks(auth_pb2.GetJwksRequest())).jwks_json)
    for name, secret in public_key_secrets(stack, jwks).items():
        token = _hmac_signed(_claims(session), secret)
        assert await stack.failure(stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(token))) == (
            grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"), name
        elsewhere = await stack.failure(stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(),
                                                                    metadata=stack.bearer(token)))
        assert elsewhere == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"), name


async def test_expired_and_wrong_audience_tokens_say_why(stack) -> None:
    session = await stack.register()
    tokens = forged_tokens(stack, session)
    expected = {"expired": "TOKEN_EXPIRED", "wrong audience": "TOKEN_INVALID", "alg none": "TOKEN_INVALID",
                "not yet valid": "TOKEN_INVALID"}
    for name, code in expected.items():
        assert await stack.failure(stack.auth_stub.GetMe(
            auth_pb2.GetMeRequest(), metadata=stack.bearer(tokens[name]))) == (grpc.StatusCode.UNAUTHENTICATED, code)


async def test_a_deleted_users_token_is_refused(stack) -> None:
    admin = await stack.register(tenant_name="Token Deletion Hotel")
    victim = await stack.user_session(admin)
    await stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=victim.user.id),
                                     metadata=stack.bearer(admin.access_token))
    assert await stack.failure(stack.auth_stub.GetMe(auth_pb2.GetMeRequest(),
                                                     metadata=stack.bearer(victim.access_token))) == (
        grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    users = await stack.failure(stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(),
                                                          metadata=stack.bearer(victim.access_token)))
    assert users == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
