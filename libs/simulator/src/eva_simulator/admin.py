"""The simulator's control API under ``/_sim`` (camelCase JSON), plus ``/healthz`` and ``/readyz``.

This is how tests and operators play the guest's side (``guest-messages``, ``windows``, ``echoes``), inspect
what the business sent (``sent-messages``, ``read-receipts``, ``throughput``), watch webhook retries
(``webhook-attempts``) and make the fake Graph API misbehave (``faults``, ``status-rules``, ``config``,
``numbers/{id}/expire-token``).
"""

import dataclasses
import logging
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from eva_simulator import media, payloads
from eva_simulator.runtime import Simulator, SimulatorDep
from eva_simulator.signing import meta_body
from eva_simulator.state import (
    ALL_NUMBERS,
    AsyncFailure,
    BusinessNumber,
    Fault,
    FaultKind,
    StatusRule,
    ThroughputLog,
)
from eva_simulator.webhooks import MAX_PAYLOAD_BYTES, DeliveryResult, RetryPolicy, verify_callback

logger = logging.getLogger("eva_simulator.admin")

router = APIRouter(prefix="/_sim", tags=["simulator"])
health_router = APIRouter(tags=["health"])

MAX_DUPLICATES = 100


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NumberIn(CamelModel):
    """Register a number, or update the given fields of a registered one."""

    phone_number_id: str = Field(min_length=1)
    waba_id: str | None = None
    display_phone_number: str | None = None
    access_token: str | None = Field(default=None, repr=False)
    app_secret: str | None = Field(default=None, repr=False)
    webhook_url: str | None = None
    coexistence: bool | None = None
    throughput_mps: int | None = Field(default=None, ge=1)


class RetryIn(CamelModel):
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    initial_delay: float | None = Field(default=None, ge=0)
    factor: float | None = Field(default=None, ge=1)
    max_delay: float | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)

    def apply(self, policy: RetryPolicy) -> RetryPolicy:
        changes = {key: value for key, value in self.model_dump().items() if value is not None}
        return dataclasses.replace(policy, **changes)


class GuestMessageIn(CamelModel):
    """A guest writes to a business number: either ``text`` or ``type`` + ``content``. The guest is ``from``
    (a phone number), ``userId`` (a BSUID), or both (reference §3.0, §12)."""

    phone_number_id: str
    from_: str | None = Field(default=None, alias="from", min_length=1)
    user_id: str | None = Field(default=None, pattern=r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]+$")
    name: str = "WhatsApp Guest"
    text: str | None = None
    type: str | None = None
    content: dict[str, Any] | None = None
    timestamp: int | Annotated[str, Field(pattern=r"^\d+$")] | None = None
    wamid: str | None = None
    context: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    deliveries: int = Field(default=1, ge=1, le=MAX_DUPLICATES)
    retry: RetryIn | None = None

    @model_validator(mode="after")
    def _one_kind_of_content(self) -> "GuestMessageIn":
        if (self.text is None) == (self.type is None):
            raise ValueError("give either 'text' or 'type' (with 'content')")
        if self.from_ is None and self.user_id is None:
            raise ValueError("give 'from' (a phone number) or 'userId' (a BSUID)")
        return self


class DeliveryIn(CamelModel):
    """Post an arbitrary delivery: a ``payload`` (serialized like Meta) or a verbatim ``rawBody``."""

    payload: dict[str, Any] | None = None
    raw_body: str | None = None
    phone_number_id: str | None = None
    url: str | None = None
    app_secret: str | None = Field(default=None, repr=False)
    signature: str | None = None
    unsigned: bool = False
    deliveries: int = Field(default=1, ge=1, le=MAX_DUPLICATES)
    retry: RetryIn | None = None

    @model_validator(mode="after")
    def _one_body(self) -> "DeliveryIn":
        if (self.payload is None) == (self.raw_body is None):
            raise ValueError("give either 'payload' or 'rawBody'")
        return self


