"""The fake Graph API: ``POST /v21.0/{phone_number_id}/messages`` as Meta answers it (reference §5, §10).

Order of checks, as on the Graph API: path/version → access token (missing: 190/HTTP 401, unknown:
190/HTTP 400, expired: 190/463) → object lookup (unknown number or a token of another number: 100/33) →
throughput (130429, every request counts) → body validation (code 100 / WhatsApp codes) → what the body
names (templates 132xxx, BSUID 131062, media ids 100) → injected faults → customer-service window (sync
131047) → pair rate (131056) → accept (then statuses, or a ``failed`` status: async 131047, 131053).
``POST /{phone_number_id}/marketing_messages`` takes the same template bodies.
Every response body is serialized like Meta's (compact JSON, ``\\/`` escaped).
"""

import asyncio
import logging
import re
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response

from eva_simulator import payloads
from eva_simulator.errors import (
    GraphError,
    expired_token,
    invalid_parameter,
    invalid_token,
    missing_token,
    unknown_object,
    whatsapp_error,
)
from eva_simulator.runtime import Simulator, SimulatorDep
from eva_simulator.send_checks import check_media, check_template
from eva_simulator.signing import meta_body
from eva_simulator.state import AsyncFailure, ReadReceipt, SentMessage, Template
from eva_simulator.statuses import plan_statuses
from eva_simulator.validation import MessageSend, ReadReceiptSend, parse_send

logger = logging.getLogger("eva_simulator.graph")

router = APIRouter(tags=["graph"])

VERSION_PATTERN = re.compile(r"^v\d+\.\d+$")
AUTH_SCHEMES = ("bearer", "oauth")


def graph_response(
    content: Any, *, status_code: int = 200, version: str = "v21.0", www_authenticate: str | None = None
) -> Response:
    """A Graph API response: Meta's serialization plus the ``x-fb-*`` headers real responses carry."""
    headers = {
        "facebook-api-version": version,
        "x-fb-request-id": secrets.token_urlsafe(12),
        "x-fb-trace-id": secrets.token_urlsafe(8),
    }
    if www_authenticate is not None:
        headers["www-authenticate"] = www_authenticate
    return Response(content=meta_body(content), status_code=status_code, media_type="application/json", headers=headers)


def error_response(error: GraphError, *, version: str = "v21.0") -> Response:
    www_authenticate = error.www_authenticate
    if www_authenticate is None and error.code == 100:
        www_authenticate = f'OAuth "Facebook Platform" "invalid_request" "{error.message}"'
    return graph_response(
        error.body(), status_code=error.http_status, version=version, www_authenticate=www_authenticate
    )


