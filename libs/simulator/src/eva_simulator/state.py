"""The simulator's in-memory world: business numbers, what they sent, customer-service windows, faults.

Everything runs on one event loop, so no locking is needed. Nothing here does I/O.
"""

import copy
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

CUSTOMER_SERVICE_WINDOW_SECONDS = 24 * 60 * 60
ALL_NUMBERS = "*"
DEFAULT_MPS = 80  # reference §7: per business number
COEXISTENCE_MPS = 20

WindowEnforcement = Literal["off", "async", "sync"]


@dataclass
class BusinessNumber:
    """A registered business phone number and where its webhooks go."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str
    app_secret: str
    webhook_url: str | None = None
    coexistence: bool = False  # also used in the WhatsApp Business app: 20 mps (reference §7, §12)
    throughput_mps: int | None = None  # overrides the default limit
    token_expired_at: float | None = None  # set by /_sim/numbers/{id}/expire-token

    @property
    def limit_mps(self) -> int:
        if self.throughput_mps is not None:
            return self.throughput_mps
        return COEXISTENCE_MPS if self.coexistence else DEFAULT_MPS

    def public(self) -> dict[str, Any]:
        """The admin view: never the access token or the app secret."""
        return {
            "phoneNumberId": self.phone_number_id,
            "wabaId": self.waba_id,
            "displayPhoneNumber": self.display_phone_number,
            "webhookUrl": self.webhook_url,
            "coexistence": self.coexistence,
            "throughputMps": self.limit_mps,
            "tokenExpired": self.token_expired_at is not None,
        }


@dataclass
class StatusRecord:
    """One status webhook the simulator emitted for a sent message."""

    status: str
    timestamp: str
    delivered: bool
    delivery_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "timestamp": self.timestamp,
            "delivered": self.delivered,
            "deliveryId": self.delivery_id,
        }


@dataclass(frozen=True)
class AsyncFailure:
    """Why an accepted send fails afterwards (a ``failed`` status instead of ``sent``)."""

    code: int
    details: str | None = None
    title: str | None = None


@dataclass
class SentMessage:
    """A message the business sent through ``POST /{phone_number_id}/messages`` or ``/marketing_messages``.

    ``wa_id`` is the recipient's digits for phone sends and ``""`` for BSUID sends (``user_id`` set)."""

    wamid: str
    phone_number_id: str
    to: str
    wa_id: str
    type: str
    request: dict[str, Any]
    accepted_at: float
    window_open: bool
    user_id: str | None = None
    endpoint: str = "messages"
    template_category: str | None = None  # the registry's category (e.g. "UTILITY") for templates
    async_failure: AsyncFailure | None = None
    received_at: float | None = None  # when the request came in (the time the throughput limit counts)
    statuses: list[StatusRecord] = field(default_factory=list)

    @property
    def recipient(self) -> str:
        """The key of the recipient: the wa_id, or the BSUID for BSUID sends."""
        return self.wa_id or self.user_id or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "wamid": self.wamid,
            "phoneNumberId": self.phone_number_id,
            "to": self.to,
            "waId": self.wa_id or None,
            "userId": self.user_id,
            "type": self.type,
            "endpoint": self.endpoint,
            "templateCategory": self.template_category,
            "request": self.request,
            "receivedAt": self.received_at,
            "acceptedAt": self.accepted_at,
            "windowOpen": self.window_open,
            "asyncFailure": None if self.async_failure is None else self.async_failure.code,
            "statuses": [record.to_json() for record in self.statuses],
        }


@dataclass
class ReadReceipt:
    """A ``{"status": "read", "message_id": ...}`` call the business made."""

    phone_number_id: str
    message_id: str
    typing_indicator: bool
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "phoneNumberId": self.phone_number_id,
            "messageId": self.message_id,
            "typingIndicator": self.typing_indicator,
            "at": self.at,
        }


FaultKind = Literal["error", "slow_accept"]


@dataclass
class Fault:
    """Make the next ``remaining`` sends of a number fail with Meta error ``code`` (kind ``error``), or
    accept them but answer only after ``delay_seconds`` (kind ``slow_accept``)."""

    phone_number_id: str
    code: int | None
    remaining: int
    details: str | None = None
    http_status: int | None = None
    kind: FaultKind = "error"
    delay_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "phoneNumberId": self.phone_number_id,
            "kind": self.kind,
            "code": self.code,
            "remaining": self.remaining,
            "details": self.details,
            "httpStatus": self.http_status,
            "delaySeconds": self.delay_seconds,
        }


