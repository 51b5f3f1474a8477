"""Shared fixtures of the webhook-ingest tests: the reference test vector (reference §2, see docs/architecture.md)
and signing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

# Byte for byte as Meta would send it: compact JSON, non-ASCII as \uXXXX, "/" as "\/".
VECTOR_BODY = (
    rb'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    rb'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":'
    rb'"106540352242922"},"contacts":[{"profile":{"name":"Jos\u00e9"},"wa_id":"16505551234"}],"messages":'
    rb'[{"from":"16505551234","id":"wamid.TEST1","timestamp":"1749416383","type":"text","text":{"body":'
    rb'"caf\u00e9 \ud83d\ude00 https:\/\/x.y\/z"}}]},"field":"messages"}]}]}'
)
VECTOR_SECRET = "test_app_secret"
VECTOR_SIGNATURE = "sha256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e"
VECTOR_UTF8_SIGNATURE = "sha256=c7c20ca563af45cb53d8da05a30a3510516cce593d88132238ccc95fa17bf64d"
VECTOR_PHONE_NUMBER_ID = "106540352242922"


@pytest.fixture(scope="session")
def vector_body() -> bytes:
    return VECTOR_BODY


@pytest.fixture(scope="session")
def vector_secret() -> str:
    return VECTOR_SECRET


@pytest.fixture(scope="session")
def vector_signature() -> str:
    return VECTOR_SIGNATURE


@pytest.fixture(scope="session")
def vector_utf8_signature() -> str:
    return VECTOR_UTF8_SIGNATURE


@pytest.fixture(scope="session")
def vector_phone_number_id() -> str:
    return VECTOR_PHONE_NUMBER_ID


@pytest.fixture(scope="session")
def sign() -> Callable[[bytes, str], str]:
    """Signs a body the way Meta does (written here independently of the simulator's signer)."""

    def signer(body: bytes, secret: str) -> str:
        return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    return signer
