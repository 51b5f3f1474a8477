"""Meta's wire serialization and signature, checked against the reference §2 test vector."""

import hashlib
import hmac
import json

from eva_simulator.signing import meta_body, signature, verify_signature

SECRET = "test_app_secret"

VECTOR_OBJECT = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "contacts": [{"profile": {"name": "José"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.TEST1",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "café 😀 https://x.y/z"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

VECTOR_BYTES = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":'
    b'"106540352242922"},"contacts":[{"profile":{"name":"Jos\\u00e9"},"wa_id":"16505551234"}],"messages":'
    b'[{"from":"16505551234","id":"wamid.TEST1","timestamp":"1749416383","type":"text","text":{"body":'
    b'"caf\\u00e9 \\ud83d\\ude00 https:\\/\\/x.y\\/z"}}]},"field":"messages"}]}]}'
)
VECTOR_SIGNATURE = "sha256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e"
RAW_UTF8_SIGNATURE = "sha256=c7c20ca563af45cb53d8da05a30a3510516cce593d88132238ccc95fa17bf64d"


def test_meta_body_reproduces_the_reference_bytes() -> None:
    assert meta_body(VECTOR_OBJECT) == VECTOR_BYTES


def test_signature_of_meta_bytes_matches_the_vector() -> None:
    assert signature(meta_body(VECTOR_OBJECT), SECRET) == VECTOR_SIGNATURE
    independent = "sha256=" + hmac.new(SECRET.encode(), VECTOR_BYTES, hashlib.sha256).hexdigest()
    assert independent == VECTOR_SIGNATURE


def test_raw_utf8_serialization_signs_differently() -> None:
    raw = json.dumps(VECTOR_OBJECT, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert signature(raw, SECRET) == RAW_UTF8_SIGNATURE
    assert RAW_UTF8_SIGNATURE != VECTOR_SIGNATURE


def test_body_is_ascii_with_lowercase_escapes_and_round_trips() -> None:
    body = meta_body({"s": 'äöå Ω 👍 a/b \\/ "q"'})
    assert body == b'{"s":"\\u00e4\\u00f6\\u00e5 \\u03a9 \\ud83d\\udc4d a\\/b \\\\\\/ \\"q\\""}'
    assert json.loads(body) == {"s": 'äöå Ω 👍 a/b \\/ "q"'}


def test_verify_signature_accepts_only_the_exact_header() -> None:
    assert verify_signature(VECTOR_BYTES, SECRET, VECTOR_SIGNATURE)
    assert not verify_signature(VECTOR_BYTES, SECRET, RAW_UTF8_SIGNATURE)
    assert not verify_signature(VECTOR_BYTES, SECRET, VECTOR_SIGNATURE.removeprefix("sha256="))
    assert not verify_signature(VECTOR_BYTES, SECRET, None)
    assert not verify_signature(VECTOR_BYTES, "other", VECTOR_SIGNATURE)
