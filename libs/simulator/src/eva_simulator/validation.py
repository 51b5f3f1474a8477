"""Validation of ``POST /{phone_number_id}/messages`` bodies, raising Meta-shaped :class:`GraphError`s.

Each message type has one validator in ``TYPE_VALIDATORS``; adding a type or a limit means adding or
editing one function. Limits are Meta's documented ones (reference §5.1, §7).
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eva_simulator.errors import invalid_parameter, missing_parameter, whatsapp_error
from eva_simulator.payloads import digits

TEXT_BODY_MAX = 4096
CAPTION_MAX = 1024
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
CAPTIONED_MEDIA = ("image", "video", "document")


BSUID_PATTERN = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]+$")  # e.g. US.13491208655302741918 (reference §12)


@dataclass(frozen=True)
class MessageSend:
    """A validated message send: to a phone number (``wa_id``) or to a BSUID (``user_id``, ``wa_id`` empty)."""

    to: str  # the recipient as given (``to``, else ``recipient``)
    wa_id: str
    type: str
    body: dict[str, Any]
    user_id: str | None = None

    @property
    def recipient(self) -> str:
        """The key the simulator tracks the recipient by (windows, pair rate, status rules)."""
        return self.wa_id or self.user_id or ""

    def contact(self) -> dict[str, str]:
        """The response's ``contacts[]`` element (reference §5.2, §12)."""
        if self.user_id is not None:
            return {"input": self.to, "user_id": self.user_id}
        return {"input": self.to, "wa_id": self.wa_id}


@dataclass(frozen=True)
class ReadReceiptSend:
    """A validated ``{"status": "read", "message_id": ...}`` call."""

    message_id: str
    typing_indicator: bool


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        raise missing_parameter(key)
    if not isinstance(value, Mapping):
        raise invalid_parameter(f"Param {key} must be a JSON object.")
    return value


