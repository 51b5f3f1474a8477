"""Unit tests (no I/O) of the inbox rules: previews, the escalation state machine, who may call what, and
the validation of tags and contacts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conversation_service.access import require_reader, require_writer
from conversation_service.contacts import valid_phone
from conversation_service.escalations import check_transition
from conversation_service.repository import ContactSearch, like_pattern
from conversation_service.service import message_preview
from conversation_service.tags import valid_color, valid_name
from eva_common.auth import Principal
from eva_common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from eva_events.messaging import MessageView


def who(kind: str = "user", role: str = "attendant", scopes: tuple[str, ...] = ()) -> Principal:
    return Principal(subject="s", kind=kind, role=role, tenant_id="t", token="x", token_id="j",  # type: ignore[arg-type]
                     issued_at=0, expires_at=0, scopes=scopes)


def preview_of(type_: str, content: dict[str, object]) -> str:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    return message_preview(MessageView(id="m", conversation_id="c", contact_id="k", wamid=None, direction="inbound",
                                       type=type_, status="RECEIVED", content=content, sent_at=now, created_at=now))


def test_previews_truncate_text_and_name_other_types() -> None:
    assert preview_of("text", {"body": "hello"}) == "hello"
    assert preview_of("text", {"body": "é" * 200}) == "é" * 120
    assert preview_of("image", {"id": "1", "caption": "pool"}) == "[image]"
    assert preview_of("audio", {"id": "1"}) == "[audio]"
    assert preview_of("text", {}) == "[text]"


def test_escalations_move_forward_only() -> None:
    check_transition("open", "acknowledged")
    check_transition("open", "resolved")
    check_transition("acknowledged", "resolved")
    for current, target in (("acknowledged", "acknowledged"), ("resolved", "resolved"), ("resolved", "acknowledged"),
                            ("open", "open")):
        with pytest.raises(FailedPrecondition) as raised:
            check_transition(current, target)
        assert raised.value.code == "ESCALATION_STATE"


def test_who_may_call_what() -> None:
    require_reader(who())
    require_reader(who("api_key", "api_key", ("conversations:read",)))
    with pytest.raises(PermissionDenied):
        require_reader(who("api_key", "api_key", ("messages:read",)))
    require_writer(who("api_key", "api_key", ("conversations:write",)))
    require_writer(who("api_key", "api_key", ("conversations:write",)), "admin")  # keys go by scope, not role
    with pytest.raises(PermissionDenied) as raised:
        require_writer(who("api_key", "api_key", ("conversations:read",)))
    assert raised.value.code == "SCOPE_MISSING"
    with pytest.raises(PermissionDenied):
        require_writer(who("service", "service"))
    require_writer(who())
    require_writer(who(role="admin"), "admin")
    with pytest.raises(PermissionDenied):
        require_writer(who(), "admin")


def test_tag_and_contact_validation() -> None:
    assert valid_name("  Late   checkout ") == "Late checkout"
    assert valid_color("#ABCDEF") == "#abcdef"
    assert valid_phone("+4915100000001") == "4915100000001"
    for call in (lambda: valid_name(""), lambda: valid_name("x" * 51), lambda: valid_color("#abc"),
                 lambda: valid_phone("123"), lambda: valid_phone("0491510000000"), lambda: valid_phone("49 151")):
        with pytest.raises(InvalidArgument):
            call()


def test_search_text_is_matched_literally() -> None:
    assert like_pattern("100%_\\") == "%100\\%\\_\\\\%"


def test_only_a_phone_like_query_is_matched_by_its_digits() -> None:
    assert ContactSearch.of("+49 151-12") == ContactSearch(name_pattern="%+49 151-12%", phone_pattern="%4915112%")
    # a name fragment with digits is not a phone number
    assert ContactSearch.of("f1c159") == ContactSearch(name_pattern="%f1c159%", phone_pattern="%f1c159%")
    assert ContactSearch.of("50%") == ContactSearch(name_pattern="%50\\%%", phone_pattern="%50\\%%")


def test_a_query_shorter_than_a_trigram_is_not_looked_up_in_the_index() -> None:
    assert ContactSearch.of("ann").indexable
    assert not ContactSearch.of("an").indexable
    assert not ContactSearch.of("+4 9").indexable  # the phone's digits "49" are too short