def request_token(request: Request) -> str | None:
    """The access token from ``Authorization: Bearer|OAuth <token>`` or ``?access_token=``.

    ``None`` means no token at all; a malformed header yields ``""`` (an invalid token)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in AUTH_SCHEMES:
            return ""
        return value.strip()
    return request.query_params.get("access_token")


def authenticate(request: Request, sim: Simulator) -> str:
    """The request's access token, after Graph's checks: missing (190, HTTP 401), unknown (190) or expired
    through ``/_sim/numbers/{id}/expire-token`` (190, subcode 463)."""
    token = request_token(request)
    if token is None:
        raise missing_token()
    if not token or not sim.state.token_known(token):
        raise invalid_token()
    expired_at = sim.state.token_expired_at(token)
    if expired_at is not None:
        raise expired_token(expired_at=expired_at, now=sim.state.clock())
    return token


@router.post("/{version}/{phone_number_id}/messages")
async def send_message(version: str, phone_number_id: str, request: Request, sim: SimulatorDep) -> Response:
    return await _send_endpoint(version, phone_number_id, request, sim, endpoint="messages")


@router.post("/{version}/{phone_number_id}/marketing_messages")
async def send_marketing_message(version: str, phone_number_id: str, request: Request, sim: SimulatorDep) -> Response:
    """The Marketing Messages API: template sends with the same body, validation and answer (reference §12)."""
    return await _send_endpoint(version, phone_number_id, request, sim, endpoint="marketing_messages")


async def _send_endpoint(
    version: str, phone_number_id: str, request: Request, sim: Simulator, *, endpoint: str
) -> Response:
    shown_version = version if VERSION_PATTERN.match(version) else "v21.0"
    try:
        content, delay = await _send_message(version, phone_number_id, request, sim, endpoint=endpoint)
    except GraphError as error:
        logger.info(
            "graph error",
            extra={
                "fields": {
                    "event": "graph_error",
                    "phoneNumberId": phone_number_id,
                    "endpoint": endpoint,
                    "code": error.code,
                    "httpStatus": error.http_status,
                }
            },
        )
        return error_response(error, version=shown_version)
    if delay > 0:  # a slow_accept fault: the send happened, its answer comes late (or never reaches the client)
        await asyncio.sleep(delay)
    return graph_response(content, version=shown_version)


async def _send_message(
    version: str, phone_number_id: str, request: Request, sim: Simulator, *, endpoint: str
) -> tuple[dict[str, Any], float]:
    if not VERSION_PATTERN.match(version):
        raise GraphError(
            http_status=400, code=2500, message=f"Unknown path components: /{version}/{phone_number_id}/{endpoint}"
        )
    token = authenticate(request, sim)
    number = sim.state.get_number(phone_number_id)
    if number is None or number.access_token != token:
        raise unknown_object(phone_number_id)
    # reference §7: every request on the number's send endpoints counts against its throughput
    admitted, received_at = sim.state.admit(phone_number_id)
    if not admitted:
        raise whatsapp_error(130429)

    try:
        body = await request.json()
    except ValueError:
        raise invalid_parameter("Request body must be valid JSON.") from None
    parsed = parse_send(body, business_display_number=number.display_phone_number)
    if endpoint == "marketing_messages" and (isinstance(parsed, ReadReceiptSend) or parsed.type != "template"):
        raise invalid_parameter("Param type must be one of {TEMPLATE}.")

    if isinstance(parsed, ReadReceiptSend):
        return _read_receipt(phone_number_id, parsed, sim), 0.0

    template = check_template(sim.state, number, parsed) if parsed.type == "template" else None
    failure = check_media(sim.state, phone_number_id, parsed)

    delay = 0.0
    fault = sim.state.take_fault(phone_number_id)
    if fault is not None and fault.kind == "slow_accept":
        delay = fault.delay_seconds
    elif fault is not None:
        raise whatsapp_error(fault.code or 131000, details=fault.details, http_status=fault.http_status)

    window_open = sim.state.window_open(phone_number_id, parsed.recipient)
    out_of_window = template is None and not window_open  # templates go through a closed window (reference §8)
    if out_of_window and sim.state.config.window_enforcement == "sync":
        raise whatsapp_error(131047)
    if parsed.type != "reaction" and not sim.state.take_pair_token(phone_number_id, parsed.recipient):
        raise whatsapp_error(131056)
    if out_of_window and sim.state.config.window_enforcement == "async":
        failure = AsyncFailure(code=131047)
    content = _accept(
        phone_number_id,
        parsed,
        sim,
        window_open=window_open,
        endpoint=endpoint,
        template=template,
        failure=failure,
        received_at=received_at,
    )
    return content, delay


def _read_receipt(phone_number_id: str, parsed: ReadReceiptSend, sim: Simulator) -> dict[str, Any]:
    sim.state.record_read_receipt(
        ReadReceipt(
            phone_number_id=phone_number_id,
            message_id=parsed.message_id,
            typing_indicator=parsed.typing_indicator,
            at=sim.state.clock(),
        )
    )
    return {"success": True}


def _accept(
    phone_number_id: str,
    parsed: MessageSend,
    sim: Simulator,
    *,
    window_open: bool,
    endpoint: str,
    template: Template | None,
    failure: AsyncFailure | None,
    received_at: float,
) -> dict[str, Any]:
    number = sim.state.numbers[phone_number_id]
    message = sim.state.record_sent(
        SentMessage(
            wamid=payloads.new_wamid(parsed.wa_id, outbound=True),
            phone_number_id=phone_number_id,
            to=parsed.to,
            wa_id=parsed.wa_id,
            user_id=parsed.user_id,
            type=parsed.type,
            request=parsed.body,
            accepted_at=sim.state.clock(),
            window_open=window_open,
            endpoint=endpoint,
            template_category=template.category if template is not None else None,
            async_failure=failure,
            received_at=received_at,
        )
    )
    logger.info(
        "message accepted",
        extra={
            "fields": {
                "event": "graph_send",
                "phoneNumberId": phone_number_id,
                "endpoint": endpoint,
                "type": parsed.type,
                "wamid": message.wamid,
                "waId": parsed.wa_id,
                "asyncFailure": failure.code if failure is not None else None,
            }
        },
    )
    rule = None
    if failure is None and parsed.type != "reaction":
        rule = sim.state.take_status_rule(message)
    plan = plan_statuses(message=message, config=sim.state.config, rule=rule)
    if not sim.state.config.auto_statuses:
        plan = [planned for planned in plan if planned.status == "failed"]  # failures are never optional
    sim.statuses.schedule(number=number, message=message, plan=plan)
    sent: dict[str, Any] = {"id": message.wamid}
    if parsed.type == "template":
        sent["message_status"] = "accepted"
    return {"messaging_product": "whatsapp", "contacts": [parsed.contact()], "messages": [sent]}