@dataclass
class StatusRule:
    """Change the status webhooks of the next ``remaining`` sends of a number (``*``: any) to ``to`` (any if
    ``None``): another ``sequence``, a ``failed`` status after ``sent`` (``fail_with``), statuses skipped,
    every webhook delivered twice, or the statuses delivered in reverse order."""

    phone_number_id: str
    remaining: int
    to: str | None = None
    sequence: list[str] | None = None
    fail_with: AsyncFailure | None = None
    skip: list[str] = field(default_factory=list)
    duplicate: bool = False
    reorder: bool = False
    rule_id: str = field(default_factory=lambda: secrets.token_hex(6))

    def to_json(self) -> dict[str, Any]:
        fail = self.fail_with
        return {
            "id": self.rule_id,
            "phoneNumberId": self.phone_number_id,
            "to": self.to,
            "sequence": self.sequence,
            "failWith": None if fail is None else {"code": fail.code, "title": fail.title, "details": fail.details},
            "skip": list(self.skip),
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "remaining": self.remaining,
        }


@dataclass
class RuntimeConfig:
    """Behaviour switches that tests may flip at run time through ``POST /_sim/config``."""

    auto_statuses: bool = True
    status_sequence: list[str] = field(default_factory=lambda: ["sent", "delivered", "read"])
    status_delays: list[float] = field(default_factory=lambda: [0.2, 0.5, 1.0])
    window_enforcement: WindowEnforcement = "async"
    throughput_enforcement: bool = True
    pair_rate_enforcement: bool = True
    pair_rate_burst: int = 45  # reference §7: "up to 45 messages in a 6-second burst"
    pair_rate_per_seconds: float = 6.0  # "1 message every 6 seconds to the same WhatsApp user"

    def to_json(self) -> dict[str, Any]:
        return {
            "autoStatuses": self.auto_statuses,
            "statusSequence": list(self.status_sequence),
            "statusDelays": list(self.status_delays),
            "windowEnforcement": self.window_enforcement,
            "throughputEnforcement": self.throughput_enforcement,
            "pairRateEnforcement": self.pair_rate_enforcement,
            "pairRate": {"burst": self.pair_rate_burst, "perSeconds": self.pair_rate_per_seconds},
        }


@dataclass
class StoredMedia:
    """A media object as the Graph API keeps it: uploaded by the business or attached by a guest."""

    media_id: str
    phone_number_id: str
    mime_type: str
    data: bytes
    sha256: str  # base64 of the SHA-256 digest, as Meta shows it
    filename: str | None = None
    corrupt: bool = False  # fault switch: serve altered bytes (the sha256 no longer matches)

    def served_bytes(self) -> bytes:
        if not self.corrupt or not self.data:
            return self.data
        return bytes([self.data[0] ^ 0xFF]) + self.data[1:]


@dataclass
class Template:
    """A message template of a WABA, as ``GET /{waba_id}/message_templates`` lists it."""

    template_id: str
    waba_id: str
    name: str
    language: str
    category: str  # MARKETING | UTILITY | AUTHENTICATION
    components: list[dict[str, Any]]
    status: str = "APPROVED"
    parameter_format: str = "POSITIONAL"  # or NAMED
    quality: str = "GREEN"
    rejected_reason: str | None = None

    def graph_json(self) -> dict[str, Any]:
        """Meta's listing shape (key order as in Graph answers)."""
        result: dict[str, Any] = {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": copy.deepcopy(self.components),
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.template_id,
            "quality_score": {"score": self.quality},
        }
        if self.rejected_reason is not None:
            result["rejected_reason"] = self.rejected_reason
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.template_id,
            "wabaId": self.waba_id,
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "status": self.status,
            "parameterFormat": self.parameter_format,
            "quality": self.quality,
            "rejectedReason": self.rejected_reason,
            "components": copy.deepcopy(self.components),
        }


def new_template_id() -> str:
    """A numeric template id like Meta's (16 digits)."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


def hello_world(waba_id: str) -> Template:
    """Meta's sample template that every new WABA has."""
    return Template(
        template_id=new_template_id(),
        waba_id=waba_id,
        name="hello_world",
        language="en_US",
        category="UTILITY",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp "
                "message notification from the Cloud API, hosted by Meta.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
    )


