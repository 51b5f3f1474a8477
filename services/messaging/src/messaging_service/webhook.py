"""Reads Meta's webhook payload: every entry[] → changes[] (field "messages") → value.messages[], value.statuses[]
and value.errors[]; the account-level template changes (`message_template_status_update`, `template_category_update`,
`message_template_quality_update`, the WABA id in entry.id; reference §12) and coexistence echoes
(`smb_message_echoes` → value.message_echoes[], messages the business sent from the WhatsApp Business app; reference
§12). Pure functions, no I/O; anything malformed is counted and skipped, never fatal."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from messaging_service import statuses
from messaging_service.content import content_json

MESSAGES_FIELD = "messages"
ECHOES_FIELD = "smb_message_echoes"
TEMPLATE_STATUS_FIELD = "message_template_status_update"
TEMPLATE_CATEGORY_FIELD = "template_category_update"
TEMPLATE_QUALITY_FIELD = "message_template_quality_update"
UNKNOWN_TYPE = "unknown"


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote: Meta's phone-based wa_id and/or business-scoped user id (BSUID), and their profile name."""

    wa_id: str | None
    user_id: str | None
    profile_name: str | None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    wamid: str
    phone_number_id: str | None
    sender: Sender
    sent_at: datetime | None
    type: str
    content: dict[str, Any]
    context: dict[str, Any] | None
    referral: dict[str, Any] | None
    errors: list[dict[str, Any]] | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    wamid: str
    status: str  # SENT, DELIVERED, READ, FAILED, or another of Meta's (e.g. PLAYED)
    occurred_at: datetime | None
    recipient_id: str | None
    phone_number_id: str | None
    errors: list[dict[str, Any]] | None
    raw: dict[str, Any]
    pricing_category: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookError:
    """An error Meta reports for the number or app (value.errors[]), not tied to one message."""

    code: int | None
    title: str | None
    details: str | None
    phone_number_id: str | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EchoMessage:
    """A message the business sent from the WhatsApp Business app (coexistence): outbound, to the guest `to`."""

    wamid: str
    phone_number_id: str | None
    to: str | None  # the guest's wa_id
    to_user_id: str | None  # the guest's business-scoped user id, when Meta gives it
    sent_at: datetime | None
    type: str
    content: dict[str, Any]
    raw: dict[str, Any]


class TemplateChange(enum.StrEnum):
    STATUS = "status"
    CATEGORY = "category"
    QUALITY = "quality"


@dataclass(frozen=True, slots=True)
class TemplateUpdate:
    """Meta's news about one message template: its status (with the reason), its category or its quality."""

    change: TemplateChange
    waba_id: str | None
    meta_id: str | None
    name: str | None
    language: str | None
    value: str  # the new status (event), category or quality score, upper-cased
    reason: str | None  # status updates: Meta's reason ("NONE" is read as none)
    raw: dict[str, Any]


@dataclass(slots=True)
class WebhookBatch:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    errors: list[WebhookError] = field(default_factory=list)
    echoes: list[EchoMessage] = field(default_factory=list)
    templates: list[TemplateUpdate] = field(default_factory=list)
    ignored: int = 0  # changes of other fields and malformed items


