"""Builders of Meta-shaped webhook payloads (``field: "messages"``).

The layers mirror Meta's envelope: a *message* or *status* object goes into a change ``value``
(:func:`messages_value`, :func:`statuses_value`, :func:`errors_value`), a value into a *change*
(:func:`change`), changes into an *entry* per WABA (:func:`entry`), entries into the delivery
(:func:`envelope`). :func:`merge_deliveries` batches whole deliveries the way Meta may.

All ids and timestamps are strings, as on the wire. Key order follows Meta's examples.
"""

import base64
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eva_simulator.errors import webhook_error

OBJECT = "whatsapp_business_account"
MESSAGING_PRODUCT = "whatsapp"

StatusName = str  # "sent" | "delivered" | "read" | "failed" | "played"
JsonObject = dict[str, Any]


class BusinessRef(Protocol):
    """What a payload needs to know about the business phone number."""

    @property
    def waba_id(self) -> str: ...

    @property
    def phone_number_id(self) -> str: ...

    @property
    def display_phone_number(self) -> str: ...


@dataclass(frozen=True)
class Business:
    """A plain :class:`BusinessRef` for standalone use (e.g. the ``send-webhook`` CLI)."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str


def digits(value: str) -> str:
    """Only the digits of a phone number (``+1 (650) 555-1234`` → ``16505551234``)."""
    return "".join(ch for ch in value if ch.isdigit())


def unix_timestamp(at: float | None = None) -> str:
    """Meta's timestamp: a string of Unix seconds."""
    return str(int(time.time() if at is None else at))


def new_wamid(wa_id: str = "", *, outbound: bool = False) -> str:
    """A message id shaped like Meta's: ``wamid.`` + base64 of a small binary record.

    Real wamids decode to ``1c 18 <len> <wa_id> 15 02 00 <11|12> 18 <len> <hex id> 00`` (0x12 for inbound,
    0x11 for business-sent). We build the same structure around random hex, so ids are unique and look
    real (including occasional ``+``/``/`` and trailing ``=``).
    """
    user = digits(wa_id)[:255].encode("ascii") or b"0"
    if outbound:
        marker, hex_id = b"\x11", secrets.token_hex(9).upper().encode("ascii")
    else:
        marker, hex_id = b"\x12", secrets.token_hex(10).upper().encode("ascii")
    raw = (
        b"\x1c\x18"
        + bytes([len(user)])
        + user
        + b"\x15\x02\x00"
        + marker
        + b"\x18"
        + bytes([len(hex_id)])
        + hex_id
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode("ascii")


def new_conversation_id() -> str:
    """A conversation id like Meta's (32 lowercase hex characters)."""
    return secrets.token_hex(16)


def new_media_id() -> str:
    """A numeric media id like Meta's (16 digits)."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


# --- messages ---------------------------------------------------------------------------------------


def contact(wa_id: str | None, name: str, *, user_id: str | None = None) -> JsonObject:
    """A ``contacts[]`` element: ``{"profile": {"name"}, "wa_id"?, "user_id"?}`` (BSUID-only guests have no
    ``wa_id``, reference §3.0)."""
    result: JsonObject = {"profile": {"name": name}}
    if wa_id is not None:
        result["wa_id"] = wa_id
    if user_id is not None:
        result["user_id"] = user_id
    return result


def inbound_message(
    type: str,
    content: Mapping[str, Any] | None,
    *,
    from_: str | None,
    wamid: str | None = None,
    timestamp: str | int | None = None,
    context: Mapping[str, Any] | None = None,
    referral: Mapping[str, Any] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    from_user_id: str | None = None,
) -> JsonObject:
    """A ``messages[]`` element of any type: ``{context?, from, id, timestamp, type, <type>: content}``.

    ``content`` is the type's object exactly as Meta sends it, e.g. ``{"body": "hi"}`` for ``text``,
    ``{"latitude": 1.0, "longitude": 2.0}`` for ``location``, ``{"id", "mime_type", "sha256"}`` for media.
    ``None`` omits the type object (as some ``unsupported`` payloads do).
    """
    message: JsonObject = {}
    if context is not None:
        message["context"] = dict(context)
    if referral is not None:
        message["referral"] = dict(referral)
    if from_ is not None:
        message["from"] = from_
    if from_user_id is not None:
        message["from_user_id"] = from_user_id
    message["id"] = wamid or new_wamid(from_ or "")
    message["timestamp"] = str(timestamp) if timestamp is not None else unix_timestamp()
    if errors is not None:
        message["errors"] = [dict(error) for error in errors]
    message["type"] = type
    if content is not None:
        message[type] = dict(content)
    return message


def text_message(body: str, *, from_: str, **kwargs: Any) -> JsonObject:
    """An inbound ``text`` message (see :func:`inbound_message` for the keyword arguments)."""
    return inbound_message("text", {"body": body}, from_=from_, **kwargs)


def media_content(
    *,
    mime_type: str,
    sha256: str,
    media_id: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    url: str | None = None,
    **extra: Any,
) -> JsonObject:
    """The object of an inbound ``image|video|audio|document|sticker`` message."""
    result: JsonObject = {}
    if caption is not None:
        result["caption"] = caption
    if filename is not None:
        result["filename"] = filename
    result["mime_type"] = mime_type
    result["sha256"] = sha256
    result["id"] = media_id or new_media_id()
    if url is not None:
        result["url"] = url
    result.update(extra)
    return result


# --- statuses ---------------------------------------------------------------------------------------


def conversation_object(
    *, conversation_id: str | None = None, origin_type: str = "service", expiration_timestamp: str | None = None
) -> JsonObject:
    """``statuses[].conversation`` (``expiration_timestamp`` only accompanies ``sent``)."""
    result: JsonObject = {"id": conversation_id or new_conversation_id()}
    if expiration_timestamp is not None:
        result["expiration_timestamp"] = expiration_timestamp
    result["origin"] = {"type": origin_type}
    return result


def pricing_object(
    *, category: str = "service", billable: bool = False, pricing_model: str = "PMP", type: str | None = None
) -> JsonObject:
    """``statuses[].pricing``; ``type`` defaults to ``free_customer_service`` for unbilled messages."""
    pricing_type = type if type is not None else ("regular" if billable else "free_customer_service")
    return {"billable": billable, "pricing_model": pricing_model, "type": pricing_type, "category": category}


def status(
    wamid: str,
    status: StatusName,
    *,
    recipient_id: str | None = None,
    timestamp: str | int | None = None,
    conversation: Mapping[str, Any] | None = None,
    pricing: Mapping[str, Any] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    biz_opaque_callback_data: str | None = None,
    recipient_user_id: str | None = None,
) -> JsonObject:
    """A ``statuses[]`` element in Meta's key order (``recipient_user_id`` for BSUID sends, reference §12)."""
    result: JsonObject = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp) if timestamp is not None else unix_timestamp(),
    }
    if recipient_id is not None:
        result["recipient_id"] = recipient_id
    if recipient_user_id is not None:
        result["recipient_user_id"] = recipient_user_id
    if biz_opaque_callback_data is not None:
        result["biz_opaque_callback_data"] = biz_opaque_callback_data
    if conversation is not None:
        result["conversation"] = dict(conversation)
    if pricing is not None:
        result["pricing"] = dict(pricing)
    if errors is not None:
        result["errors"] = [dict(error) for error in errors]
    return result