def _string(
    obj: Mapping[str, Any], key: str, *, path: str, max_len: int | None = None, required: bool = True
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise missing_parameter(f"{path}['{key}']")
        return None
    if not isinstance(value, str):
        raise invalid_parameter(f"Param {path}['{key}'] must be a string.")
    if max_len is not None and len(value) > max_len:
        raise invalid_parameter(f"Param {path}['{key}'] must be at most {max_len} characters long.")
    return value


def _validate_text(content: Mapping[str, Any]) -> None:
    body = _string(content, "body", path="text", max_len=TEXT_BODY_MAX)
    if body is not None and not body.strip():
        raise invalid_parameter("Param text['body'] must not be empty.")
    preview = content.get("preview_url")
    if preview is not None and not isinstance(preview, bool):
        raise invalid_parameter("Param text['preview_url'] must be a boolean.")


def _media_validator(kind: str) -> Callable[[Mapping[str, Any]], None]:
    def validate(content: Mapping[str, Any]) -> None:
        has_id, has_link = content.get("id") is not None, content.get("link") is not None
        if has_id == has_link:
            raise invalid_parameter(f"Param {kind} must have exactly one of 'id' or 'link'.")
        if kind in CAPTIONED_MEDIA:
            _string(content, "caption", path=kind, max_len=CAPTION_MAX, required=False)
        elif content.get("caption") is not None:
            raise invalid_parameter(f"Param {kind}['caption'] is not supported for {kind} messages.")

    return validate


def _validate_template(content: Mapping[str, Any]) -> None:
    _string(content, "name", path="template", max_len=512)
    language = content.get("language")
    if not isinstance(language, Mapping) or not isinstance(language.get("code"), str):
        raise missing_parameter("template['language']['code']")
    components = content.get("components")
    if components is not None and not isinstance(components, list):
        raise invalid_parameter("Param template['components'] must be an array.")


def _validate_reaction(content: Mapping[str, Any]) -> None:
    _string(content, "message_id", path="reaction")
    emoji = content.get("emoji")
    if emoji is not None and not isinstance(emoji, str):
        raise invalid_parameter("Param reaction['emoji'] must be a string.")


def _validate_location(content: Mapping[str, Any]) -> None:
    for key in ("latitude", "longitude"):
        value = content.get(key)
        if value is None:
            raise missing_parameter(f"location['{key}']")
        try:
            float(value)
        except (TypeError, ValueError):
            raise invalid_parameter(f"Param location['{key}'] must be a number.") from None


def _validate_contacts(content: Any) -> None:
    if not isinstance(content, list) or not content:
        raise invalid_parameter("Param contacts must be a non-empty array.")


def _validate_buttons(interactive: Mapping[str, Any]) -> None:
    action = _object(interactive, "action")
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise invalid_parameter("Param interactive['action']['buttons'] must have between 1 and 3 buttons.")
    titles: list[str] = []
    for button in buttons:
        reply = button.get("reply") if isinstance(button, Mapping) else None
        if not isinstance(reply, Mapping):
            raise missing_parameter("interactive['action']['buttons'][]['reply']")
        title = _string(reply, "title", path="reply", max_len=20) or ""
        _string(reply, "id", path="reply", max_len=256)
        titles.append(title)
    if len(set(titles)) != len(titles):
        raise invalid_parameter("Button titles must be unique.")


def _validate_list(interactive: Mapping[str, Any]) -> None:
    action = _object(interactive, "action")
    _string(action, "button", path="action", max_len=20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise invalid_parameter("Param interactive['action']['sections'] must have between 1 and 10 sections.")
    rows = [row for section in sections if isinstance(section, Mapping) for row in section.get("rows", [])]
    if not 1 <= len(rows) <= 10:
        raise invalid_parameter("A list message must have between 1 and 10 rows in total.")
    for row in rows:
        if not isinstance(row, Mapping):
            raise invalid_parameter("Param rows[] must be objects.")
        _string(row, "id", path="row", max_len=200)
        _string(row, "title", path="row", max_len=24)
        _string(row, "description", path="row", max_len=72, required=False)


def _validate_interactive(content: Mapping[str, Any]) -> None:
    kind = content.get("type")
    if kind is None:
        raise missing_parameter("interactive['type']")
    body = content.get("body")
    if kind in ("button", "list"):
        if not isinstance(body, Mapping):
            raise missing_parameter("interactive['body']")
        _string(body, "text", path="body", max_len=1024 if kind == "button" else 4096)
    if kind == "button":
        _validate_buttons(content)
    elif kind == "list":
        _validate_list(content)


TYPE_VALIDATORS: dict[str, Callable[[Any], None]] = {
    "text": _validate_text,
    **{kind: _media_validator(kind) for kind in MEDIA_TYPES},
    "template": _validate_template,
    "reaction": _validate_reaction,
    "location": _validate_location,
    "contacts": _validate_contacts,
    "interactive": _validate_interactive,
}


def parse_send(body: Any, *, business_display_number: str) -> MessageSend | ReadReceiptSend:
    """Validate a send body as Meta would and return what it asks for."""
    if not isinstance(body, Mapping):
        raise invalid_parameter("Request body must be a JSON object.")
    product = body.get("messaging_product")
    if product is None:
        raise missing_parameter("messaging_product")
    if product != "whatsapp":
        raise invalid_parameter(f'Param messaging_product must be one of {{WHATSAPP}} - got "{product}".')

    if "status" in body:
        if body.get("status") != "read":
            raise invalid_parameter("Param status must be one of {READ}.")
        message_id = body.get("message_id")
        if message_id is None or message_id == "":
            raise missing_parameter("message_id")
        if not isinstance(message_id, str) or not message_id.startswith("wamid."):
            raise invalid_parameter(f"Param message_id is not a valid WhatsApp message id: {message_id!r}.")
        typing = body.get("typing_indicator")
        if typing is not None and (not isinstance(typing, Mapping) or typing.get("type") != "text"):
            raise invalid_parameter("Param typing_indicator['type'] must be one of {TEXT}.")
        return ReadReceiptSend(message_id=message_id, typing_indicator=typing is not None)

    recipient_type = body.get("recipient_type", "individual")
    if recipient_type not in ("individual", "group"):
        raise invalid_parameter("Param recipient_type must be one of {INDIVIDUAL, GROUP}.")
    to, user_id = body.get("to"), None
    if to is None:  # reference §12: a BSUID in `recipient`; when both are given `to` wins
        recipient = body.get("recipient")
        if recipient is None:
            raise missing_parameter("to")
        if not isinstance(recipient, str) or not BSUID_PATTERN.match(recipient):
            raise invalid_parameter("Param recipient must be a valid business-scoped user ID.")
        to = user_id = recipient
    elif not isinstance(to, str) or not digits(to):
        raise invalid_parameter("Param to must be a valid phone number.")
    wa_id = digits(to) if user_id is None else ""
    if user_id is None and wa_id == digits(business_display_number):
        raise whatsapp_error(131021)

    message_type = body.get("type", "text")
    validator = TYPE_VALIDATORS.get(message_type) if isinstance(message_type, str) else None
    if validator is None:
        raise invalid_parameter(f"Param type must be one of {{{', '.join(sorted(TYPE_VALIDATORS))}}}.")
    if message_type == "contacts":
        if body.get("contacts") is None:
            raise missing_parameter("contacts")
        validator(body["contacts"])
    else:
        validator(_object(body, message_type))
    return MessageSend(to=to, wa_id=wa_id, type=message_type, body=dict(body), user_id=user_id)
