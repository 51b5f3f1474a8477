"""Message templates: the per-WABA registry, its control API and Graph's listing (reference §5.4, §12).

- ``GET /{version}/{waba_id}/message_templates?limit=&after=`` with the token of any number of that WABA →
  ``{"data": [...], "paging": {"cursors": {"before", "after"}, "next"?}}`` (25 per page by default, 100 at most)
- ``POST /_sim/templates`` upserts one (by WABA, name and language), ``GET /_sim/templates?wabaId=`` lists them,
  ``PATCH /_sim/templates/{id}`` changes status, category or quality and delivers Meta's template webhooks
  (``message_template_status_update``, ``template_category_update``, ``message_template_quality_update``),
  signed with each number's app secret, to the webhook URLs of the WABA's numbers.
"""

import base64
import binascii
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from eva_simulator import payloads
from eva_simulator.errors import GraphError, invalid_parameter, unknown_object
from eva_simulator.graph import VERSION_PATTERN, authenticate, error_response, graph_response
from eva_simulator.runtime import Simulator, SimulatorDep
from eva_simulator.settings import TemplateCategory, TemplateQuality, TemplateSeed, TemplateStatus
from eva_simulator.state import Template

logger = logging.getLogger("eva_simulator.templates")

graph_router = APIRouter(tags=["graph templates"])
control_router = APIRouter(prefix="/_sim", tags=["simulator"])

DEFAULT_PAGE = 25
MAX_PAGE = 100


# --- Graph API -------------------------------------------------------------------------------------------


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"position:{position}".encode()).decode("ascii")


def _position(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid_parameter(f"Param after is not a valid cursor: {cursor}") from None
    prefix, _, number = text.partition(":")
    if prefix != "position" or not number.isdigit():
        raise invalid_parameter(f"Param after is not a valid cursor: {cursor}")
    return int(number)


@graph_router.get("/{version}/{waba_id}/message_templates")
async def list_message_templates(version: str, waba_id: str, request: Request, sim: SimulatorDep) -> Response:
    shown = version if VERSION_PATTERN.match(version) else "v21.0"
    try:
        if not VERSION_PATTERN.match(version):
            raise GraphError(
                http_status=400, code=2500, message=f"Unknown path components: /{version}/{waba_id}/message_templates"
            )
        token = authenticate(request, sim)
        if not any(number.waba_id == waba_id and number.access_token == token for number in sim.state.numbers.values()):
            raise unknown_object(waba_id, method="get")
        limit_text = request.query_params.get("limit", str(DEFAULT_PAGE))
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise invalid_parameter("Param limit must be a positive integer.")
        limit = min(int(limit_text), MAX_PAGE)
        after = request.query_params.get("after")
        start = _position(after) + 1 if after else 0
    except GraphError as error:
        return error_response(error, version=shown)
    templates = sim.state.waba_templates(waba_id)
    page = templates[start : start + limit]
    body: dict[str, Any] = {"data": [template.graph_json() for template in page]}
    if page:
        last = start + len(page) - 1
        paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(last)}}
        if last + 1 < len(templates):
            paging["next"] = str(request.url.include_query_params(limit=limit, after=_cursor(last)))
        body["paging"] = paging
    return graph_response(body, version=shown)


# --- control API ----------------------------------------------------------------------------------------


class TemplatePatch(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    status: TemplateStatus | None = None
    category: TemplateCategory | None = None
    quality: TemplateQuality | None = None
    rejected_reason: str | None = None
    webhook: bool = True


@control_router.post("/templates")
async def upsert_template(body: TemplateSeed, sim: SimulatorDep) -> dict[str, Any]:
    existing = sim.state.find_template(body.waba_id, body.name, body.language)
    template = sim.state.upsert_template(body.to_template(existing.template_id if existing is not None else None))
    return template.to_json()


@control_router.get("/templates")
async def list_templates(
    sim: SimulatorDep, waba_id: Annotated[str | None, Query(alias="wabaId")] = None
) -> dict[str, Any]:
    found = sim.state.templates.values() if waba_id is None else sim.state.waba_templates(waba_id)
    return {"items": [template.to_json() for template in found]}


def template_changes(template: Template, patch: TemplatePatch) -> list[tuple[str, dict[str, Any]]]:
    """Apply ``patch`` and return the (field, value) of each webhook Meta would send for it: a status event
    whenever ``status`` is given, category and quality updates when they change."""
    ids = {
        "message_template_id": int(template.template_id),
        "message_template_name": template.name,
        "message_template_language": template.language,
    }
    changes: list[tuple[str, dict[str, Any]]] = []
    if patch.rejected_reason is not None:
        template.rejected_reason = patch.rejected_reason
    if patch.category is not None and patch.category != template.category:
        changes.append(
            (
                "template_category_update",
                {**ids, "previous_category": template.category, "new_category": patch.category},
            )
        )
        template.category = patch.category
    if patch.status is not None:
        template.status = patch.status
        changes.insert(
            0,
            (
                "message_template_status_update",
                {
                    "event": patch.status,
                    **ids,
                    "reason": template.rejected_reason or "NONE",
                    "message_template_category": template.category,
                },
            ),
        )
    if patch.quality is not None and patch.quality != template.quality:
        changes.append(
            (
                "message_template_quality_update",
                {"previous_quality_score": template.quality, "new_quality_score": patch.quality, **ids},
            )
        )
        template.quality = patch.quality
    return changes


async def deliver_template_webhooks(
    sim: Simulator, template: Template, changes: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Each change to every distinct webhook URL of the WABA's numbers, signed with that number's secret."""
    targets: dict[tuple[str, str], str] = {}
    for number in sim.state.numbers.values():
        if number.waba_id == template.waba_id and number.webhook_url:
            targets.setdefault((number.webhook_url, number.app_secret), number.phone_number_id)
    results: list[dict[str, Any]] = []
    for field, value in changes:
        payload = payloads.template_delivery(template.waba_id, field, value, at=sim.state.clock())
        for (url, secret), phone_number_id in targets.items():
            result = await sim.sender.deliver_payload(
                url, payload, app_secret=secret, kind="template", phone_number_id=phone_number_id
            )
            results.append({"field": field, "url": url, **result.to_json(), "payload": payload})
    return results


@control_router.patch("/templates/{template_id}")
async def update_template(template_id: str, body: TemplatePatch, sim: SimulatorDep) -> dict[str, Any]:
    template = sim.state.templates.get(template_id)
    if template is None:
        raise HTTPException(404, detail=f"unknown template {template_id}")
    changes = template_changes(template, body)
    webhooks = await deliver_template_webhooks(sim, template, changes) if body.webhook else []
    logger.info(
        "template updated",
        extra={"fields": {"event": "template_updated", "templateId": template_id, "webhooks": len(webhooks)}},
    )
    return {**template.to_json(), "webhooks": webhooks}
