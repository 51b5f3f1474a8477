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

    def public(self) -> dict[str, Any]:
        """The admin view: never the access token or the app secret."""
        return {
            "phoneNumberId": self.phone_number_id,
            "wabaId": self.waba_id,
            "displayPhoneNumber": self.display_phone_number,
            "webhookUrl": self.webhook_url,
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


@dataclass
class SentMessage:
    """A message the business sent through ``POST /{phone_number_id}/messages``."""

    wamid: str
    phone_number_id: str
    to: str
    wa_id: str
    type: str
    request: dict[str, Any]
    accepted_at: float
    window_open: bool
    statuses: list[StatusRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "wamid": self.wamid,
            "phoneNumberId": self.phone_number_id,
            "to": self.to,
            "waId": self.wa_id,
            "type": self.type,
            "request": self.request,
            "acceptedAt": self.accepted_at,
            "windowOpen": self.window_open,
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


@dataclass
class Fault:
    """Make the next ``remaining`` sends of a number fail with Meta error ``code``."""

    phone_number_id: str
    code: int
    remaining: int
    details: str | None = None
    http_status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "phoneNumberId": self.phone_number_id,
            "code": self.code,
            "remaining": self.remaining,
            "details": self.details,
            "httpStatus": self.http_status,
        }


@dataclass
class RuntimeConfig:
    """Behaviour switches that tests may flip at run time through ``POST /_sim/config``."""

    auto_statuses: bool = True
    status_sequence: list[str] = field(default_factory=lambda: ["sent", "delivered", "read"])
    status_delays: list[float] = field(default_factory=lambda: [0.2, 0.5, 1.0])
    window_enforcement: WindowEnforcement = "off"

    def to_json(self) -> dict[str, Any]:
        return {
            "autoStatuses": self.auto_statuses,
            "statusSequence": list(self.status_sequence),
            "statusDelays": list(self.status_delays),
            "windowEnforcement": self.window_enforcement,
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


class SimulatorState:
    """Registry of numbers plus everything the simulator observed or was told to do."""

    def __init__(
        self,
        *,
        config: RuntimeConfig | None = None,
        clock: Callable[[], float] = time.time,
        history_limit: int = 10_000,
    ) -> None:
        self._default_config = config or RuntimeConfig()
        self.config = copy.deepcopy(self._default_config)
        self.clock = clock
        self._history_limit = history_limit
        self.numbers: dict[str, BusinessNumber] = {}
        self.sent: deque[SentMessage] = deque(maxlen=history_limit)
        self.read_receipts: deque[ReadReceipt] = deque(maxlen=history_limit)
        self.last_inbound: dict[tuple[str, str], float] = {}
        self.faults: list[Fault] = []
        self.media: dict[str, StoredMedia] = {}
        self.media_url_key = secrets.token_bytes(32)  # signs download URLs (their `hash`)

    # numbers

    def upsert_number(self, number: BusinessNumber) -> BusinessNumber:
        self.numbers[number.phone_number_id] = number
        return number

    def get_number(self, phone_number_id: str) -> BusinessNumber | None:
        return self.numbers.get(phone_number_id)

    def token_known(self, token: str) -> bool:
        """Whether any registered number has this access token (Graph authenticates before lookup)."""
        return any(number.access_token == token for number in self.numbers.values())

    # traffic

    def record_sent(self, message: SentMessage) -> SentMessage:
        self.sent.append(message)
        return message

    def sent_messages(self, phone_number_id: str | None = None, to: str | None = None) -> list[SentMessage]:
        return [
            message
            for message in self.sent
            if (phone_number_id is None or message.phone_number_id == phone_number_id)
            and (to is None or message.wa_id == to or message.to == to)
        ]

    def find_sent(self, wamid: str) -> SentMessage | None:
        return next((message for message in self.sent if message.wamid == wamid), None)

    def record_read_receipt(self, receipt: ReadReceipt) -> None:
        self.read_receipts.append(receipt)

    # customer-service window

    def touch_window(self, phone_number_id: str, wa_id: str, at: float | None = None) -> None:
        """A guest wrote: (re)open the 24-hour customer-service window."""
        moment = self.clock() if at is None else at
        key = (phone_number_id, wa_id)
        self.last_inbound[key] = max(moment, self.last_inbound.get(key, moment))

    def window_open(self, phone_number_id: str, wa_id: str, at: float | None = None) -> bool:
        last = self.last_inbound.get((phone_number_id, wa_id))
        moment = self.clock() if at is None else at
        return last is not None and moment - last < CUSTOMER_SERVICE_WINDOW_SECONDS

    # faults

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

    # media

    def add_media(self, media: StoredMedia) -> StoredMedia:
        self.media[media.media_id] = media
        return media

    def get_media(self, media_id: str) -> StoredMedia | None:
        return self.media.get(media_id)

    def delete_media(self, media_id: str) -> bool:
        return self.media.pop(media_id, None) is not None

    # lifecycle

    def reset(self, *, numbers: bool = False) -> None:
        """Forget traffic, windows, faults and run-time config; registered numbers too if ``numbers``."""
        self.sent.clear()
        self.read_receipts.clear()
        self.last_inbound.clear()
        self.faults.clear()
        self.media.clear()
        self.config = copy.deepcopy(self._default_config)
        if numbers:
            self.numbers.clear()
