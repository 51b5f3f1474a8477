"""Token attacks through the gateway: forged, altered, expired and foreign tokens are refused with 401; a replayed
refresh token revokes its whole family; a deleted or deactivated user's token, and every token issued before a
password change, die at once (the revocation time in Redis), not when they expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from e2e_support import Hotel, StackUrls, bearer, create_user, login, problem_code, register_hotel

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

REFUSED_TOKEN_CODES = {"TOKEN_INVALID", "TOKEN_EXPIRED", "UNAUTHENTICATED"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{b64url(signature)}"


HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def hmac_signed(alg: str, header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Signs by hand: PyJWT refuses an asymmetric key as an HMAC secret (which is the attack)."""
    signing_input = unsigned({**header, "alg": alg}, claims).rsplit(".", 1)[0]
    signature = hmac.new(secret, signing_input.encode(), HMAC_DIGESTS[alg]).digest()
    return f"{signing_input}.{b64url(signature)}"


async def me(http: httpx.AsyncClient, stack: StackUrls, token: str) -> httpx.Response:
    return await http.get(f"{stack.gateway}/auth/me", headers=bearer(token))


async def assert_refused(http: httpx.AsyncClient, stack: StackUrls, token: str, *, codes: set[str] | None = None,
                         what: str) -> None:
    """Refused with 401 at the gateway: by /auth/me (auth itself) and by an /api route (the gateway's verifier)."""
    for response in (await me(http, stack, token),
                     await http.get(f"{stack.gateway}/api/users", headers=bearer(token))):
        assert response.status_code == 401, (what, response.status_code, response.text)
        assert problem_code(response) in (codes or REFUSED_TOKEN_CODES), (what, response.text)


