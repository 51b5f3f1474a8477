"""Typed content of every inbound message type (Meta's webhook shapes, reference §3.2–3.18).

Each model reads Meta's snake_case object and serializes camelCase (what `content_json` and the events carry).
Anything malformed or of a type Meta added later becomes `UnsupportedContent` with the raw object: never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

TEXT = "text"
IMAGE = "image"
VIDEO = "video"
AUDIO = "audio"
DOCUMENT = "document"
STICKER = "sticker"
LOCATION = "location"
CONTACTS = "contacts"
INTERACTIVE = "interactive"
BUTTON = "button"
REACTION = "reaction"
ORDER = "order"
SYSTEM = "system"
UNSUPPORTED = "unsupported"
MEDIA_TYPES = frozenset({IMAGE, VIDEO, AUDIO, DOCUMENT, STICKER})


class MetaContent(BaseModel):
    """Reads Meta's field names, writes camelCase; unknown keys of Meta's object are ignored (kept in `raw`)."""

    model_config = ConfigDict(alias_generator=AliasGenerator(serialization_alias=to_camel), extra="ignore",
                              frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class TextContent(MetaContent):
    body: str = ""


class MediaContent(MetaContent):
    """The media object every media type shares (§3.3): Meta's media id, MIME type, sha256 and (newer) url."""

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    url: str | None = None


class ImageContent(MediaContent):
    caption: str | None = None


class VideoContent(MediaContent):
    caption: str | None = None


class AudioContent(MediaContent):
    voice: bool = False


class DocumentContent(MediaContent):
    caption: str | None = None
    filename: str | None = None


class StickerContent(MediaContent):
    animated: bool = False


class LocationContent(MetaContent):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactsContent(MetaContent):
    """Meta's contact cards, kept as Meta shaped them (names, phones, emails, addresses, org, urls, birthday)."""

    contacts: list[dict[str, Any]]


class InteractiveContent(MetaContent):
    """A reply to interactive buttons (`button_reply`: id, title) or a list (`list_reply`: id, title, description)."""

    type: str
    id: str | None = None
    title: str | None = None
    description: str | None = None


class ButtonContent(MetaContent):
    """A template's quick-reply button."""

    text: str | None = None
    payload: str | None = None


class ReactionContent(MetaContent):
    """A reaction to `message_id`; an empty or absent emoji removes the reaction."""

    message_id: str
    emoji: str | None = None
    removed: bool = False


class ProductItem(MetaContent):
    product_retailer_id: str
    quantity: int | None = None
    item_price: float | None = None
    currency: str | None = None


class OrderContent(MetaContent):
    catalog_id: str
    product_items: list[ProductItem] = []
    text: str | None = None


class SystemContent(MetaContent):
    """A system message (e.g. `user_changed_number`): its text, its type and the guest's new wa_id."""

    body: str | None = None
    type: str | None = None
    new_wa_id: str | None = None
    wa_id: str | None = None
    customer: str | None = None
    identity: str | None = None


class UnsupportedContent(MetaContent):
    """A type Eva cannot read (or Meta's `unsupported`): the original type, its raw object and Meta's errors."""

    type: str
    raw: Any = None
    errors: list[dict[str, Any]] = []


# The keys every message object has, whatever its type (not part of a type's own object).
_ENVELOPE_KEYS = frozenset({"from", "from_user_id", "id", "timestamp", "type", "context", "referral", "errors"})

_MODELS: dict[str, type[MetaContent]] = {
    TEXT: TextContent,
    IMAGE: ImageContent,
    VIDEO: VideoContent,
    AUDIO: AudioContent,
    DOCUMENT: DocumentContent,
    STICKER: StickerContent,
    LOCATION: LocationContent,
    REACTION: ReactionContent,
    BUTTON: ButtonContent,
    ORDER: OrderContent,
    SYSTEM: SystemContent,
}


def _interactive(body: Mapping[str, Any]) -> InteractiveContent:
    kind = str(body.get("type") or "")
    reply = body.get(kind)
    fields = dict(reply) if isinstance(reply, Mapping) else {}
    return InteractiveContent.model_validate({**fields, "type": kind})


def _errors(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors = message.get("errors")
    return [item for item in errors if isinstance(item, dict)] if isinstance(errors, list) else []


def parse_content(kind: str, message: Mapping[str, Any]) -> tuple[str, MetaContent]:
    """The stored type and typed content of one of Meta's message objects. A malformed object of a known type, or
    an unknown type, becomes `unsupported` content that keeps the original type, the raw object and the errors."""
    body = message.get(kind)
    if kind == TEXT and body is None:
        body = {}
    try:
        if kind == CONTACTS and isinstance(body, list):
            return kind, ContactsContent(contacts=[item for item in body if isinstance(item, dict)])
        if isinstance(body, Mapping):
            if kind == INTERACTIVE:
                return kind, _interactive(body)
            model = _MODELS.get(kind)
            if model is not None:
                data = dict(body)
                if kind == REACTION:
                    data["removed"] = not data.get("emoji")
                return kind, model.model_validate(data)
    except ValidationError:
        pass
    original = kind
    if kind == UNSUPPORTED and isinstance(body, Mapping) and isinstance(body.get("type"), str):
        original = body["type"]  # Meta names the type it could not deliver (e.g. "edit")
    raw = body if body is not None else {k: v for k, v in message.items() if k not in _ENVELOPE_KEYS} or None
    return kind, UnsupportedContent(type=original, raw=raw, errors=_errors(message))


def content_json(kind: str, message: Mapping[str, Any]) -> dict[str, Any]:
    return parse_content(kind, message)[1].to_json()
