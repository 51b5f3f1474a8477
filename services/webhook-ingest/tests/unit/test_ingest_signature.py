from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from webhook_ingest_service.signature import SignatureCheck, parse_signature, verify_signature


def test_reference_vector_verifies_byte_for_byte(vector_body: bytes, vector_secret: str, vector_signature: str) -> None:
    assert verify_signature(vector_body, vector_signature, vector_secret)


def test_reference_vector_reserialised_as_utf8_is_refused(
    vector_body: bytes, vector_secret: str, vector_signature: str, vector_utf8_signature: str,
    sign: Callable[[bytes, str], str],
) -> None:
    reserialised = json.dumps(json.loads(vector_body), separators=(",", ":"), ensure_ascii=False).encode()
    assert reserialised != vector_body
    # what a re-serialising receiver would compute is the wrong value…
    assert sign(reserialised, vector_secret) == vector_utf8_signature
    # …so Meta's header does not verify those bytes, and that value does not verify Meta's bytes
    assert not verify_signature(reserialised, vector_signature, vector_secret)
    assert not verify_signature(vector_body, vector_utf8_signature, vector_secret)


def test_wrong_secret_is_refused(vector_body: bytes, vector_signature: str) -> None:
    assert not verify_signature(vector_body, vector_signature, "another_secret")
    assert not verify_signature(vector_body, vector_signature, "")


def test_one_changed_byte_is_refused(vector_body: bytes, vector_secret: str, vector_signature: str) -> None:
    tampered = vector_body.replace(b"wamid.TEST1", b"wamid.TEST2")
    assert not verify_signature(tampered, vector_signature, vector_secret)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e",  # no prefix
        "sha1=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e",  # wrong prefix
        "SHA256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e",  # prefix is case-sensitive
        "sha256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2",  # 63 hex digits
        "sha256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e0",  # 65 hex digits
        "sha256=zdeaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e",  # not hex
        "sha256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae 2",  # space inside
        "sha256=４deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e",  # fullwidth digit
    ],
)
def test_missing_or_malformed_headers_are_refused(header: str | None, vector_body: bytes, vector_secret: str) -> None:
    assert parse_signature(header) is None
    assert not verify_signature(vector_body, header, vector_secret)


def test_parse_signature_returns_the_digest(vector_signature: str) -> None:
    digest = parse_signature(vector_signature)
    assert digest is not None and digest.hex() == vector_signature.removeprefix("sha256=")


def test_signature_check_tries_each_secret(vector_body: bytes, vector_secret: str, vector_signature: str) -> None:
    check = SignatureCheck(vector_body, vector_signature)
    assert check.well_formed
    assert not check.verified_with("platform_secret")
    assert check.verified_with(vector_secret)
    assert check.verified_with(vector_secret)  # cached answer is the same
    assert not check.verified_with("")


def test_signature_check_without_header_verifies_nothing(vector_body: bytes, vector_secret: str) -> None:
    check = SignatureCheck(vector_body, None)
    assert not check.well_formed
    assert not check.verified_with(vector_secret)
