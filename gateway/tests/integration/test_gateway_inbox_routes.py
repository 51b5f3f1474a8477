"""The inbox routes through the real gateway (uvicorn) to fake ConversationService over real gRPC: filters and
cursors passed through, camelCase bodies, validation at the edge, upstream codes carried over, and resources of
another tenant never shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva.conversation.v1 import conversation_pb2

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.status_code, response.json()["code"]


async def test_the_inbox_passes_its_filters_and_cursor_through(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    owner = make_account()
    for index in range(3):
        seed_conversation(owner, f"inbox-{owner.tenant_id}-{index}", messages=index)
    seed_conversation(make_account(), f"inbox-foreign-{owner.tenant_id}")

    first = await http.get("/api/conversations", params={"limit": 2}, headers=bearer(owner.token))
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == {"items", "nextCursor"} and page["nextCursor"] == "2"
    assert [item["id"] for item in page["items"]] == [f"inbox-{owner.tenant_id}-0", f"inbox-{owner.tenant_id}-1"]
    item = page["items"][1]
    assert {"id", "tenantId", "contactId", "status", "assignedTo", "priority", "lastMessageAt", "lastMessagePreview",
            "lastInboundAt", "windowExpiresAt", "unreadCount", "phoneNumberId", "createdAt", "updatedAt", "contact",
            "tags"} == set(item)
    assert item["unreadCount"] == 1 and item["contact"]["name"] == "Guest"
    assert (item["lastMessagePreview"], item["tags"]) == ("message 0", [])
    second = await http.get("/api/conversations", params={"limit": 2, "cursor": page["nextCursor"]},
                            headers=bearer(owner.token))
    assert [item["id"] for item in second.json()["items"]] == [f"inbox-{owner.tenant_id}-2"]
    assert second.json()["nextCursor"] is None

    await http.get("/api/conversations", headers=bearer(owner.token), params={
        "status": "pending", "attendantId": "u-7", "tag": "VIP", "q": "José",
        "updatedSince": "2026-11-29T11:00:00+01:00", "limit": 10, "cursor": "abc"})
    sent = directory.requests_of("ListConversations")[-1]
    assert (sent.status, sent.assigned_to, sent.unassigned, sent.tag, sent.q, sent.updated_since, sent.limit,
            sent.cursor) == ("pending", "u-7", False, "VIP", "José", "2026-11-29T10:00:00.000Z", 10, "abc")
    await http.get("/api/conversations", params={"unassigned": "true"}, headers=bearer(owner.token))
    sent = directory.requests_of("ListConversations")[-1]
    assert (sent.unassigned, sent.assigned_to, sent.limit) == (True, "", 50)
    assert directory.metadata_of("ListConversations")[-1]["authorization"] == f"Bearer {owner.token}"


async def test_the_inbox_validates_its_query(http: httpx.AsyncClient, make_account: Callable[..., Any],
                                             upstreams: Any) -> None:
    owner = make_account()
    calls = len(upstreams.directory.requests_of("ListConversations"))
    for params, field in [({"status": "closed"}, "query.status"), ({"limit": 0}, "query.limit"),
                          ({"limit": 101}, "query.limit"), ({"updatedSince": "yesterday"}, "query.updatedSince"),
                          ({"updatedSince": "2026-11-29T10:00:00"}, "query.updatedSince"),  # no offset
                          ({"unassigned": "maybe"}, "query.unassigned")]:
        response = await http.get("/api/conversations", params=params, headers=bearer(owner.token))
        assert problem(response) == (400, "VALIDATION_FAILED"), params
        assert [error["field"] for error in response.json()["errors"]] == [field], params
    both = await http.get("/api/conversations", params={"unassigned": "true", "attendantId": "u-1"},
                          headers=bearer(owner.token))
    assert problem(both) == (400, "VALIDATION_FAILED")
    assert len(upstreams.directory.requests_of("ListConversations")) == calls  # nothing reached the upstream


async def test_a_listing_never_shows_another_tenants_conversations(
    http: httpx.AsyncClient, make_account: Callable[..., Any], seed_conversation: Callable[..., None]
) -> None:
    owner, other = make_account(), make_account()
    seed_conversation(owner, f"mine-{owner.tenant_id}")
    seed_conversation(other, f"theirs-{other.tenant_id}")
    # q=leak makes the fake upstream list every tenant's conversations (a bug): the edge drops the foreign ones
    response = await http.get("/api/conversations", params={"q": "leak", "limit": 100}, headers=bearer(owner.token))
    assert response.status_code == 200
    tenants = {item["tenantId"] for item in response.json()["items"]}
    assert tenants == {owner.tenant_id}


async def test_change_assign_and_tag_a_conversation(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    owner = make_account(role="attendant")
    colleague = make_account(role="attendant", tenant_id=owner.tenant_id)
    outsider = make_account()
    conversation_id = f"conv-change-{owner.tenant_id}"
    seed_conversation(owner, conversation_id)
    path = f"/api/conversations/{conversation_id}"

    patched = await http.patch(path, json={"status": "pending", "priority": "high"}, headers=bearer(owner.token))
    assert patched.status_code == 200, patched.text
    assert (patched.json()["status"], patched.json()["priority"]) == ("pending", "high")
    only_status = await http.patch(path, json={"status": "resolved"}, headers=bearer(owner.token))
    assert (only_status.json()["status"], only_status.json()["priority"]) == ("resolved", "high")
    assert not directory.requests_of("UpdateConversation")[-1].HasField("priority")
    for body in ({}, {"status": "closed"}, {"priority": "p1"}, {"status": None}):
        assert problem(await http.patch(path, json=body, headers=bearer(owner.token))) == (400, "VALIDATION_FAILED")

    assigned = await http.post(f"{path}/assign", json={"attendantId": colleague.user_id}, headers=bearer(owner.token))
    assert assigned.status_code == 200 and assigned.json()["assignedTo"] == colleague.user_id
    cleared = await http.post(f"{path}/assign", json={"attendantId": None}, headers=bearer(owner.token))
    assert cleared.status_code == 200 and cleared.json()["assignedTo"] is None
    assert directory.requests_of("AssignConversation")[-1].attendant_id == ""
    refused = await http.post(f"{path}/assign", json={"attendantId": outsider.user_id}, headers=bearer(owner.token))
    assert problem(refused) == (422, "ATTENDANT_NOT_ASSIGNABLE")  # the upstream's rule and code
    assert problem(await http.post(f"{path}/assign", json={}, headers=bearer(owner.token))) == (
        400, "VALIDATION_FAILED")

    tag = await http.post("/api/tags", json={"name": "VIP", "color": "#aa00ff"}, headers=bearer(owner.token))
    assert tag.status_code == 201
    tag_id = tag.json()["id"]
    attached = await http.post(f"{path}/tags/{tag_id}", headers=bearer(owner.token))
    assert attached.status_code == 200 and attached.json()["id"] == conversation_id
    assert [(tag["id"], tag["name"], tag["color"]) for tag in attached.json()["tags"]] == [(tag_id, "VIP", "#aa00ff")]
    again = await http.post(f"{path}/tags/{tag_id}", headers=bearer(owner.token))
    assert len(again.json()["tags"]) == 1
    assert directory.conversation_tags[conversation_id] == {tag_id}
    tagged = await http.get("/api/conversations", params={"tag": tag_id}, headers=bearer(owner.token))
    assert [item["id"] for item in tagged.json()["items"]] == [conversation_id]
    detached = await http.delete(f"{path}/tags/{tag_id}", headers=bearer(owner.token))
    assert detached.status_code == 200 and directory.conversation_tags[conversation_id] == set()
    assert detached.json()["tags"] == []
    assert problem(await http.post(f"{path}/tags/no-such-tag", headers=bearer(owner.token))) == (404, "TAG_NOT_FOUND")

    # another tenant cannot touch it; a leaking upstream's answer is not shown either
    assert problem(await http.patch(path, json={"status": "open"}, headers=bearer(outsider.token))) == (
        404, "CONVERSATION_NOT_FOUND")
    seed_conversation(owner, f"leaky-{owner.tenant_id}")
    leaked = await http.post(f"/api/conversations/leaky-{owner.tenant_id}/assign", json={"attendantId": None},
                             headers=bearer(outsider.token))
    assert problem(leaked) == (404, "NOT_FOUND")


async def test_tags_crud(http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any) -> None:
    owner, other = make_account(), make_account()
    created = await http.post("/api/tags", json={"name": "  Late check-out ", "color": "#00FF00"},
                              headers=bearer(owner.token))
    assert created.status_code == 201
    assert set(created.json()) == {"id", "name", "color", "createdAt", "updatedAt"}
    assert created.json()["name"] == "Late check-out"
    plain = await http.post("/api/tags", json={"name": "Breakfast"}, headers=bearer(owner.token))
    assert plain.json()["color"] is None
    duplicate = await http.post("/api/tags", json={"name": "Breakfast"}, headers=bearer(owner.token))
    assert problem(duplicate) == (409, "TAG_EXISTS")
    for body in ({"name": ""}, {"name": "x", "color": "green"}, {"color": "#000000"}):
        assert problem(await http.post("/api/tags", json=body, headers=bearer(owner.token))) == (
            400, "VALIDATION_FAILED")

    listed = await http.get("/api/tags", headers=bearer(owner.token))
    assert listed.json() == {"items": [plain.json(), created.json()], "nextCursor": None}
    assert (await http.get("/api/tags", headers=bearer(other.token))).json()["items"] == []

    tag_id = created.json()["id"]
    renamed = await http.patch(f"/api/tags/{tag_id}", json={"color": "#123456"}, headers=bearer(owner.token))
    assert (renamed.json()["name"], renamed.json()["color"]) == ("Late check-out", "#123456")
    assert problem(await http.patch(f"/api/tags/{tag_id}", json={}, headers=bearer(owner.token))) == (
        400, "VALIDATION_FAILED")
    assert problem(await http.patch(f"/api/tags/{tag_id}", json={"name": "x"}, headers=bearer(other.token))) == (
        404, "TAG_NOT_FOUND")
    deleted = await http.delete(f"/api/tags/{tag_id}", headers=bearer(owner.token))
    assert deleted.status_code == 204 and deleted.content == b""
    assert problem(await http.delete(f"/api/tags/{tag_id}", headers=bearer(owner.token))) == (404, "TAG_NOT_FOUND")
    assert [tag["id"] for tag in (await http.get("/api/tags", headers=bearer(owner.token))).json()["items"]] == [
        plain.json()["id"]]


async def test_escalations_raise_list_acknowledge_resolve(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    owner, other = make_account(role="attendant"), make_account()
    conversation_id = f"conv-esc-{owner.tenant_id}"
    seed_conversation(owner, conversation_id)

    raised = await http.post("/api/escalations", json={"conversationId": conversation_id, "reason": "Noise in 204",
                                                       "priority": "urgent"}, headers=bearer(owner.token))
    assert raised.status_code == 201, raised.text
    escalation = raised.json()
    assert set(escalation) == {"id", "tenantId", "conversationId", "reason", "priority", "status", "raisedBy",
                               "acknowledgedBy", "resolvedBy", "note", "createdAt", "acknowledgedAt", "resolvedAt"}
    assert (escalation["status"], escalation["priority"], escalation["raisedBy"]) == ("open", "urgent",
                                                                                    owner.user_id)
    second = await http.post("/api/escalations", json={"conversationId": conversation_id, "reason": "Late taxi"},
                             headers=bearer(owner.token))
    assert second.json()["priority"] == "normal"
    for body in ({"conversationId": conversation_id, "reason": ""},
                 {"conversationId": conversation_id, "reason": "x", "priority": "p0"}, {"reason": "x"}):
        assert problem(await http.post("/api/escalations", json=body, headers=bearer(owner.token))) == (
            400, "VALIDATION_FAILED")
    foreign = await http.post("/api/escalations", json={"conversationId": conversation_id, "reason": "x"},
                              headers=bearer(other.token))
    assert problem(foreign) == (404, "CONVERSATION_NOT_FOUND")

    page = await http.get("/api/escalations", params={"conversationId": conversation_id, "limit": 1},
                          headers=bearer(owner.token))
    assert len(page.json()["items"]) == 1 and page.json()["nextCursor"] == "1"
    rest = await http.get("/api/escalations", params={"conversationId": conversation_id, "limit": 1,
                                                      "cursor": "1"}, headers=bearer(owner.token))
    assert len(rest.json()["items"]) == 1 and rest.json()["nextCursor"] is None
    sent = directory.requests_of("ListEscalations")[-1]
    assert (sent.conversation_id, sent.limit, sent.cursor, sent.status) == (conversation_id, 1, "1", "")
    assert problem(await http.get("/api/escalations", params={"status": "closed"}, headers=bearer(owner.token))) == (
        400, "VALIDATION_FAILED")

    path = f"/api/escalations/{escalation['id']}"
    acknowledged = await http.post(f"{path}/acknowledge", headers=bearer(owner.token))
    assert (acknowledged.json()["status"], acknowledged.json()["acknowledgedBy"]) == ("acknowledged", owner.user_id)
    again = await http.post(f"{path}/acknowledge", headers=bearer(owner.token))
    assert problem(again) == (422, "ESCALATION_NOT_OPEN")
    resolved = await http.post(f"{path}/resolve", json={"note": "Moved to 305"}, headers=bearer(owner.token))
    assert (resolved.json()["status"], resolved.json()["note"]) == ("resolved", "Moved to 305")
    no_body = await http.post(f"/api/escalations/{second.json()['id']}/resolve", headers=bearer(owner.token))
    assert no_body.status_code == 200 and no_body.json()["note"] is None
    open_only = await http.get("/api/escalations", params={"status": "open"}, headers=bearer(owner.token))
    assert open_only.json()["items"] == []
    assert problem(await http.post(f"{path}/resolve", headers=bearer(other.token))) == (404, "ESCALATION_NOT_FOUND")

    directory.escalations["leaky-esc"] = conversation_pb2.Escalation(
        id="leaky-esc", tenant_id=owner.tenant_id, conversation_id=conversation_id, reason="r", priority="low",
        status="open")
    assert problem(await http.post("/api/escalations/leaky-esc/acknowledge", headers=bearer(other.token))) == (
        404, "NOT_FOUND")
    assert directory.escalations["leaky-esc"].status == "acknowledged"  # the buggy upstream did it; not shown


async def test_contacts_search_create_read_change(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    owner, other = make_account(), make_account()
    created = await http.post("/api/contacts", json={"name": "José Saramago", "phone": "+351910000123"},
                              headers=bearer(owner.token))
    assert created.status_code == 201, created.text
    contact = created.json()
    assert set(contact) == {"id", "waId", "userId", "name", "phone", "createdAt", "updatedAt"}
    assert contact["phone"] == "351910000123"  # the '+' is dropped at the edge
    assert upstreams.directory.requests_of("CreateContact")[-1].phone == "351910000123"
    await http.post("/api/contacts", json={"name": "Ana", "phone": "16505550000"}, headers=bearer(owner.token))
    duplicate = await http.post("/api/contacts", json={"name": "Again", "phone": "351910000123"},
                                headers=bearer(owner.token))
    assert problem(duplicate) == (409, "CONTACT_EXISTS")
    for body in ({"name": "x"}, {"name": "x", "phone": "12ab"}, {"name": "", "phone": "351910000124"}):
        assert problem(await http.post("/api/contacts", json=body, headers=bearer(owner.token))) == (
            400, "VALIDATION_FAILED")

    search = await http.get("/api/contacts", params={"q": "Sara"}, headers=bearer(owner.token))
    assert [item["id"] for item in search.json()["items"]] == [contact["id"]]
    first = await http.get("/api/contacts", params={"limit": 1}, headers=bearer(owner.token))
    assert len(first.json()["items"]) == 1 and first.json()["nextCursor"] == "1"
    sent = upstreams.directory.requests_of("ListContacts")[-1]
    assert (sent.q, sent.limit, sent.cursor) == ("", 1, "")

    read = await http.get(f"/api/contacts/{contact['id']}", headers=bearer(owner.token))
    assert read.json() == contact
    assert problem(await http.get(f"/api/contacts/{contact['id']}", headers=bearer(other.token))) == (
        404, "CONTACT_NOT_FOUND")
    changed = await http.patch(f"/api/contacts/{contact['id']}", json={"name": "José S."},
                               headers=bearer(owner.token))
    assert (changed.json()["name"], changed.json()["phone"]) == ("José S.", "351910000123")
    assert problem(await http.patch(f"/api/contacts/{contact['id']}", json={}, headers=bearer(owner.token))) == (
        400, "VALIDATION_FAILED")

    upstreams.directory.contacts["leaky-contact"] = conversation_pb2.Contact(id="leaky-contact",
                                                                             tenant_id=owner.tenant_id, name="x")
    assert problem(await http.get("/api/contacts/leaky-contact", headers=bearer(other.token))) == (404, "NOT_FOUND")
