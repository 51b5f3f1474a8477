"""The walker reads Meta's template webhooks (the WABA id from entry.id) and coexistence echoes (reference §12);
the Graph template client pages, retries and reports Meta's 190."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eva_common.errors import FailedPrecondition, Unavailable
from messaging_service.template_sync import GraphTemplateClient, TokenRefused, template_fields
from messaging_service.webhook import TemplateChange, walk

WABA = "102290129340398"


def account_change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1749416383, "changes": [
        {"field": field, "value": value}]}]}


def test_template_status_category_and_quality_updates() -> None:
    status = walk(account_change("message_template_status_update", {
        "event": "REJECTED", "message_template_id": 594425479261596, "message_template_name": "room_ready",
        "message_template_language": "en_US", "reason": "INVALID_FORMAT"})).templates
    assert [(u.change, u.waba_id, u.meta_id, u.name, u.language, u.value, u.reason) for u in status] == [
        (TemplateChange.STATUS, WABA, "594425479261596", "room_ready", "en_US", "REJECTED", "INVALID_FORMAT")]
    approved = walk(account_change("message_template_status_update", {
        "event": "APPROVED", "message_template_id": "1", "message_template_name": "a",
        "message_template_language": "en", "reason": "NONE"})).templates
    assert approved[0].reason is None
    category = walk(account_change("template_category_update", {
        "message_template_id": "1", "message_template_name": "a", "message_template_language": "en",
        "previous_category": "UTILITY", "new_category": "MARKETING"})).templates
    assert (category[0].change, category[0].value) == (TemplateChange.CATEGORY, "MARKETING")
    quality = walk(account_change("message_template_quality_update", {
        "previous_quality_score": "GREEN", "new_quality_score": "YELLOW", "message_template_id": "1",
        "message_template_name": "a", "message_template_language": "en"})).templates
    assert (quality[0].change, quality[0].value, quality[0].reason) == (TemplateChange.QUALITY, "YELLOW", None)


def test_malformed_template_updates_are_ignored() -> None:
    batch = walk(account_change("message_template_status_update", {"event": "APPROVED"}))
    assert batch.templates == [] and batch.ignored == 1
    assert walk(account_change("account_update", {"event": "VERIFIED"})).ignored == 1


def test_echoes_are_outbound_copies_with_the_guest_as_recipient() -> None:
    payload = account_change("smb_message_echoes", {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "message_echoes": [
            {"from": "15550783881", "to": "16505551234", "id": "wamid.ECHO1", "timestamp": "1749416383",
             "type": "text", "text": {"body": "See you at 3"}},
            {"from": "15550783881", "to": "16505551234", "id": "wamid.ECHO2", "timestamp": "1749416384",
             "type": "image", "image": {"id": "987", "mime_type": "image/jpeg", "sha256": "abc", "caption": "Map"}},
            {"from": "15550783881", "to": "16505551234", "type": "text"},  # no id: skipped
        ]})
    batch = walk(payload)
    assert batch.messages == [] and batch.ignored == 1
    first, second = batch.echoes
    assert (first.wamid, first.phone_number_id, first.to, first.to_user_id, first.type, first.content) == (
        "wamid.ECHO1", "106540352242922", "16505551234", None, "text", {"body": "See you at 3"})
    assert first.sent_at is not None and first.sent_at.timestamp() == 1749416383
    assert second.type == "image" and second.content["id"] == "987" and second.content["caption"] == "Map"


def test_graph_template_objects_become_rows() -> None:
    fields = template_fields({
        "name": "room_ready", "language": "en_US", "status": "approved", "category": "UTILITY", "id": "594",
        "parameter_format": "POSITIONAL", "components": [{"type": "BODY", "text": "Hi {{1}}"}, "junk"],
        "quality_score": {"score": "GREEN"}, "rejected_reason": "NONE"})
    assert fields == {"name": "room_ready", "language": "en_US", "meta_id": "594", "status": "APPROVED",
                      "category": "UTILITY", "quality": "GREEN", "parameter_format": "POSITIONAL",
                      "components": [{"type": "BODY", "text": "Hi {{1}}"}], "rejected_reason": None}
    assert template_fields({"name": "x"}) is None


def _client(handler: Any, **options: Any) -> GraphTemplateClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return GraphTemplateClient(http=http, graph_url="http://graph.test/", api_version="v21.0", backoff_seconds=0,
                               **options)


async def test_every_page_is_fetched_through_the_configured_graph_url() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        assert request.headers["authorization"] == "Bearer tok"
        after = request.url.params.get("after")
        if after is None:
            return httpx.Response(200, json={"data": [{"name": "a", "language": "en"}], "paging": {
                "cursors": {"before": "b0", "after": "c1"},
                "next": "https://graph.facebook.com/v21.0/w1/message_templates?limit=100&after=c1"}})
        if after == "c1":  # no cursors, only `next`
            return httpx.Response(200, json={"data": [{"name": "b", "language": "en"}], "paging": {
                "next": "https://graph.facebook.com/v21.0/w1/message_templates?limit=100&after=c2"}})
        return httpx.Response(200, json={"data": [{"name": "c", "language": "en"}],
                                         "paging": {"cursors": {"before": "c2", "after": "c3"}}})

    listed = await _client(handler).list_templates(waba_id="w1", token="tok")
    assert [item["name"] for item in listed] == ["a", "b", "c"]
    assert {url.host for url in seen} == {"graph.test"}
    assert [url.path for url in seen] == ["/v21.0/w1/message_templates"] * 3
    assert [url.params.get("after") for url in seen] == [None, "c1", "c2"]
    assert all(url.params["limit"] == "100" for url in seen)


async def test_5xx_and_timeouts_are_retried_a_bounded_number_of_times() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if calls == 2:
            return httpx.Response(503, json={"error": {"code": 2, "message": "Service temporarily unavailable"}})
        return httpx.Response(200, json={"data": [{"name": "a", "language": "en"}]})

    assert len(await _client(flaky).list_templates(waba_id="w1", token="tok")) == 1
    calls = 0

    def down(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, json={"error": {"code": 1, "message": "An unknown error occurred"}})

    with pytest.raises(Unavailable) as caught:
        await _client(down, attempts=3).list_templates(waba_id="w1", token="tok")
    assert caught.value.code == "WHATSAPP_UNAVAILABLE" and calls == 3


async def test_a_refused_token_is_reported_as_such_and_not_retried() -> None:
    calls = 0

    def refused(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"code": 190, "type": "OAuthException",
                                                   "message": "Error validating access token"}})

    with pytest.raises(TokenRefused) as caught:
        await _client(refused).list_templates(waba_id="w1", token="tok")
    assert caught.value.code == "WHATSAPP_TOKEN_INVALID" and "190" in caught.value.detail and calls == 1

    def other(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": 100, "message": "Invalid parameter"}})

    with pytest.raises(FailedPrecondition) as failed:
        await _client(other).list_templates(waba_id="w1", token="tok")
    assert failed.value.code == "WHATSAPP_REQUEST_FAILED" and "100" in failed.value.detail