@dataclass
class ThroughputLog:
    """Every request a number received on its send endpoints: (time, accepted)."""

    times: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=1_000_000))
    recent_accepted: deque[float] = field(default_factory=deque)  # accepted within the last second

    def admit(self, now: float, limit: int, *, enforce: bool) -> bool:
        """Record one request; ``False`` (refused, 130429) when ``limit`` were accepted in the last second."""
        while self.recent_accepted and self.recent_accepted[0] <= now - 1.0:
            self.recent_accepted.popleft()
        accepted = not enforce or len(self.recent_accepted) < limit
        self.times.append((now, accepted))
        if accepted:
            self.recent_accepted.append(now)
        return accepted

    def stats(self) -> dict[str, Any]:
        seconds: dict[int, list[int]] = {}
        for at, accepted in self.times:
            bucket = seconds.setdefault(int(at // 1), [0, 0, 0])
            bucket[0] += 1
            bucket[1 if accepted else 2] += 1
        received = [at for at, _ in self.times]
        accepted_times = [at for at, accepted in self.times if accepted]
        return {
            "received": len(received),
            "accepted": len(accepted_times),
            "rejected": len(received) - len(accepted_times),
            "perSecond": [
                {"second": second, "received": counts[0], "accepted": counts[1], "rejected": counts[2]}
                for second, counts in sorted(seconds.items())
            ],
            "maxReceivedInAnySecond": max_in_any_second(received),
            "maxAcceptedInAnySecond": max_in_any_second(accepted_times),
        }


def max_in_any_second(times: list[float]) -> int:
    """The most of ``times`` that fall into one sliding window ``(t - 1, t]``."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class PairBucket:
    """The (business number, user) pair rate: a token bucket of ``burst`` refilled one per ``per_seconds``."""

    tokens: float
    updated: float

    def take(self, now: float, *, burst: int, per_seconds: float) -> bool:
        refill = (now - self.updated) / per_seconds if per_seconds > 0 else float(burst)
        self.tokens = min(float(burst), self.tokens + max(0.0, refill))
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class SimulatorState:
    """Registry of numbers plus everything the simulator observed or was told to do."""

    def __init__(
        self,
        *,
        config: RuntimeConfig | None = None,
        clock: Callable[[], float] = time.time,
        history_limit: int = 10_000,
        template_seeds: list[Template] | None = None,
    ) -> None:
        self._default_config = config or RuntimeConfig()
        self.config = copy.deepcopy(self._default_config)
        self.clock = clock
        self._history_limit = history_limit
        self._template_seeds = list(template_seeds or [])
        self.numbers: dict[str, BusinessNumber] = {}
        self.sent: deque[SentMessage] = deque(maxlen=history_limit)
        self.read_receipts: deque[ReadReceipt] = deque(maxlen=history_limit)
        self.last_inbound: dict[tuple[str, str], float] = {}
        self.faults: list[Fault] = []
        self.status_rules: list[StatusRule] = []
        self.media: dict[str, StoredMedia] = {}
        self.media_url_key = secrets.token_bytes(32)  # signs download URLs (their `hash`)
        self.throughput: dict[str, ThroughputLog] = {}
        self.pair_buckets: dict[tuple[str, str], PairBucket] = {}
        self.templates: dict[str, Template] = {}
        self.known_wabas: set[str] = set()
        self._seed_templates()

    # numbers

    def upsert_number(self, number: BusinessNumber) -> BusinessNumber:
        self.numbers[number.phone_number_id] = number
        if number.waba_id not in self.known_wabas:
            self.known_wabas.add(number.waba_id)
            if self.find_template(number.waba_id, "hello_world", "en_US") is None:
                self.upsert_template(hello_world(number.waba_id))
        return number

    def get_number(self, phone_number_id: str) -> BusinessNumber | None:
        return self.numbers.get(phone_number_id)

    def token_known(self, token: str) -> bool:
        """Whether any registered number has this access token (Graph authenticates before lookup)."""
        return any(number.access_token == token for number in self.numbers.values())

    def token_expired_at(self, token: str) -> float | None:
        """When this token was expired through ``/_sim/numbers/{id}/expire-token`` (``None``: valid)."""
        for number in self.numbers.values():
            if number.access_token == token and number.token_expired_at is not None:
                return number.token_expired_at
        return None

    # traffic

    def record_sent(self, message: SentMessage) -> SentMessage:
        self.sent.append(message)
        return message

    def sent_messages(self, phone_number_id: str | None = None, to: str | None = None) -> list[SentMessage]:
        return [
            message
            for message in self.sent
            if (phone_number_id is None or message.phone_number_id == phone_number_id)
            and (to is None or to in (message.wa_id, message.to, message.user_id))
        ]

    def find_sent(self, wamid: str) -> SentMessage | None:
        return next((message for message in self.sent if message.wamid == wamid), None)

    def record_read_receipt(self, receipt: ReadReceipt) -> None:
        self.read_receipts.append(receipt)

    # throughput and pair rate (reference §7)

    def admit(self, phone_number_id: str) -> tuple[bool, float]:
        """Count one request on a send endpoint: (admitted, its receive time); not admitted when the number's
        throughput is exhausted."""
        number = self.numbers[phone_number_id]
        log = self.throughput.setdefault(phone_number_id, ThroughputLog())
        now = self.clock()
        return log.admit(now, number.limit_mps, enforce=self.config.throughput_enforcement), now

    def take_pair_token(self, phone_number_id: str, recipient: str) -> bool:
        """Consume the pair rate of (number, recipient); ``False`` when exhausted (131056)."""
        config = self.config
        if not config.pair_rate_enforcement:
            return True
        now = self.clock()
        bucket = self.pair_buckets.setdefault(
            (phone_number_id, recipient), PairBucket(tokens=float(config.pair_rate_burst), updated=now)
        )
        return bucket.take(now, burst=config.pair_rate_burst, per_seconds=config.pair_rate_per_seconds)

    # customer-service window (keyed by wa_id, or by BSUID for guests known only by their user_id)

    def touch_window(self, phone_number_id: str, wa_id: str, at: float | None = None) -> None:
        """A guest wrote: (re)open the 24-hour customer-service window."""
        moment = self.clock() if at is None else at
        key = (phone_number_id, wa_id)
        self.last_inbound[key] = max(moment, self.last_inbound.get(key, moment))

    def set_window(self, phone_number_id: str, recipient: str, at: float) -> None:
        """The guest last wrote at ``at`` exactly (a past ``at`` makes a window that has closed)."""
        self.last_inbound[(phone_number_id, recipient)] = at

    def window_open(self, phone_number_id: str, wa_id: str, at: float | None = None) -> bool:
        last = self.last_inbound.get((phone_number_id, wa_id))
        moment = self.clock() if at is None else at
        return last is not None and moment - last < CUSTOMER_SERVICE_WINDOW_SECONDS

    # faults and status rules

    def add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def take_fault(self, phone_number_id: str) -> Fault | None:
        """Consume one failure for this number (number-specific faults first, then ``*`` ones)."""
        for wanted in (phone_number_id, ALL_NUMBERS):
            for fault in self.faults:
                if fault.phone_number_id == wanted and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def take_status_rule(self, message: SentMessage) -> StatusRule | None:
        """Consume the first rule matching this message (number-specific rules first, then ``*`` ones)."""
        for wanted in (message.phone_number_id, ALL_NUMBERS):
            for rule in self.status_rules:
                if rule.phone_number_id != wanted or rule.remaining <= 0:
                    continue
                if rule.to is not None and rule.to not in (message.wa_id, message.user_id, message.to):
                    continue
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.status_rules.remove(rule)
                return rule
        return None

    # media

    def add_media(self, media: StoredMedia) -> StoredMedia:
        self.media[media.media_id] = media
        return media

    def get_media(self, media_id: str) -> StoredMedia | None:
        return self.media.get(media_id)

    def delete_media(self, media_id: str) -> bool:
        return self.media.pop(media_id, None) is not None

    # templates

    def upsert_template(self, template: Template) -> Template:
        """Add a template, replacing the one of the same WABA, name and language."""
        existing = self.find_template(template.waba_id, template.name, template.language)
        if existing is not None:
            del self.templates[existing.template_id]
        self.templates[template.template_id] = template
        return template

    def find_template(self, waba_id: str, name: str, language: str) -> Template | None:
        return next(
            (
                template
                for template in self.templates.values()
                if (template.waba_id, template.name, template.language) == (waba_id, name, language)
            ),
            None,
        )

    def waba_templates(self, waba_id: str) -> list[Template]:
        return [template for template in self.templates.values() if template.waba_id == waba_id]

    def _seed_templates(self) -> None:
        self.templates.clear()
        for seed in self._template_seeds:
            self.upsert_template(copy.deepcopy(seed))
        for waba_id in sorted(self.known_wabas):
            if self.find_template(waba_id, "hello_world", "en_US") is None:
                self.upsert_template(hello_world(waba_id))

    # lifecycle

    def reset(self, *, numbers: bool = False, templates: bool = False) -> None:
        """Forget traffic, windows, faults, rules, limits and run-time config; registered numbers too if
        ``numbers``; templates go back to the start-up set if ``templates`` (or ``numbers``)."""
        self.sent.clear()
        self.read_receipts.clear()
        self.last_inbound.clear()
        self.faults.clear()
        self.status_rules.clear()
        self.media.clear()
        self.throughput.clear()
        self.pair_buckets.clear()
        self.config = copy.deepcopy(self._default_config)
        if numbers:
            self.numbers.clear()
            self.known_wabas.clear()
        if numbers or templates:
            self._seed_templates()