async def auth_jwks(http: httpx.AsyncClient, stack: StackUrls) -> dict[str, Any]:
    response = await http.get(f"{stack.auth_http}/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    assert document["keys"], document
    return document


@pytest.fixture
async def hotel(stack: StackUrls, http: httpx.AsyncClient) -> Hotel:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    assert (await me(http, stack, hotel.access_token)).status_code == 200
    return hotel


async def test_alg_none_is_refused(stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel) -> None:
    header, claims = parts(hotel.access_token)
    for alg in ("none", "None", "NONE"):
        forged = unsigned({**header, "alg": alg}, {**claims, "role": "super_admin"})
        await assert_refused(http, stack, forged, what=f"alg {alg}")
        await assert_refused(http, stack, forged.rsplit(".", 1)[0] + ".", what=f"alg {alg}, empty signature")


async def test_hs256_signed_with_the_public_key_is_refused(
    stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel
) -> None:
    header, claims = parts(hotel.access_token)
    jwks = await auth_jwks(http, stack)
    [jwk] = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    raw = b64url_decode(jwk["x"])
    public = Ed25519PublicKey.from_public_bytes(raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    candidates = {"raw key": raw, "PEM": pem, "JWK x": jwk["x"].encode(), "JWK JSON": json.dumps(jwk).encode(),
                  "JWKS": json.dumps(jwks).encode()}
    for name, secret in candidates.items():
        for alg in HMAC_DIGESTS:
            await assert_refused(http, stack, hmac_signed(alg, header, claims, secret), what=f"{alg} with the {name}")


async def test_a_token_altered_after_signing_is_refused(
    stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel
) -> None:
    other = await register_hotel(http, stack, configure_whatsapp=False)
    header, claims = parts(hotel.access_token)
    signature = b64url_decode(hotel.access_token.rsplit(".", 1)[1])
    for change in ({"tid": other.tenant["id"]}, {"role": "super_admin"}, {"exp": claims["exp"] + 86_400},
                   {"sub": other.user["id"], "tid": other.tenant["id"]}):
        await assert_refused(http, stack, unsigned(header, {**claims, **change}, signature), what=str(change))
    await assert_refused(http, stack, hotel.access_token[:-4] + ("AAAA" if not hotel.access_token.endswith("AAAA")
                                                                 else "BBBB"), what="signature bytes changed")


def foreign(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed with an Ed25519 key auth never had, under auth's own kid."""
    key = Ed25519PrivateKey.generate()
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": header["kid"]})


async def test_expired_and_foreign_tokens_are_refused(stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel) -> None:
    header, claims = parts(hotel.access_token)
    now = int(time.time())
    expired = {**claims, "iat": now - 7200, "iat_ms": (now - 7200) * 1000, "exp": now - 3600,
               "jti": uuid.uuid4().hex}
    await assert_refused(http, stack, foreign(header, expired), what="expired")
    await assert_refused(http, stack, foreign(header, {**claims, "aud": "somebody-else"}), what="wrong audience")
    await assert_refused(http, stack, foreign(header, {**claims, "iss": "https://evil.example"}), what="wrong issuer")
    await assert_refused(http, stack, foreign(header, {**claims, "nbf": now + 3600}), what="not yet valid")
    await assert_refused(http, stack, foreign(header, claims), what="valid claims, foreign key")
    await assert_refused(http, stack, foreign({"kid": "not-a-kid-of-auth"}, claims), what="unknown kid")
    # the genuine token still works: the refusals above are about the tokens, not the caller
    assert (await me(http, stack, hotel.access_token)).status_code == 200


async def refresh(http: httpx.AsyncClient, stack: StackUrls, token: str) -> httpx.Response:
    return await http.post(f"{stack.gateway}/auth/refresh", json={"refreshToken": token})


async def test_a_replayed_refresh_token_revokes_its_family(
    stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel
) -> None:
    first = await refresh(http, stack, hotel.refresh_token)
    assert first.status_code == 200, first.text
    newest = first.json()["refreshToken"]
    assert newest != hotel.refresh_token
    assert (await me(http, stack, first.json()["accessToken"])).status_code == 200

    # a second tab presenting the same token at once (within the reuse grace) gets the very same session
    twin = await refresh(http, stack, hotel.refresh_token)
    assert twin.status_code == 200, twin.text
    assert (twin.json()["refreshToken"], twin.json()["accessToken"]) == (newest, first.json()["accessToken"])

    moved_on = await refresh(http, stack, newest)  # the rightful owner rotates on: the successor is spent
    assert moved_on.status_code == 200, moved_on.text
    newest = moved_on.json()["refreshToken"]

    replayed = await refresh(http, stack, hotel.refresh_token)  # the spent one, as a thief would present it
    assert replayed.status_code == 401, replayed.text
    assert problem_code(replayed) == "REFRESH_TOKEN_REUSED"

    after = await refresh(http, stack, newest)  # the whole family is revoked: the rightful owner must log in again
    assert after.status_code == 401, after.text
    again = await login(http, stack, hotel.email, hotel.password)
    assert again.status_code == 200, again.text
    assert (await refresh(http, stack, again.json()["refreshToken"])).status_code == 200  # a new family works


async def test_a_logged_out_refresh_token_is_dead(stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel) -> None:
    response = await http.post(f"{stack.gateway}/auth/logout", json={"refreshToken": hotel.refresh_token})
    assert response.status_code == 204, response.text
    assert (await refresh(http, stack, hotel.refresh_token)).status_code == 401


async def test_a_deleted_users_token_dies_at_once(stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel) -> None:
    member = await create_user(http, stack, hotel.access_token)
    assert (await me(http, stack, member.access_token)).status_code == 200
    response = await http.delete(f"{stack.gateway}/api/users/{member.id}", headers=hotel.auth)
    assert response.status_code == 204, response.text

    await assert_refused(http, stack, member.access_token, codes={"TOKEN_REVOKED"}, what="deleted user")
    assert (await refresh(http, stack, member.refresh_token)).status_code == 401
    relogin = await login(http, stack, member.email, member.password)
    assert relogin.status_code == 401 and problem_code(relogin) == "INVALID_CREDENTIALS", relogin.text


async def test_a_deactivated_users_token_dies_and_reactivation_needs_a_new_login(
    stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel
) -> None:
    member = await create_user(http, stack, hotel.access_token)
    response = await http.patch(f"{stack.gateway}/api/users/{member.id}", headers=hotel.auth,
                                json={"active": False})
    assert response.status_code == 200 and response.json()["active"] is False, response.text

    await assert_refused(http, stack, member.access_token, codes={"TOKEN_REVOKED"}, what="deactivated user")
    assert (await refresh(http, stack, member.refresh_token)).status_code == 401
    refused = await login(http, stack, member.email, member.password)
    assert refused.status_code == 401 and problem_code(refused) == "INVALID_CREDENTIALS", refused.text

    response = await http.patch(f"{stack.gateway}/api/users/{member.id}", headers=hotel.auth, json={"active": True})
    assert response.status_code == 200 and response.json()["active"] is True, response.text
    await assert_refused(http, stack, member.access_token, codes={"TOKEN_REVOKED"}, what="old token, reactivated")
    fresh = await login(http, stack, member.email, member.password)
    assert fresh.status_code == 200, fresh.text
    assert (await me(http, stack, fresh.json()["accessToken"])).status_code == 200


async def test_a_password_change_kills_earlier_tokens(stack: StackUrls, http: httpx.AsyncClient, hotel: Hotel) -> None:
    member = await create_user(http, stack, hotel.access_token)
    new_password = "a brand new passphrase " + uuid.uuid4().hex[:6]
    response = await http.patch(f"{stack.gateway}/api/users/{member.id}", headers=hotel.auth,
                                json={"password": new_password})
    assert response.status_code == 200, response.text

    await assert_refused(http, stack, member.access_token, codes={"TOKEN_REVOKED"}, what="before password change")
    assert (await refresh(http, stack, member.refresh_token)).status_code == 401
    old = await login(http, stack, member.email, member.password)
    assert old.status_code == 401 and problem_code(old) == "INVALID_CREDENTIALS", old.text
    new = await login(http, stack, member.email, new_password)
    assert new.status_code == 200, new.text
    assert (await me(http, stack, new.json()["accessToken"])).status_code == 200
    # the admin who made the change is untouched
    assert (await me(http, stack, hotel.access_token)).status_code == 200
