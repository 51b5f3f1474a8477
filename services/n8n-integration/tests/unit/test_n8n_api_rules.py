"""The /n8n API's pure rules: recipients, the template shape messaging takes, idempotency fingerprints and which
answers are kept."""

from __future__ import annotations

import pytest
from eva_common.errors import InvalidArgument
from n8n_service.api import messaging_key, parse_recipient, template_content
from n8n_service.idempotency import check_key, keep_answer, request_fingerprint


@pytest.mark.parametrize(("to", "wa_id"), [
    ("+15551234567", "15551234567"), ("+44 20 7946 0958", "442079460958"), ("(+351) 912-345-678", "351912345678"),
    ("0049 30 1234567", "49301234567"), ("15551234567", "15551234567")])
def test_a_phone_number_becomes_its_wa_id(to: str, wa_id: str) -> None:
    assert parse_recipient(to).wa_id == wa_id and parse_recipient(to).user_id == ""


def test_a_bsuid_is_a_user_id() -> None:
    recipient = parse_recipient("US.13491208655302741918")
    assert recipient.user_id == "US.13491208655302741918" and recipient.wa_id == ""


@pytest.mark.parametrize("to", ["12345", "+1555abc4567", "0555123456", "hello", "+1234567890123456", "US."])
def test_anything_else_is_refused(to: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_recipient(to)
    assert error.value.code == "RECIPIENT_INVALID"


def test_positional_and_named_parameters_map_to_metas_components() -> None:
    assert template_content("stay", "en_US", ["Ana", "214"], None, None) == {
        "name": "stay", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                        {"type": "text", "text": "214"}]}]}
    named = template_content("stay", "pt_PT", {"guest": "Ana"}, ["Lisboa"], None)
    assert named["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "Lisboa"}]},
        {"type": "body", "parameters": [{"type": "text", "parameterName": "guest", "text": "Ana"}]}]
    assert template_content("hello_world", "en_US", None, None, None) == {
        "name": "hello_world", "language": {"code": "en_US"}}
    raw = [{"type": "body", "parameters": [{"type": "text", "text": "x"}]}]
    assert template_content("t", "en", None, None, raw)["components"] is raw


def test_the_fingerprint_ignores_key_order_but_not_content_or_path() -> None:
    one = request_fingerprint("POST", "/n8n/message", {"a": 1, "b": {"c": 2}})
    assert one == request_fingerprint("POST", "/n8n/message", {"b": {"c": 2}, "a": 1})
    assert one != request_fingerprint("POST", "/n8n/message", {"a": 2, "b": {"c": 2}})
    assert one != request_fingerprint("POST", "/n8n/template", {"a": 1, "b": {"c": 2}})


def test_only_answers_a_retry_cannot_change_are_kept() -> None:
    assert keep_answer(201) and keep_answer(200) and keep_answer(404) and keep_answer(422) and keep_answer(400)
    assert not any(keep_answer(status) for status in (408, 409, 429, 500, 503, 504))


def test_keys_are_checked_and_messagings_key_is_per_api_key() -> None:
    assert check_key("  abc ") == "abc"
    for bad in ("", "x" * 256, "a\nb"):
        with pytest.raises(InvalidArgument):
            check_key(bad)
    assert messaging_key("apikey:1", "k") != messaging_key("apikey:2", "k")
    assert messaging_key("apikey:1", "k") == messaging_key("apikey:1", "k")
    assert len(messaging_key("apikey:1", "x" * 255)) <= 255
