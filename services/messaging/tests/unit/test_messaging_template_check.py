"""check_template_send: every rule, with its stable code and a detail naming the component at fault."""

from __future__ import annotations

from typing import Any

import pytest
from eva_common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from messaging_service.models import Template
from messaging_service.template_check import check_template_send, placeholders

BODY = {"type": "BODY", "text": "Hello {{1}}, your room {{2}} is ready."}


def template(*components: dict[str, Any], status: str = "APPROVED", parameter_format: str = "POSITIONAL",
             rejected_reason: str | None = None) -> Template:
    return Template(tenant_id="t1", waba_id="w1", name="room_ready", language="en_US", status=status,
                    parameter_format=parameter_format, components=list(components) or [BODY],
                    rejected_reason=rejected_reason)


def body(*values: str, names: tuple[str, ...] = ()) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"type": "text", "text": value} for value in values]
    for parameter, name in zip(parameters, names, strict=False):
        parameter["parameter_name"] = name
    return {"type": "body", "parameters": parameters}


def refused(stored: Template | None, components: list[dict[str, Any]], *, name: str = "room_ready",
            language: str = "en_US") -> DomainError:
    with pytest.raises(DomainError) as caught:
        check_template_send(stored, name=name, language=language, components=components)
    return caught.value


def test_placeholders_are_distinct_and_in_order() -> None:
    assert placeholders("{{2}} {{1}} {{ 2 }} {{guest_name}}") == ["2", "1", "guest_name"]
    assert placeholders(None) == []


def test_a_matching_send_passes() -> None:
    check_template_send(template(), name="room_ready", language="en_US", components=[body("Ana", "12")])


def test_not_synced_or_another_language_is_not_found() -> None:
    assert isinstance(refused(None, []), NotFound) and refused(None, []).code == "TEMPLATE_NOT_FOUND"
    error = refused(template(), [body("Ana", "12")], language="pt_BR")
    assert error.code == "TEMPLATE_NOT_FOUND" and "pt_BR" in error.detail


@pytest.mark.parametrize("status", ["PAUSED", "DISABLED", "REJECTED", "PENDING", "IN_APPEAL"])
def test_only_approved_templates_are_sent(status: str) -> None:
    error = refused(template(status=status, rejected_reason="INVALID_FORMAT" if status == "REJECTED" else None),
                    [body("Ana", "12")])
    assert isinstance(error, FailedPrecondition) and error.code == "TEMPLATE_NOT_APPROVED"
    assert status in error.detail
    if status == "REJECTED":
        assert "INVALID_FORMAT" in error.detail


@pytest.mark.parametrize("given", [[], [body("Ana")], [body("Ana", "12", "extra")]])
def test_the_body_needs_one_parameter_per_placeholder(given: list[dict[str, Any]]) -> None:
    error = refused(template(), given)
    assert isinstance(error, InvalidArgument) and error.code == "TEMPLATE_PARAMS_MISMATCH"
    assert error.detail.startswith("body:") and "{{1}}, {{2}}" in error.detail


def test_named_templates_match_each_parameter_name() -> None:
    named = template({"type": "BODY", "text": "Hi {{guest_name}}, room {{room}}"}, parameter_format="NAMED")
    check_template_send(named, name="room_ready", language="en_US",
                        components=[body("Ana", "12", names=("guest_name", "room"))])
    assert "parameter_name" in refused(named, [body("Ana", "12")]).detail
    assert "{{guest}}" in refused(named, [body("Ana", "12", names=("guest", "room"))]).detail
    assert "{{room}} has no parameter" in refused(named, [body("Ana", names=("guest_name",))]).detail
    assert "twice" in refused(named, [body("Ana", "B", "12", names=("guest_name", "guest_name", "room"))]).detail


@pytest.mark.parametrize("fmt", ["IMAGE", "VIDEO", "DOCUMENT"])
def test_a_media_header_needs_one_parameter_of_its_type(fmt: str) -> None:
    kind = fmt.lower()
    stored = template({"type": "HEADER", "format": fmt}, BODY)
    header = {"type": "header", "parameters": [{"type": kind, kind: {"link": "https://example.test/x"}}]}
    check_template_send(stored, name="room_ready", language="en_US", components=[header, body("Ana", "12")])
    by_id = {"type": "header", "parameters": [{"type": kind, kind: {"id": "1479537139650973"}}]}
    check_template_send(stored, name="room_ready", language="en_US", components=[by_id, body("Ana", "12")])
    for wrong in ([], [{"type": "header", "parameters": [{"type": "text", "text": "x"}]}],
                  [{"type": "header", "parameters": [{"type": kind, kind: {}}]}]):
        error = refused(stored, [*wrong, body("Ana", "12")])
        assert error.code == "TEMPLATE_PARAMS_MISMATCH" and error.detail.startswith("header:")


def test_a_text_header_with_a_placeholder_needs_one_text_parameter() -> None:
    stored = template({"type": "HEADER", "format": "TEXT", "text": "Welcome {{1}}"}, BODY)
    header = {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]}
    check_template_send(stored, name="room_ready", language="en_US", components=[header, body("Ana", "12")])
    assert refused(stored, [body("Ana", "12")]).detail.startswith("header:")
    plain = template({"type": "HEADER", "format": "TEXT", "text": "Welcome"}, BODY)
    check_template_send(plain, name="room_ready", language="en_US", components=[body("Ana", "12")])
    assert refused(plain, [header, body("Ana", "12")]).detail.startswith("header:")
    assert refused(template(), [header, body("Ana", "12")]).detail.startswith("header:")  # no header at all


BUTTONS = {"type": "BUTTONS", "buttons": [
    {"type": "QUICK_REPLY", "text": "Yes"},
    {"type": "URL", "text": "Check in", "url": "https://hotel.test/checkin/{{1}}"},
    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550000000"},
]}


def button(index: object, sub_type: str, value: str = "x") -> dict[str, Any]:
    kind = "payload" if sub_type == "quick_reply" else "text"
    return {"type": "button", "sub_type": sub_type, "index": index, "parameters": [{"type": kind, kind: value}]}


def test_buttons_name_an_existing_url_or_quick_reply_button() -> None:
    stored = template(BODY, BUTTONS)
    check_template_send(stored, name="room_ready", language="en_US",
                        components=[body("Ana", "12"), button("0", "quick_reply"), button(1, "url", "abc")])
    for wrong, words in (
        ([button("1", "url"), button("7", "quick_reply")], "index '7'"),
        ([button("1", "url"), button("x", "url")], "index 'x'"),
        ([button("1", "url"), button("2", "url")], "PHONE_NUMBER"),
        ([button("1", "url"), button("0", "url")], "QUICK_REPLY"),
        ([button("1", "url"), button("1", "url")], "twice"),
        ([button("0", "quick_reply")], "dynamic URL"),  # the URL button's parameter is missing
    ):
        error = refused(stored, [body("Ana", "12"), *wrong])
        assert error.code == "TEMPLATE_PARAMS_MISMATCH" and error.detail.startswith("button"), wrong
        assert words in error.detail, (words, error.detail)
    assert "button" in refused(template(), [body("Ana", "12"), button("0", "quick_reply")]).detail


def test_components_that_take_no_parameters_are_refused() -> None:
    error = refused(template(), [body("Ana", "12"), {"type": "footer", "parameters": []}])
    assert error.code == "TEMPLATE_PARAMS_MISMATCH" and "footer" in error.detail
