"""Pure rules of the outbound path: Meta's errors classified (reference §5.3, §5.4), Eva's upload ids swapped for
Meta's media ids anywhere in a body, the rate a number may send at, and what makes two requests "the same" for an
Idempotency-Key."""

from __future__ import annotations

import pytest
from messaging_service.callback import callback_data, message_id_of_callback
from messaging_service.clients import SendingProfile
from messaging_service.graph_errors import GraphError, Verdict, with_hints
from messaging_service.profiles import send_rate
from messaging_service.sender import replace_media_ids
from messaging_service.sending import SendRequest, request_hash

THROUGHPUT = {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
                        "error_data": {"messaging_product": "whatsapp",
                                       "details": "Cloud API message throughput has been reached."},
                        "error_subcode": 2494055, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}
EXPIRED = {"error": {"message": "Error validating access token: Session has expired on Saturday, 29-Jun-24.",
                     "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "AZ-HzGEkqc5Vf3E0gy"}}


def test_metas_error_body_is_read_once_with_its_code_title_and_details() -> None:
    error = GraphError.from_response(400, THROUGHPUT)
    assert (error.code, error.subcode, error.title, error.details) == (
        130429, 2494055, "Rate limit hit", "Cloud API message throughput has been reached.")
    assert error.verdict() is Verdict.RETRY and not error.token_invalid
    assert error.as_meta_error() == {"code": 130429, "title": "Rate limit hit", "message": "(#130429) Rate limit hit",
                                     "error_data": {"details": "Cloud API message throughput has been reached."}}


@pytest.mark.parametrize(("code", "verdict"), [
    (1, Verdict.RETRY), (2, Verdict.RETRY), (131000, Verdict.RETRY), (131016, Verdict.RETRY),
    (131056, Verdict.RETRY), (133004, Verdict.RETRY), (100, Verdict.FAIL), (131026, Verdict.FAIL),
    (131047, Verdict.FAIL), (131049, Verdict.FAIL), (132000, Verdict.FAIL), (190, Verdict.FAIL),
    (368, Verdict.FAIL),
])
def test_retryable_codes_are_retried_and_the_rest_fail_at_once(code: int, verdict: Verdict) -> None:
    assert GraphError.from_response(400, {"error": {"message": f"(#{code}) x", "code": code}}).verdict() is verdict


def test_an_expired_token_is_a_token_problem_with_a_hint_and_bodiless_5xx_are_retried() -> None:
    expired = GraphError.from_response(400, EXPIRED)
    assert expired.token_invalid and expired.verdict() is Verdict.FAIL
    assert "renew" in expired.as_meta_error()["hint"]
    assert GraphError.from_response(502, "<html>bad gateway</html>").verdict() is Verdict.RETRY
    assert GraphError.from_response(404, None).verdict() is Verdict.FAIL


def test_a_failed_status_131047_gets_the_template_hint_and_others_stay_as_meta_sent_them() -> None:
    hinted = with_hints([{"code": 131047, "title": "Re-engagement message"}, {"code": 131026, "title": "x"}])
    assert hinted is not None
    assert "template" in hinted[0]["hint"] and "hint" not in hinted[1]


def test_upload_ids_are_replaced_by_metas_media_ids_wherever_they_are() -> None:
    body = {"type": "template", "template": {"components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": "upload-1"}}]}]},
        "image": {"id": "upload-2", "caption": "x"}, "other": {"id": "not-an-upload"}}
    replaced = replace_media_ids(body, {"upload-1": "111", "upload-2": "222"})
    assert replaced["template"]["components"][0]["parameters"][0]["image"] == {"id": "111"}
    assert replaced["image"] == {"id": "222", "caption": "x"} and replaced["other"] == {"id": "not-an-upload"}
    assert body["image"]["id"] == "upload-2"  # the stored body is not changed


def profile(**changes: object) -> SendingProfile:
    values: dict[str, object] = {
        "tenant_id": "t", "phone_number_id": "p", "access_token": "a", "waba_id": "w", "display_phone_number": "1",
        "coexistence": False, "throughput_mps": 0, "tenant_status": "active", "read_receipts": "on_read",
        "health": "healthy", **changes}
    return SendingProfile(**values)  # type: ignore[arg-type]


def test_a_numbers_rate_is_its_own_else_the_default_for_its_kind() -> None:
    assert send_rate(profile(), default=80, coexistence=20) == 80
    assert send_rate(profile(coexistence=True), default=80, coexistence=20) == 20
    assert send_rate(profile(coexistence=True, throughput_mps=250), default=80, coexistence=20) == 250


def test_the_same_request_hashes_the_same_whatever_its_key_order_and_another_body_differs() -> None:
    one = SendRequest(conversation_id="c", type="text", content={"body": "hi", "previewUrl": False})
    same = SendRequest(conversation_id="c", type="text", content={"previewUrl": False, "body": "hi"},
                       idempotency_key="k", priority="bulk")
    other = SendRequest(conversation_id="c", type="text", content={"body": "hi!"})
    assert request_hash(one) == request_hash(same) != request_hash(other)


def test_callback_data_names_the_message_and_nothing_else_is_mistaken_for_it() -> None:
    import uuid
    message_id = uuid.uuid4()
    assert message_id_of_callback(callback_data(message_id)) == message_id
    assert message_id_of_callback("campaign-42") is None and message_id_of_callback(None) is None
