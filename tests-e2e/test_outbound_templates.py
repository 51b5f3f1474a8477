"""Templates through the public gateway on the whole stack: the sync imports the WABA's templates from Meta (the
simulator), the list filters them, a send is checked against the stored template (parameters, status), Meta's
template webhooks reach the stored template (ingest → messaging), and a MARKETING template leaves through Meta's
Marketing Messages API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from e2e_support import StackUrls
from outbound_support import Desk, opened_desk, problem, request_of, until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


async def create_template(desk: Desk, category: str, body: str) -> dict[str, Any]:
    """A template of the desk's WABA at Meta (the simulator), APPROVED, positional body parameters."""
    created: dict[str, Any] = await desk.sim("POST", "/templates", json={
        "wabaId": desk.waba_id, "name": f"stay_{category.lower()}_{uuid.uuid4().hex[:8]}", "language": "en_US",
        "category": category, "parameterFormat": "POSITIONAL",
        "components": [{"type": "BODY", "text": body, "example": {"body_text": [["Ana", "214"]]}}]})
    return created


def body_params(*values: str) -> list[dict[str, Any]]:
    return [{"type": "body", "parameters": [{"type": "text", "text": value} for value in values]}]


async def test_sync_imports_metas_templates_and_the_list_filters_them(desk: Desk) -> None:
    template = await create_template(desk, "UTILITY", "Hello {{1}}, room {{2}} is ready.")
    paused = await create_template(desk, "UTILITY", "Hello {{1}}, see you in room {{2}}.")
    await desk.sim("PATCH", f"/templates/{paused['id']}", json={"status": "PAUSED", "webhook": False})
    synced = await desk.sync_templates()
    assert synced["fetched"] == 3 and synced["syncedAt"], synced
    names = {t["name"]: t for t in await desk.templates()}
    assert {"hello_world", template["name"], paused["name"]} <= set(names), names
    assert names[template["name"]]["status"] == "APPROVED" and names[template["name"]]["category"] == "UTILITY"
    assert names[template["name"]]["parameterFormat"] == "POSITIONAL"
    approved = {t["name"] for t in await desk.templates(status="APPROVED")}
    assert {"hello_world", template["name"]} <= approved and paused["name"] not in approved, approved
    assert [t["name"] for t in await desk.templates(status="PAUSED")] == [paused["name"]]


async def test_a_template_is_checked_against_its_parameters_and_its_status_follows_metas_webhook(
    desk: Desk,
) -> None:
    guest = await desk.guest_writes("When is my room ready?")
    template = await create_template(desk, "UTILITY", "Hello {{1}}, room {{2}} is ready.")
    await until(lambda: _listed(desk, template["name"], "APPROVED"))
    name, language = template["name"], {"code": "en_US"}

    wrong = {"name": name, "language": language, "components": body_params("Ana")}
    body = problem(await desk.send(guest.conversation_id, "template", wrong), 400, "TEMPLATE_PARAMS_MISMATCH")
    assert body["detail"], body
    right = {"name": name, "language": language, "components": body_params("Ana", "214")}
    message = await desk.accepted(guest.conversation_id, "template", right)
    await desk.status_event(message["id"], "SENT")
    received = await desk.sent_once(message["id"])
    assert received["request"] == request_of(message["id"], {"to": str(guest.wa_id)}, "template", right)

    updated = await desk.sim("PATCH", f"/templates/{template['id']}", json={"status": "PAUSED"})
    assert [w["delivered"] for w in updated["webhooks"]] == [True], updated["webhooks"]
    await until(lambda: _listed(desk, name, "PAUSED"))
    refused = problem(await desk.send(guest.conversation_id, "template", right), 422, "TEMPLATE_NOT_APPROVED")
    assert "PAUSED" in refused["detail"], refused
    assert len(await desk.sends_of(message["id"])) == 1 and len(await desk.sent()) == 1


async def test_a_marketing_template_leaves_through_the_marketing_messages_api(desk: Desk) -> None:
    guest = await desk.guest_writes("Any offers this weekend?")
    template = await create_template(desk, "MARKETING", "{{1}}, enjoy 20% off the spa in room {{2}}!")
    await until(lambda: _listed(desk, template["name"], "APPROVED"))
    content = {"name": template["name"], "language": {"code": "en_US"}, "components": body_params("Ana", "214")}
    message = await desk.accepted(guest.conversation_id, "template", content)
    await desk.status_event(message["id"], "READ")
    received = await desk.sent_once(message["id"])
    assert received["endpoint"] == "marketing_messages" and received["templateCategory"] == "MARKETING", received
    shown = await desk.message(guest.conversation_id, message["id"])
    assert shown["category"] == "marketing", shown


async def _listed(desk: Desk, name: str, status: str) -> bool:
    """The template is listed with that status; a sync is asked for while it is not (Meta's webhooks announce only
    changes of templates Eva already has)."""
    found = [t for t in await desk.templates(name=name) if t["name"] == name]
    if found and found[0]["status"] == status:
        return True
    if not found:
        await desk.http.post(f"{desk.stack.gateway}/api/templates/sync", headers=desk.auth)
    return False