class FaultIn(CamelModel):
    """Make the next ``times`` sends of a number (``*``: any number) fail with Meta error ``code`` (kind
    ``error``), or accept them and answer only after ``delaySeconds`` (kind ``slow_accept``)."""

    phone_number_id: str = ALL_NUMBERS
    kind: FaultKind = "error"
    code: int | None = None
    times: int = Field(default=1, ge=1)
    details: str | None = None
    http_status: int | None = Field(default=None, ge=400, le=599)
    delay_seconds: float = Field(default=30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _code_for_errors(self) -> "FaultIn":
        if self.kind == "error" and self.code is None:
            raise ValueError("a fault of kind 'error' needs a 'code'")
        return self


StatusName = Literal["sent", "delivered", "read", "played", "failed"]


class PairRateIn(CamelModel):
    burst: int | None = Field(default=None, ge=1)
    per_seconds: float | None = Field(default=None, gt=0)


class ConfigIn(CamelModel):
    auto_statuses: bool | None = None
    status_sequence: list[StatusName] | None = None
    status_delays: list[Annotated[float, Field(ge=0)]] | None = None
    window_enforcement: Literal["off", "async", "sync"] | None = None
    throughput_enforcement: bool | None = None
    pair_rate_enforcement: bool | None = None
    pair_rate: PairRateIn | None = None
    retry: RetryIn | None = None


class WindowIn(CamelModel):
    """The guest ``waId`` (or BSUID ``userId``) last wrote to the number at ``at`` (default: now)."""

    phone_number_id: str
    wa_id: str | None = None
    user_id: str | None = None
    at: float | None = None

    @model_validator(mode="after")
    def _one_guest(self) -> "WindowIn":
        if (self.wa_id is None) == (self.user_id is None):
            raise ValueError("give either 'waId' or 'userId'")
        return self


class FailWithIn(CamelModel):
    code: int
    title: str | None = None
    details: str | None = None


class StatusRuleIn(CamelModel):
    """Change the status webhooks of the next ``times`` sends of a number (``*``: any) to ``to`` (any)."""

    phone_number_id: str = ALL_NUMBERS
    to: str | None = None
    sequence: list[StatusName] | None = None
    fail_with: FailWithIn | None = None
    skip: list[StatusName] = Field(default_factory=list)
    duplicate: bool = False
    reorder: bool = False
    times: int = Field(default=1, ge=1)


class EchoIn(CamelModel):
    """The business wrote from the WhatsApp Business app (coexistence): ``text`` or ``type`` + ``content``."""

    phone_number_id: str
    to: str = Field(min_length=1)
    type: str = "text"
    text: str | None = None
    content: dict[str, Any] | None = None
    id: str | None = None
    timestamp: int | Annotated[str, Field(pattern=r"^\d+$")] | None = None
    retry: RetryIn | None = None

    @model_validator(mode="after")
    def _some_content(self) -> "EchoIn":
        if (self.text is None) == (self.content is None):
            raise ValueError("give either 'text' or 'content'")
        return self


class VerifyIn(CamelModel):
    """Run Meta's GET handshake against a number's webhook URL (or ``url``)."""

    verify_token: str
    phone_number_id: str | None = None
    url: str | None = None
    challenge: str | None = None
    mode: str = "subscribe"


# --- numbers -----------------------------------------------------------------------------------------


@router.post("/numbers")
async def upsert_number(body: NumberIn, sim: SimulatorDep) -> dict[str, Any]:
    existing = sim.state.get_number(body.phone_number_id)
    changes = body.model_dump(exclude_unset=True, exclude={"phone_number_id"})
    if existing is not None:
        number = dataclasses.replace(existing, **changes)
        if body.access_token is not None and body.access_token != existing.access_token:
            number.token_expired_at = None  # a new token heals an expired one
    else:
        missing = [
            name
            for name in ("waba_id", "display_phone_number", "access_token", "app_secret")
            if getattr(body, name) is None
        ]
        if missing:
            raise HTTPException(422, detail=f"new number needs: {', '.join(to_camel(name) for name in missing)}")
        number = BusinessNumber(phone_number_id=body.phone_number_id, **changes)
    sim.state.upsert_number(number)
    logger.info(
        "number registered",
        extra={
            "fields": {
                "event": "number_registered",
                "phoneNumberId": number.phone_number_id,
                "created": existing is None,
            }
        },
    )
    return number.public()


@router.post("/numbers/{phone_number_id}/expire-token")
async def expire_token(phone_number_id: str, sim: SimulatorDep) -> dict[str, Any]:
    """The number's current access token expires now: Graph calls with it answer 190/463 until the number is
    registered again with a new ``accessToken``."""
    number = _number_or_404(sim, phone_number_id)
    number.token_expired_at = sim.state.clock()
    return number.public()


@router.get("/numbers")
async def list_numbers(sim: SimulatorDep) -> dict[str, Any]:
    return {"items": [number.public() for number in sim.state.numbers.values()]}


@router.delete("/numbers/{phone_number_id}")
async def delete_number(phone_number_id: str, sim: SimulatorDep) -> dict[str, Any]:
    if sim.state.numbers.pop(phone_number_id, None) is None:
        raise HTTPException(404, detail="unknown phoneNumberId")
    return {"deleted": True}


def _number_or_404(sim: Simulator, phone_number_id: str) -> BusinessNumber:
    number = sim.state.get_number(phone_number_id)
    if number is None:
        raise HTTPException(404, detail=f"unknown phoneNumberId {phone_number_id}")
    return number


# --- guest side --------------------------------------------------------------------------------------


def _deliveries_json(results: list[DeliveryResult]) -> dict[str, Any]:
    return {
        "delivered": all(result.delivered for result in results),
        "attempts": [
            {"delivery": index, **attempt.to_json()}
            for index, result in enumerate(results, start=1)
            for attempt in result.attempts
        ],
        "deliveries": [result.to_json() for result in results],
    }


async def _deliver_times(
    sim: Simulator,
    url: str,
    raw: bytes,
    *,
    times: int,
    app_secret: str | None,
    kind: str,
    phone_number_id: str | None,
    retry: RetryIn | None,
    signature: str | None = None,
) -> list[DeliveryResult]:
    """Deliver the same bytes ``times`` times, one after the other (each with its own retries)."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise HTTPException(413, detail=f"body of {len(raw)} bytes exceeds Meta's 3 MB webhook limit")
    policy = retry.apply(sim.sender.policy) if retry else None
    return [
        await sim.sender.deliver(
            url,
            raw,
            app_secret=app_secret,
            kind=kind,
            phone_number_id=phone_number_id,
            signature_override=signature,
            policy=policy,
        )
        for _ in range(times)
    ]


@router.post("/guest-messages")
async def guest_message(body: GuestMessageIn, sim: SimulatorDep) -> dict[str, Any]:
    number = _number_or_404(sim, body.phone_number_id)
    if not number.webhook_url:
        raise HTTPException(409, detail="number has no webhookUrl")
    wa_id = payloads.digits(body.from_) if body.from_ is not None else None  # Meta's "from"/"wa_id": digits
    if body.from_ is not None and not wa_id:
        raise HTTPException(422, detail="'from' must contain digits")
    message_type, content = ("text", {"body": body.text}) if body.text is not None else (body.type, body.content)
    if message_type is None:  # excluded by GuestMessageIn's validator; keeps the type checker informed
        raise HTTPException(422, detail="give either 'text' or 'type'")
    # {"mediaId": ...} names media stored in the simulator: Meta's object gets its id, mime_type and sha256
    content = media.guest_media_content(
        sim, phone_number_id=number.phone_number_id, message_type=message_type, content=content
    )
    message = payloads.inbound_message(
        message_type,
        content,
        from_=wa_id,
        from_user_id=body.user_id,
        wamid=body.wamid,
        timestamp=body.timestamp,
        context=body.context,
        referral=body.referral,
    )
    guest = payloads.contact(wa_id, body.name, user_id=body.user_id)
    payload = payloads.inbound_delivery(number, [message], contacts=[guest])
    # Meta opens the window when the guest writes, whether or not our webhook gets through. A past
    # ``timestamp`` lets tests simulate a guest who wrote long ago (window already closed). Sends may name
    # the guest by phone number or by BSUID, so both keys open.
    for key in (wa_id, body.user_id):
        if key:
            sim.state.touch_window(number.phone_number_id, key, at=float(message["timestamp"]))
    results = await _deliver_times(
        sim,
        number.webhook_url,
        meta_body(payload),
        times=body.deliveries,
        app_secret=number.app_secret,
        kind="messages",
        phone_number_id=number.phone_number_id,
        retry=body.retry,
    )
    return {"wamid": message["id"], **_deliveries_json(results), "payload": payload}


@router.post("/echoes")
async def echo(body: EchoIn, sim: SimulatorDep) -> dict[str, Any]:
    """A coexistence echo (reference §12): what the business sent from the WhatsApp Business app, delivered as
    ``smb_message_echoes``. It does not open or extend the customer-service window."""
    number = _number_or_404(sim, body.phone_number_id)
    if not number.webhook_url:
        raise HTTPException(409, detail="number has no webhookUrl")
    to = payloads.digits(body.to) if payloads.digits(body.to) and not body.to[:2].isalpha() else body.to
    content = {"body": body.text} if body.text is not None else dict(body.content or {})
    message = payloads.echo_message(
        body.type,
        content,
        from_=payloads.digits(number.display_phone_number),
        to=to,
        wamid=body.id,
        timestamp=body.timestamp,
    )
    payload = payloads.echo_delivery(number, [message])
    results = await _deliver_times(
        sim,
        number.webhook_url,
        meta_body(payload),
        times=1,
        app_secret=number.app_secret,
        kind="echo",
        phone_number_id=number.phone_number_id,
        retry=body.retry,
    )
    return {"wamid": message["id"], **_deliveries_json(results), "payload": payload}


@router.post("/windows")
async def open_window(body: WindowIn, sim: SimulatorDep) -> dict[str, Any]:
    """Open (or, with a past ``at``, close) the 24-hour window of a guest as if they had written at ``at``."""
    _number_or_404(sim, body.phone_number_id)
    key = body.wa_id if body.wa_id is not None else body.user_id
    if body.wa_id is not None:
        key = payloads.digits(body.wa_id)
    if not key:
        raise HTTPException(422, detail="'waId' must contain digits")
    at = body.at if body.at is not None else sim.state.clock()
    sim.state.set_window(body.phone_number_id, key, at)
    return {
        "phoneNumberId": body.phone_number_id,
        "recipient": key,
        "lastInboundAt": at,
        "open": sim.state.window_open(body.phone_number_id, key),
    }


@router.get("/throughput")
async def throughput(
    sim: SimulatorDep, phone_number_id: Annotated[str, Query(alias="phoneNumberId")]
) -> dict[str, Any]:
    """Requests on the number's send endpoints: received, accepted and refused (130429), per calendar second
    and at most in any sliding second."""
    number = _number_or_404(sim, phone_number_id)
    log = sim.state.throughput.get(phone_number_id) or ThroughputLog()
    return {"phoneNumberId": phone_number_id, "limitMps": number.limit_mps, **log.stats()}


@router.post("/deliveries")
async def raw_delivery(body: DeliveryIn, sim: SimulatorDep) -> dict[str, Any]:
    pnid = body.phone_number_id
    if pnid is None and body.payload is not None:
        found = payloads.phone_number_ids_in(body.payload)
        pnid = found[0] if found else None
    number = sim.state.get_number(pnid) if pnid is not None else None
    url = body.url or (number.webhook_url if number else None)
    if not url:
        raise HTTPException(422, detail="no 'url' given and no registered number with a webhookUrl")
    app_secret = body.app_secret or (number.app_secret if number else None)
    if body.unsigned:
        app_secret = None
    elif app_secret is None and body.signature is None:
        raise HTTPException(422, detail="no app secret to sign with: give 'appSecret', 'signature' or 'unsigned'")
    raw = meta_body(body.payload) if body.payload is not None else (body.raw_body or "").encode("utf-8")
    results = await _deliver_times(
        sim,
        url,
        raw,
        times=body.deliveries,
        app_secret=app_secret,
        kind="raw",
        phone_number_id=pnid,
        retry=body.retry,
        signature=body.signature,
    )
    return _deliveries_json(results)


@router.post("/verify-webhook")
async def verify_webhook(body: VerifyIn, sim: SimulatorDep) -> dict[str, Any]:
    url = body.url
    if url is None and body.phone_number_id is not None:
        url = _number_or_404(sim, body.phone_number_id).webhook_url
    if not url:
        raise HTTPException(422, detail="give 'url' or a 'phoneNumberId' with a webhookUrl")
    challenge = body.challenge if body.challenge is not None else str(secrets.randbelow(10**10))
    result = await verify_callback(sim.http, url, verify_token=body.verify_token, challenge=challenge, mode=body.mode)
    return result.to_json()


# --- what the business did -----------------------------------------------------------------------------


@router.get("/sent-messages")
async def sent_messages(
    sim: SimulatorDep,
    phone_number_id: Annotated[str | None, Query(alias="phoneNumberId")] = None,
    to: str | None = None,
) -> dict[str, Any]:
    return {"items": [message.to_json() for message in sim.state.sent_messages(phone_number_id, to)]}


@router.get("/read-receipts")
async def read_receipts(
    sim: SimulatorDep, phone_number_id: Annotated[str | None, Query(alias="phoneNumberId")] = None
) -> dict[str, Any]:
    return {
        "items": [
            receipt.to_json()
            for receipt in sim.state.read_receipts
            if phone_number_id is None or receipt.phone_number_id == phone_number_id
        ]
    }


@router.get("/webhook-attempts")
async def webhook_attempts(
    sim: SimulatorDep,
    phone_number_id: Annotated[str | None, Query(alias="phoneNumberId")] = None,
    delivery_id: Annotated[str | None, Query(alias="deliveryId")] = None,
    kind: str | None = None,
) -> dict[str, Any]:
    found = sim.sender.log.query(delivery_id=delivery_id, phone_number_id=phone_number_id, kind=kind)
    return {"items": [attempt.to_json() for attempt in found]}


# --- misbehaviour and configuration -------------------------------------------------------------------


@router.post("/faults")
async def add_fault(body: FaultIn, sim: SimulatorDep) -> dict[str, Any]:
    fault = sim.state.add_fault(
        Fault(
            phone_number_id=body.phone_number_id,
            code=body.code,
            remaining=body.times,
            details=body.details,
            http_status=body.http_status,
            kind=body.kind,
            delay_seconds=body.delay_seconds if body.kind == "slow_accept" else 0.0,
        )
    )
    return fault.to_json()


@router.get("/faults")
async def list_faults(sim: SimulatorDep) -> dict[str, Any]:
    return {"items": [fault.to_json() for fault in sim.state.faults]}


@router.delete("/faults")
async def clear_faults(sim: SimulatorDep) -> dict[str, Any]:
    sim.state.faults.clear()
    return {"items": []}


@router.post("/status-rules")
async def add_status_rule(body: StatusRuleIn, sim: SimulatorDep) -> dict[str, Any]:
    fail = body.fail_with
    rule = StatusRule(
        phone_number_id=body.phone_number_id,
        remaining=body.times,
        to=body.to,
        sequence=list(body.sequence) if body.sequence is not None else None,
        fail_with=AsyncFailure(code=fail.code, title=fail.title, details=fail.details) if fail else None,
        skip=list(body.skip),
        duplicate=body.duplicate,
        reorder=body.reorder,
    )
    sim.state.status_rules.append(rule)
    return rule.to_json()


@router.get("/status-rules")
async def list_status_rules(sim: SimulatorDep) -> dict[str, Any]:
    return {"items": [rule.to_json() for rule in sim.state.status_rules]}


@router.delete("/status-rules")
async def clear_status_rules(sim: SimulatorDep) -> dict[str, Any]:
    sim.state.status_rules.clear()
    return {"items": []}


def _config_json(sim: Simulator) -> dict[str, Any]:
    policy = sim.sender.policy
    return {
        **sim.state.config.to_json(),
        "retry": {
            "maxAttempts": policy.max_attempts,
            "initialDelay": policy.initial_delay,
            "factor": policy.factor,
            "maxDelay": policy.max_delay,
            "timeout": policy.timeout,
        },
    }


@router.get("/config")
async def get_config(sim: SimulatorDep) -> dict[str, Any]:
    return _config_json(sim)


@router.post("/config")
async def update_config(body: ConfigIn, sim: SimulatorDep) -> dict[str, Any]:
    config = sim.state.config
    if body.auto_statuses is not None:
        config.auto_statuses = body.auto_statuses
    if body.status_sequence is not None:
        config.status_sequence = list(body.status_sequence)
    if body.status_delays is not None:
        config.status_delays = list(body.status_delays)
    if body.window_enforcement is not None:
        config.window_enforcement = body.window_enforcement
    if body.throughput_enforcement is not None:
        config.throughput_enforcement = body.throughput_enforcement
    if body.pair_rate_enforcement is not None:
        config.pair_rate_enforcement = body.pair_rate_enforcement
    if body.pair_rate is not None:
        if body.pair_rate.burst is not None:
            config.pair_rate_burst = body.pair_rate.burst
        if body.pair_rate.per_seconds is not None:
            config.pair_rate_per_seconds = body.pair_rate.per_seconds
        sim.state.pair_buckets.clear()
    if body.retry is not None:
        sim.sender.policy = body.retry.apply(sim.sender.policy)
    return _config_json(sim)


@router.post("/reset")
async def reset(
    sim: SimulatorDep,
    numbers: Annotated[bool, Query(description="also forget registered numbers (and templates)")] = False,
    templates: Annotated[bool, Query(description="templates back to the start-up set")] = False,
) -> dict[str, Any]:
    """Forget traffic, attempts, faults, status rules, windows, throughput and pair-rate counts and run-time
    config (and numbers with ``?numbers=true``, templates with ``?templates=true``)."""
    await sim.statuses.aclose()
    sim.state.reset(numbers=numbers, templates=templates)
    sim.sender.log.clear()
    sim.sender.policy = sim.settings.retry_policy()
    return {"reset": True, "numbers": len(sim.state.numbers)}


# --- health ------------------------------------------------------------------------------------------


@health_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/readyz")
async def readyz(sim: SimulatorDep) -> dict[str, Any]:
    return {"status": "ready", "numbers": len(sim.state.numbers)}