def failed_status(
    wamid: str, *, code: int, details: str | None = None, title: str | None = None, **kwargs: Any
) -> JsonObject:
    """A ``failed`` status carrying Meta's ``errors[]`` element for ``code``."""
    return status(wamid, "failed", errors=[webhook_error(code, details=details, title=title)], **kwargs)


# --- values, changes, entries, deliveries -------------------------------------------------------------


def metadata(number: BusinessRef) -> JsonObject:
    """``value.metadata``: both strings, the display number without ``+``."""
    return {"display_phone_number": digits(number.display_phone_number), "phone_number_id": number.phone_number_id}


def messages_value(
    number: BusinessRef, messages: Sequence[Mapping[str, Any]], *, contacts: Sequence[Mapping[str, Any]] = ()
) -> JsonObject:
    """A change value carrying ``contacts[]`` (omitted when empty, as for system messages) and ``messages[]``."""
    value: JsonObject = {"messaging_product": MESSAGING_PRODUCT, "metadata": metadata(number)}
    if contacts:
        value["contacts"] = [dict(item) for item in contacts]
    value["messages"] = [dict(item) for item in messages]
    return value


def statuses_value(number: BusinessRef, statuses: Sequence[Mapping[str, Any]]) -> JsonObject:
    """A change value carrying ``statuses[]``."""
    return {
        "messaging_product": MESSAGING_PRODUCT,
        "metadata": metadata(number),
        "statuses": [dict(item) for item in statuses],
    }


def errors_value(number: BusinessRef, errors: Sequence[Mapping[str, Any]]) -> JsonObject:
    """A change value carrying account-level ``errors[]``."""
    return {
        "messaging_product": MESSAGING_PRODUCT,
        "metadata": metadata(number),
        "errors": [dict(item) for item in errors],
    }


def change(value: Mapping[str, Any], *, field: str = "messages") -> JsonObject:
    """``{"value": ..., "field": ...}``."""
    return {"value": dict(value), "field": field}