def meta_timestamp(value: object) -> datetime | None:
    """Meta's timestamps are strings of Unix seconds."""
    try:
        seconds = int(str(value))
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: object) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _object(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def _errors(value: object) -> list[dict[str, Any]] | None:
    return _dicts(value) or None


class _Contacts:
    """value.contacts[], matched to a message by wa_id, else by user_id, else the only contact there is."""

    def __init__(self, contacts: list[dict[str, Any]]) -> None:
        self._all = contacts
        self._by_wa_id = {key: c for c in contacts if (key := _text(c.get("wa_id")))}
        self._by_user_id = {key: c for c in contacts if (key := _text(c.get("user_id")))}

    def sender_of(self, message: Mapping[str, Any]) -> Sender:
        wa_id = _text(message.get("from"))
        user_id = _text(message.get("from_user_id"))
        contact: dict[str, Any] | None = None
        if wa_id:
            contact = self._by_wa_id.get(wa_id)
        if contact is None and user_id:
            contact = self._by_user_id.get(user_id)
        if contact is None and not wa_id and not user_id and len(self._all) == 1:
            contact = self._all[0]  # a message naming no sender: the change's only contact wrote it
        profile = contact.get("profile") if contact else None
        return Sender(
            wa_id=wa_id or (_text(contact.get("wa_id")) if contact else None),
            user_id=user_id or (_text(contact.get("user_id")) if contact else None),
            profile_name=_text(profile.get("name")) if isinstance(profile, dict) else None,
        )


def _message(raw: dict[str, Any], contacts: _Contacts, phone_number_id: str | None) -> InboundMessage | None:
    wamid = _text(raw.get("id"))
    if wamid is None:
        return None
    kind = _text(raw.get("type")) or UNKNOWN_TYPE
    return InboundMessage(
        wamid=wamid,
        phone_number_id=phone_number_id,
        sender=contacts.sender_of(raw),
        sent_at=meta_timestamp(raw.get("timestamp")),
        type=kind,
        content=content_json(kind, raw),
        context=_object(raw.get("context")),
        referral=_object(raw.get("referral")),
        errors=_errors(raw.get("errors")),
        raw=raw,
    )


def _status(raw: dict[str, Any], phone_number_id: str | None) -> StatusUpdate | None:
    wamid = _text(raw.get("id"))
    status = _text(raw.get("status"))
    if wamid is None or status is None:
        return None
    return StatusUpdate(
        wamid=wamid,
        status=statuses.normalize(status),
        occurred_at=meta_timestamp(raw.get("timestamp")),
        recipient_id=_text(raw.get("recipient_id")),
        phone_number_id=phone_number_id,
        errors=_errors(raw.get("errors")),
        raw=raw,
        pricing_category=_pricing_category(raw),
    )


def _pricing_category(raw: Mapping[str, Any]) -> str | None:
    """Meta's pricing.category (service, utility, marketing, authentication…), else the older
    conversation.origin.type."""
    pricing = raw.get("pricing")
    if isinstance(pricing, dict) and (category := _text(pricing.get("category"))):
        return category
    conversation = raw.get("conversation")
    origin = conversation.get("origin") if isinstance(conversation, dict) else None
    return _text(origin.get("type")) if isinstance(origin, dict) else None


def _error(raw: dict[str, Any], phone_number_id: str | None) -> WebhookError:
    code = raw.get("code")
    data = raw.get("error_data")
    return WebhookError(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        title=_text(raw.get("title")),
        details=_text(data.get("details")) if isinstance(data, dict) else None,
        phone_number_id=phone_number_id,
        raw=raw,
    )


def _echo(raw: dict[str, Any], phone_number_id: str | None) -> EchoMessage | None:
    wamid = _text(raw.get("id"))
    if wamid is None:
        return None
    kind = _text(raw.get("type")) or UNKNOWN_TYPE
    return EchoMessage(
        wamid=wamid,
        phone_number_id=phone_number_id,
        to=_text(raw.get("to")),
        to_user_id=_text(raw.get("to_user_id")),
        sent_at=meta_timestamp(raw.get("timestamp")),
        type=kind,
        content=content_json(kind, raw),
        raw=raw,
    )


def _upper(value: object) -> str | None:
    text = _text(value)
    return text.upper() if text else None


# Each template field: what it changes and where its new value is.
_TEMPLATE_FIELDS: dict[str, tuple[TemplateChange, str]] = {
    TEMPLATE_STATUS_FIELD: (TemplateChange.STATUS, "event"),
    TEMPLATE_CATEGORY_FIELD: (TemplateChange.CATEGORY, "new_category"),
    TEMPLATE_QUALITY_FIELD: (TemplateChange.QUALITY, "new_quality_score"),
}


def _template_update(field_name: str, value: dict[str, Any], waba_id: str | None) -> TemplateUpdate | None:
    change, key = _TEMPLATE_FIELDS[field_name]
    new_value = _upper(value.get(key))
    meta_id = _text(value.get("message_template_id"))
    name = _text(value.get("message_template_name"))
    language = _text(value.get("message_template_language"))
    if new_value is None or (meta_id is None and (name is None or language is None)):
        return None
    reason = _text(value.get("reason")) if change is TemplateChange.STATUS else None
    return TemplateUpdate(change=change, waba_id=waba_id, meta_id=meta_id, name=name, language=language,
                          value=new_value, reason=None if reason is None or reason.upper() == "NONE" else reason,
                          raw=value)


def walk(payload: Mapping[str, Any]) -> WebhookBatch:
    """Everything a delivery carries, in Meta's order."""
    batch = WebhookBatch()
    for entry in _dicts(payload.get("entry")):
        waba_id = _text(entry.get("id"))
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            field_name = change.get("field")
            if not isinstance(value, dict):
                batch.ignored += 1
                continue
            if isinstance(field_name, str) and field_name in _TEMPLATE_FIELDS:
                update = _template_update(field_name, value, waba_id)
                if update is None:
                    batch.ignored += 1
                else:
                    batch.templates.append(update)
                continue
            if field_name == ECHOES_FIELD:
                metadata = value.get("metadata")
                number = _text(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
                for raw in _dicts(value.get("message_echoes")):
                    echo = _echo(raw, number)
                    if echo is None:
                        batch.ignored += 1
                    else:
                        batch.echoes.append(echo)
                continue
            if field_name != MESSAGES_FIELD:
                batch.ignored += 1
                continue
            metadata = value.get("metadata")
            phone_number_id = _text(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
            contacts = _Contacts(_dicts(value.get("contacts")))
            for raw in _dicts(value.get("messages")):
                message = _message(raw, contacts, phone_number_id)
                if message is None:
                    batch.ignored += 1
                else:
                    batch.messages.append(message)
            for raw in _dicts(value.get("statuses")):
                status = _status(raw, phone_number_id)
                if status is None:
                    batch.ignored += 1
                else:
                    batch.statuses.append(status)
            batch.errors.extend(_error(raw, phone_number_id) for raw in _dicts(value.get("errors")))
    return batch