def entry(waba_id: str, changes: Sequence[Mapping[str, Any]], *, time: int | None = None) -> JsonObject:
    """``{"id": <WABA id>, "time"?, "changes": [...]}`` (account-level fields carry ``time``)."""
    result: JsonObject = {"id": waba_id}
    if time is not None:
        result["time"] = time
    result["changes"] = [dict(item) for item in changes]
    return result


def envelope(entries: Sequence[Mapping[str, Any]]) -> JsonObject:
    """The whole delivery: ``{"object": "whatsapp_business_account", "entry": [...]}``."""
    return {"object": OBJECT, "entry": [dict(item) for item in entries]}


def delivery(number: BusinessRef, values: Sequence[Mapping[str, Any]]) -> JsonObject:
    """One delivery for one number: one entry, one ``messages`` change per value."""
    return envelope([entry(number.waba_id, [change(value) for value in values])])


def inbound_delivery(
    number: BusinessRef,
    messages: Sequence[Mapping[str, Any]],
    *,
    contacts: Sequence[Mapping[str, Any]] = (),
) -> JsonObject:
    """A delivery of one or many inbound messages (one change)."""
    return delivery(number, [messages_value(number, messages, contacts=contacts)])


def inbound_text_delivery(
    number: BusinessRef, *, from_: str, name: str, text: str, **message_kwargs: Any
) -> JsonObject:
    """The common case: one guest writes one text (reference §3.2)."""
    return inbound_delivery(
        number, [text_message(text, from_=from_, **message_kwargs)], contacts=[contact(from_, name)]
    )


def status_delivery(number: BusinessRef, statuses: Sequence[Mapping[str, Any]]) -> JsonObject:
    """A delivery of one or many statuses (one change)."""
    return delivery(number, [statuses_value(number, statuses)])


def echo_delivery(number: BusinessRef, echoes: Sequence[Mapping[str, Any]]) -> JsonObject:
    """Coexistence echoes of what the business sent from the WhatsApp Business app (reference §12):
    ``field: "smb_message_echoes"`` with ``value.message_echoes[]``."""
    value = {
        "messaging_product": MESSAGING_PRODUCT,
        "metadata": metadata(number),
        "message_echoes": [dict(item) for item in echoes],
    }
    return envelope([entry(number.waba_id, [change(value, field="smb_message_echoes")])])


def echo_message(
    type: str,
    content: Mapping[str, Any],
    *,
    from_: str,
    to: str,
    wamid: str | None = None,
    timestamp: str | int | None = None,
) -> JsonObject:
    """A ``message_echoes[]`` element: ``{from, to, id, timestamp, type, <type>: content}``."""
    return {
        "from": from_,
        "to": to,
        "id": wamid or new_wamid(to, outbound=True),
        "timestamp": str(timestamp) if timestamp is not None else unix_timestamp(),
        "type": type,
        type: dict(content),
    }


def template_delivery(waba_id: str, field: str, value: Mapping[str, Any], *, at: float | None = None) -> JsonObject:
    """A template lifecycle webhook (``message_template_status_update``, ``template_category_update``,
    ``message_template_quality_update``): one entry of the WABA with its ``time``."""
    moment = int(time.time() if at is None else at)
    return envelope([entry(waba_id, [change(value, field=field)], time=moment)])


def merge_deliveries(deliveries: Iterable[Mapping[str, Any]]) -> JsonObject:
    """Batch several deliveries into one, as Meta may: entries of the same WABA are merged, their changes
    concatenated in order; different WABAs stay separate entries."""
    merged: dict[str, JsonObject] = {}
    for item in deliveries:
        for item_entry in item["entry"]:
            target = merged.setdefault(item_entry["id"], {"id": item_entry["id"], "changes": []})
            target["changes"].extend(dict(each) for each in item_entry["changes"])
    return envelope(list(merged.values()))


def wamids_in(payload: Mapping[str, Any]) -> list[str]:
    """Every ``messages[].id`` in a delivery (handy for tests and the admin API)."""
    return [
        message["id"]
        for item_entry in payload.get("entry", [])
        for item_change in item_entry.get("changes", [])
        for message in item_change.get("value", {}).get("messages", [])
    ]


def phone_number_ids_in(payload: Mapping[str, Any]) -> list[str]:
    """Every ``metadata.phone_number_id`` in a delivery, in order, without repeats."""
    found: list[str] = []
    for item_entry in payload.get("entry", []):
        for item_change in item_entry.get("changes", []):
            pnid = item_change.get("value", {}).get("metadata", {}).get("phone_number_id")
            if isinstance(pnid, str) and pnid not in found:
                found.append(pnid)
    return found
