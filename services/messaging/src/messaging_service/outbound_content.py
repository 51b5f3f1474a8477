"""What an attendant asks to send, checked against Meta's limits and turned into Meta's request object (pure).

`parse_outbound(type, content)` reads the type's object of the REST body (`POST /api/messages`: Meta's own shape in
camelCase, reference §5.1) and answers an `OutboundContent`: `meta`, Meta's object for that type in snake_case (what
goes under `"<type>"` in the Graph `/messages` body); `stored`, the camelCase content the message shows; every media
reference (`media_refs`: an Eva upload, `mediaId`, whose Meta media id the sender puts in place of the placeholder
with `with_meta_media_ids`, or a `link`); the template and the reacted message, when there is one; and the inbox
preview. Every limit Meta documents is checked here, before Meta is called, each failure an `InvalidArgument` with a
stable code and a detail naming the field (`image.caption`, `interactive.action.buttons[1].reply.title`, ...). A
key this module does not know is refused (`VALIDATION_FAILED`), so a typo never silently drops content.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from eva_common.errors import InvalidArgument
from pydantic.alias_generators import to_camel

__all__ = ["MESSAGE_TYPES", "MEDIA_KINDS", "MediaRef", "MetaObject", "OutboundContent", "TemplateRef",
           "parse_outbound", "with_meta_media_ids", "with_reaction_wamid"]

TEXT, IMAGE, AUDIO, VIDEO, DOCUMENT, STICKER = "text", "image", "audio", "video", "document", "sticker"
LOCATION, CONTACTS, TEMPLATE, INTERACTIVE, REACTION = "location", "contacts", "template", "interactive", "reaction"
MEDIA_KINDS = frozenset({IMAGE, AUDIO, VIDEO, DOCUMENT, STICKER})
MESSAGE_TYPES = frozenset({TEXT, LOCATION, CONTACTS, TEMPLATE, INTERACTIVE, REACTION} | MEDIA_KINDS)

# Meta's limits (reference §5.1, §7).
TEXT_MAX = 4096
CAPTION_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
BUTTONS_BODY_MAX = 1024
LIST_BODY_MAX = 4096
CTA_BODY_MAX = 1024
FOOTER_MAX = 60
HEADER_TEXT_MAX = 60
SECTIONS_MAX = 10
ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24
LIST_BUTTON_MAX = 20
CTA_DISPLAY_TEXT_MAX = 20
EMOJI_MAX_CODE_POINTS = 10
PREVIEW_LENGTH = 120  # as the inbox cuts inbound text

MetaObject = dict[str, Any] | list[dict[str, Any]]

_TEMPLATE_PARAMETER_TYPES = ("text", "currency", "date_time", "image", "video", "document", "location", "payload",
                             "coupon_code", "action")
_TEMPLATE_COMPONENT_TYPES = ("header", "body", "button", "footer")
_HEADER_TYPES = ("text", IMAGE, VIDEO, DOCUMENT)
# camelCase keys whose snake_case is not the mechanical one; `mediaId` (an Eva upload) becomes Meta's `id`.
_META_KEYS = {"mediaId": "id", "amount1000": "amount_1000"}
# Values passed to Meta exactly as given (a flow's own data).
_OPAQUE_KEYS = frozenset({"flowActionData"})
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


@dataclass(frozen=True, slots=True)
class MediaRef:
    """One media reference of an outbound message: an Eva upload (`upload_id`) or a `link`. `path` leads, in
    `OutboundContent.meta`, to the key that holds it (`("id",)` for the main media, `("header", "image", "id")`,
    `("components", 0, "parameters", 0, "image", "id")`): for an upload, the placeholder to replace with Meta's id."""

    path: tuple[str | int, ...]
    kind: str  # image | audio | video | document | sticker
    upload_id: str | None = None
    link: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateRef:
    name: str
    language: str


@dataclass(frozen=True, slots=True)
class OutboundContent:
    type: str
    meta: MetaObject  # Meta's object for the type, snake_case; uploads still as their Eva ids (see MediaRef)
    stored: dict[str, Any]  # the message's `content` (camelCase); contacts as {"contacts": [...]}
    preview: str
    media_refs: list[MediaRef] = field(default_factory=list)
    template: TemplateRef | None = None
    reaction_target: str | None = None  # the reacted message's Eva id


def _fail(code: str, detail: str) -> NoReturn:
    raise InvalidArgument(detail, code=code)


def _too_long(code: str, path: str, value: str, limit: int) -> None:
    if len(value) > limit:
        _fail(code, f"{path} is {len(value):,} characters long; WhatsApp allows at most {limit:,}")


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


class _Fields:
    """One object of the request: refuses keys it does not allow, reads typed values naming their field."""

    def __init__(self, value: Any, path: str, allowed: Iterable[str]) -> None:
        if not isinstance(value, Mapping):
            _fail("VALIDATION_FAILED", f"{path} must be an object")
        known = frozenset(allowed)
        for key in value:
            if key not in known:
                hint = f" (did you mean {to_camel(str(key))!r}?)" if to_camel(str(key)) in known else ""
                _fail("VALIDATION_FAILED",
                      f"{_join(path, str(key))} is not a field of {path}{hint}; expected one of {sorted(known)}")
        self.value: Mapping[str, Any] = value
        self.path = path

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def has(self, key: str) -> bool:
        return self.value.get(key) is not None

    def text(self, key: str, *, required: bool = False, missing: str = "VALIDATION_FAILED", limit: int | None = None,
             too_long: str = "VALIDATION_FAILED", allow_empty: bool = False) -> str | None:
        value = self.value.get(key)
        if value is None:
            if required:
                _fail(missing, f"{self.at(key)} is required")
            return None
        if not isinstance(value, str):
            _fail("VALIDATION_FAILED", f"{self.at(key)} must be a string")
        if not allow_empty and not value.strip():
            _fail(missing, f"{self.at(key)} must not be empty")
        if limit is not None:
            _too_long(too_long, self.at(key), value, limit)
        return value

    def required_text(self, key: str, **options: Any) -> str:
        value = self.text(key, required=True, **options)
        assert value is not None
        return value

    def flag(self, key: str) -> bool | None:
        value = self.value.get(key)
        if value is not None and not isinstance(value, bool):
            _fail("VALIDATION_FAILED", f"{self.at(key)} must be true or false")
        return value

    def number(self, key: str, *, required: bool = False, code: str = "VALIDATION_FAILED") -> float | int | None:
        value = self.value.get(key)
        if value is None:
            if required:
                _fail(code, f"{self.at(key)} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            _fail(code, f"{self.at(key)} must be a number")
        return value

    def integer(self, key: str) -> int | None:
        value = self.value.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            _fail("VALIDATION_FAILED", f"{self.at(key)} must be an integer")
        return value

    def items(self, key: str, *, required: bool = False, missing: str = "VALIDATION_FAILED") -> list[Any]:
        value = self.value.get(key)
        if value is None:
            if required:
                _fail(missing, f"{self.at(key)} is required")
            return []
        if not isinstance(value, list):
            _fail("VALIDATION_FAILED", f"{self.at(key)} must be a list")
        return value

    def child(self, key: str, allowed: Iterable[str], *, required: bool = False,
              missing: str = "VALIDATION_FAILED") -> _Fields | None:
        value = self.value.get(key)
        if value is None:
            if required:
                _fail(missing, f"{self.at(key)} is required")
            return None
        return _Fields(value, self.at(key), allowed)


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != [] and value != {}}


def _meta_key(key: str) -> str:
    return _META_KEYS.get(key) or _CAMEL_BOUNDARY.sub(r"_\1", key).lower()


def _to_meta(value: Any) -> Any:
    """camelCase keys to Meta's snake_case, recursively (`mediaId` → `id`, `amount1000` → `amount_1000`)."""
    if isinstance(value, Mapping):
        return {_meta_key(key): (copy.deepcopy(item) if key in _OPAQUE_KEYS else _to_meta(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_to_meta(item) for item in value]
    return value


# ------------------------------------------------------------------ media


def _valid_link(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(ch.isspace() for ch in value)


def _media_source(fields: _Fields, kind: str, path: tuple[str | int, ...],
                  refs: list[MediaRef]) -> dict[str, Any]:
    """Exactly one of `mediaId` (an Eva upload id) or `link` (http(s)); records the reference."""
    upload, link = fields.has("mediaId"), fields.has("link")
    if upload == link:
        _fail("MEDIA_SOURCE_REQUIRED", f"{fields.path} needs exactly one of mediaId (an id from POST /api/media) "
                                       "or link (an http(s) URL)")
    if upload:
        raw = fields.value["mediaId"]
        try:
            upload_id = str(uuid.UUID(raw)) if isinstance(raw, str) else None
        except ValueError:
            upload_id = None
        if upload_id is None:
            _fail("INVALID_MEDIA_ID", f"{fields.at('mediaId')} is not an upload id (the id POST /api/media answered)")
        refs.append(MediaRef(path=(*path, "id"), kind=kind, upload_id=upload_id))
        return {"mediaId": upload_id}
    value = fields.required_text("link")
    if not _valid_link(value):
        _fail("INVALID_MEDIA_LINK", f"{fields.at('link')} must be an http(s) URL")
    refs.append(MediaRef(path=(*path, "link"), kind=kind, link=value))
    return {"link": value}


def _media(kind: str, content: Any, refs: list[MediaRef]) -> dict[str, Any]:
    allowed = {"mediaId", "link"}
    if kind in (IMAGE, VIDEO, DOCUMENT):
        allowed.add("caption")
    if kind == DOCUMENT:
        allowed.add("filename")
    if isinstance(content, Mapping) and kind in (AUDIO, STICKER) and content.get("caption") is not None:
        _fail("CAPTION_NOT_ALLOWED", f"{kind}.caption: WhatsApp sends {kind} messages without a caption")
    fields = _Fields(content, kind, allowed)
    source = _media_source(fields, kind, (), refs)
    caption = fields.text("caption", limit=CAPTION_MAX, too_long="CAPTION_TOO_LONG", allow_empty=True)
    filename = fields.text("filename")
    return _clean({**source, "caption": caption or None, "filename": filename})


# ------------------------------------------------------------------ the types


def _text(content: Any) -> dict[str, Any]:
    fields = _Fields(content, TEXT, {"body", "previewUrl"})
    body = fields.required_text("body", missing="TEXT_EMPTY", limit=TEXT_MAX, too_long="TEXT_TOO_LONG")
    return _clean({"body": body, "previewUrl": fields.flag("previewUrl")})


def _location(content: Any) -> dict[str, Any]:
    fields = _Fields(content, LOCATION, {"latitude", "longitude", "name", "address"})
    latitude = fields.number("latitude", required=True, code="INVALID_LOCATION")
    longitude = fields.number("longitude", required=True, code="INVALID_LOCATION")
    assert latitude is not None and longitude is not None
    if not -90 <= latitude <= 90:
        _fail("INVALID_LOCATION", f"location.latitude must be between -90 and 90 (got {latitude})")
    if not -180 <= longitude <= 180:
        _fail("INVALID_LOCATION", f"location.longitude must be between -180 and 180 (got {longitude})")
    return _clean({"latitude": latitude, "longitude": longitude, "name": fields.text("name"),
                   "address": fields.text("address")})


_CONTACT_PARTS: dict[str, tuple[str, frozenset[str]]] = {
    # list field -> (its required key, the keys of each item)
    "phones": ("phone", frozenset({"phone", "type", "waId"})),
    "emails": ("email", frozenset({"email", "type"})),
    "urls": ("url", frozenset({"url", "type"})),
    "addresses": ("", frozenset({"street", "city", "state", "zip", "country", "countryCode", "type"})),
}
_NAME_KEYS = frozenset({"formattedName", "firstName", "lastName", "middleName", "suffix", "prefix"})
_ORG_KEYS = frozenset({"company", "department", "title"})
_BIRTHDAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _strings(fields: _Fields, keys: Iterable[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in keys:
        value = fields.value.get(key)
        if value is not None and not isinstance(value, str):
            _fail("CONTACTS_INVALID", f"{fields.at(key)} must be a string")
        values[key] = value
    return _clean(values)


def _contact(value: Any, path: str) -> dict[str, Any]:
    fields = _Fields(value, path, {"name", "org", "birthday", *_CONTACT_PARTS})
    name = fields.child("name", _NAME_KEYS, required=True, missing="CONTACTS_INVALID")
    assert name is not None
    name.required_text("formattedName", missing="CONTACTS_INVALID")
    contact: dict[str, Any] = {"name": _strings(name, sorted(_NAME_KEYS))}
    for key, (needed, allowed) in _CONTACT_PARTS.items():
        items = []
        for index, item in enumerate(fields.items(key)):
            part = _Fields(item, _join(fields.at(key), index), allowed)
            if needed:
                part.required_text(needed, missing="CONTACTS_INVALID")
            cleaned = _strings(part, sorted(allowed))
            if not cleaned:
                _fail("CONTACTS_INVALID", f"{part.path} is empty")
            items.append(cleaned)
        contact[key] = items
    org = fields.child("org", _ORG_KEYS)
    if org is not None:
        contact["org"] = _strings(org, sorted(_ORG_KEYS))
    birthday = fields.text("birthday", missing="CONTACTS_INVALID")
    if birthday is not None and not _BIRTHDAY.match(birthday):
        _fail("CONTACTS_INVALID", f"{fields.at('birthday')} must be YYYY-MM-DD")
    contact["birthday"] = birthday
    return _clean(contact)


def _contacts(content: Any) -> list[dict[str, Any]]:
    cards = content.get("contacts") if isinstance(content, Mapping) and set(content) == {"contacts"} else content
    if not isinstance(cards, list) or not cards:
        _fail("CONTACTS_INVALID", "contacts must be a non-empty list of contact cards")
    return [_contact(card, f"contacts[{index}]") for index, card in enumerate(cards)]


# ------------------------------------------------------------------ template

_CURRENCY_KEYS = frozenset({"fallbackValue", "code", "amount1000"})
_DATE_TIME_KEYS = frozenset({"fallbackValue", "calendar", "dayOfWeek", "dayOfMonth", "year", "month", "hour",
                             "minute", "timestamp"})


def _template_parameter(value: Any, path: str, meta_path: tuple[str | int, ...],
                        refs: list[MediaRef]) -> dict[str, Any]:
    fields = _Fields(value, path, {"type", "parameterName", "text", "payload", "couponCode", "currency",
                                   "dateTime", "image", "video", "document", "location", "action"})
    kind = fields.required_text("type")
    if kind not in _TEMPLATE_PARAMETER_TYPES:
        _fail("VALIDATION_FAILED", f"{fields.at('type')} must be one of {list(_TEMPLATE_PARAMETER_TYPES)}")
    parameter: dict[str, Any] = {"type": kind, "parameterName": fields.text("parameterName")}
    own = to_camel(kind)  # the key of the parameter's value: text, currency, dateTime, couponCode, ...
    for key in fields.value:
        if key not in ("type", "parameterName", own):
            _fail("VALIDATION_FAILED", f"{fields.at(key)} does not belong to a {kind!r} parameter")
    if kind in ("text", "payload", "coupon_code"):
        parameter[own] = fields.required_text(own, limit=TEXT_MAX, too_long="TEXT_TOO_LONG")
    elif kind == "currency":
        currency = fields.child("currency", _CURRENCY_KEYS, required=True)
        assert currency is not None
        amount = currency.integer("amount1000")
        if amount is None:
            _fail("VALIDATION_FAILED", f"{currency.at('amount1000')} is required (the amount times 1,000)")
        parameter["currency"] = {"fallbackValue": currency.required_text("fallbackValue"),
                                 "code": currency.required_text("code"), "amount1000": amount}
    elif kind == "date_time":
        moment = fields.child("dateTime", _DATE_TIME_KEYS, required=True)
        assert moment is not None
        values: dict[str, Any] = {"fallbackValue": moment.required_text("fallbackValue"),
                                  "calendar": moment.text("calendar")}
        for key in sorted(_DATE_TIME_KEYS - {"fallbackValue", "calendar"}):
            values[key] = moment.integer(key)
        parameter["dateTime"] = _clean(values)
    elif kind in (IMAGE, VIDEO, DOCUMENT):
        media = fields.child(kind, {"mediaId", "link", "filename"} if kind == DOCUMENT else {"mediaId", "link"},
                             required=True)
        assert media is not None
        parameter[kind] = _clean({**_media_source(media, kind, (*meta_path, kind), refs),
                                  "filename": media.text("filename")})
    elif kind == LOCATION:
        parameter[LOCATION] = _location(fields.value.get(LOCATION))
    else:  # action: a flow button's token and data
        action = fields.child("action", {"flowToken", "flowActionData"}, required=True)
        assert action is not None
        data = action.value.get("flowActionData")
        if data is not None and not isinstance(data, Mapping):
            _fail("VALIDATION_FAILED", f"{action.at('flowActionData')} must be an object")
        parameter["action"] = _clean({"flowToken": action.text("flowToken"), "flowActionData": data})
    return _clean(parameter)


def _template(content: Any, refs: list[MediaRef]) -> tuple[dict[str, Any], TemplateRef]:
    fields = _Fields(content, TEMPLATE, {"name", "language", "components"})
    name = fields.required_text("name", missing="TEMPLATE_NAME_REQUIRED", limit=512)
    language = fields.child("language", {"code", "policy"}, required=True, missing="TEMPLATE_LANGUAGE_REQUIRED")
    assert language is not None
    code = language.required_text("code", missing="TEMPLATE_LANGUAGE_REQUIRED")
    components = []
    for index, item in enumerate(fields.items("components")):
        path = f"template.components[{index}]"
        component = _Fields(item, path, {"type", "subType", "index", "parameters"})
        kind = component.required_text("type")
        if kind not in _TEMPLATE_COMPONENT_TYPES:
            _fail("VALIDATION_FAILED", f"{component.at('type')} must be one of {list(_TEMPLATE_COMPONENT_TYPES)}")
        position = component.value.get("index")
        if position is not None and (isinstance(position, bool) or not isinstance(position, int | str)):
            _fail("VALIDATION_FAILED", f"{component.at('index')} must be a number")
        parameters = [
            _template_parameter(parameter, _join(component.at("parameters"), number),
                                ("components", index, "parameters", number), refs)
            for number, parameter in enumerate(component.items("parameters"))
        ]
        components.append(_clean({"type": kind, "subType": component.text("subType"), "index": position,
                                  "parameters": parameters}))
    stored = _clean({"name": name, "language": _clean({"code": code, "policy": language.text("policy")}),
                     "components": components})
    return stored, TemplateRef(name=name, language=code)


# ------------------------------------------------------------------ interactive


def _body_text(fields: _Fields, *, limit: int) -> dict[str, Any]:
    body = fields.child("body", {"text"}, required=True, missing="TEXT_EMPTY")
    assert body is not None
    return {"text": body.required_text("text", missing="TEXT_EMPTY", limit=limit,
                                       too_long="INTERACTIVE_BODY_TOO_LONG")}


def _footer(fields: _Fields) -> dict[str, Any] | None:
    footer = fields.child("footer", {"text"})
    if footer is None:
        return None
    return {"text": footer.required_text("text", limit=FOOTER_MAX, too_long="FOOTER_TOO_LONG")}


def _header(fields: _Fields, refs: list[MediaRef], *, types: Sequence[str]) -> dict[str, Any] | None:
    header = fields.child("header", {"type", "text", IMAGE, VIDEO, DOCUMENT})
    if header is None:
        return None
    kind = header.required_text("type")
    if kind not in types:
        _fail("VALIDATION_FAILED", f"{header.at('type')} must be one of {list(types)}")
    for key in header.value:
        if key not in ("type", kind):
            _fail("VALIDATION_FAILED", f"{header.at(key)} does not belong to a {kind!r} header")
    if kind == "text":
        return {"type": kind, "text": header.required_text("text", limit=HEADER_TEXT_MAX, too_long="HEADER_TOO_LONG")}
    media = header.child(kind, {"mediaId", "link", "filename"} if kind == DOCUMENT else {"mediaId", "link"},
                         required=True)
    assert media is not None
    return {"type": kind, kind: _clean({**_media_source(media, kind, ("header", kind), refs),
                                        "filename": media.text("filename")})}


def _reply_buttons(action: _Fields) -> dict[str, Any]:
    buttons = action.items("buttons", required=True, missing="TOO_MANY_BUTTONS")
    if not 1 <= len(buttons) <= BUTTONS_MAX:
        _fail("TOO_MANY_BUTTONS", f"{action.at('buttons')} has {len(buttons)} buttons; reply buttons are 1 to "
                                  f"{BUTTONS_MAX}")
    out, titles, ids = [], set(), set()
    for index, item in enumerate(buttons):
        button = _Fields(item, _join(action.at("buttons"), index), {"type", "reply"})
        if button.text("type") not in (None, "reply"):
            _fail("VALIDATION_FAILED", f"{button.at('type')} must be 'reply'")
        reply = button.child("reply", {"id", "title"}, required=True)
        assert reply is not None
        title = reply.required_text("title", limit=BUTTON_TITLE_MAX, too_long="BUTTON_TITLE_TOO_LONG")
        button_id = reply.required_text("id", limit=BUTTON_ID_MAX, too_long="BUTTON_ID_TOO_LONG")
        if title in titles:
            _fail("DUPLICATE_BUTTON_TITLE", f"{reply.at('title')} {title!r} is used by another button")
        if button_id in ids:
            _fail("VALIDATION_FAILED", f"{reply.at('id')} {button_id!r} is used by another button")
        titles.add(title)
        ids.add(button_id)
        out.append({"type": "reply", "reply": {"id": button_id, "title": title}})
    return {"buttons": out}


def _list_action(action: _Fields) -> dict[str, Any]:
    button = action.required_text("button", limit=LIST_BUTTON_MAX, too_long="LIST_BUTTON_TOO_LONG")
    sections = action.items("sections", required=True)
    if not sections:
        _fail("VALIDATION_FAILED", f"{action.at('sections')} needs at least one section")
    if len(sections) > SECTIONS_MAX:
        _fail("TOO_MANY_SECTIONS", f"{action.at('sections')} has {len(sections)} sections; at most {SECTIONS_MAX}")
    out, row_ids, total = [], set(), 0
    for index, item in enumerate(sections):
        section = _Fields(item, _join(action.at("sections"), index), {"title", "rows"})
        title = section.text("title", required=len(sections) > 1, limit=SECTION_TITLE_MAX,
                             too_long="SECTION_TITLE_TOO_LONG")
        rows = section.items("rows", required=True)
        if not rows:
            _fail("VALIDATION_FAILED", f"{section.at('rows')} needs at least one row")
        total += len(rows)
        if total > ROWS_MAX:
            _fail("TOO_MANY_ROWS", f"{action.at('sections')} has more than {ROWS_MAX} rows in total")
        out_rows = []
        for number, row_value in enumerate(rows):
            row = _Fields(row_value, _join(section.at("rows"), number), {"id", "title", "description"})
            row_id = row.required_text("id", limit=ROW_ID_MAX, too_long="ROW_ID_TOO_LONG")
            if row_id in row_ids:
                _fail("VALIDATION_FAILED", f"{row.at('id')} {row_id!r} is used by another row")
            row_ids.add(row_id)
            out_rows.append(_clean({
                "id": row_id, "title": row.required_text("title", limit=ROW_TITLE_MAX, too_long="ROW_TITLE_TOO_LONG"),
                "description": row.text("description", limit=ROW_DESCRIPTION_MAX,
                                        too_long="ROW_DESCRIPTION_TOO_LONG")}))
        out.append(_clean({"title": title, "rows": out_rows}))
    return {"button": button, "sections": out}


def _cta_action(action: _Fields) -> dict[str, Any]:
    if action.text("name") not in (None, "cta_url"):
        _fail("VALIDATION_FAILED", f"{action.at('name')} must be 'cta_url'")
    parameters = action.child("parameters", {"displayText", "url"}, required=True, missing="INVALID_CTA_URL")
    assert parameters is not None
    display = parameters.required_text("displayText", limit=CTA_DISPLAY_TEXT_MAX, too_long="BUTTON_TITLE_TOO_LONG")
    url = parameters.required_text("url", missing="INVALID_CTA_URL")
    if not _valid_link(url):
        _fail("INVALID_CTA_URL", f"{parameters.at('url')} must be an http(s) URL")
    return {"name": "cta_url", "parameters": {"displayText": display, "url": url}}


_INTERACTIVE: dict[str, tuple[int, Sequence[str], frozenset[str], Callable[[_Fields], dict[str, Any]]]] = {
    # type -> (body limit, header types, action keys, action reader)
    "button": (BUTTONS_BODY_MAX, _HEADER_TYPES, frozenset({"buttons"}), _reply_buttons),
    "list": (LIST_BODY_MAX, ("text",), frozenset({"button", "sections"}), _list_action),
    "cta_url": (CTA_BODY_MAX, _HEADER_TYPES, frozenset({"name", "parameters"}), _cta_action),
}


def _interactive(content: Any, refs: list[MediaRef]) -> dict[str, Any]:
    fields = _Fields(content, INTERACTIVE, {"type", "header", "body", "footer", "action"})
    kind = fields.required_text("type")
    if kind not in _INTERACTIVE:
        _fail("UNSUPPORTED_MESSAGE_TYPE", f"interactive.type must be one of {sorted(_INTERACTIVE)} (got {kind!r})")
    body_limit, header_types, action_keys, read_action = _INTERACTIVE[kind]
    header = _header(fields, refs, types=header_types)
    body = _body_text(fields, limit=body_limit)
    footer = _footer(fields)
    action = fields.child("action", action_keys, required=True)
    assert action is not None
    return _clean({"type": kind, "header": header, "body": body, "footer": footer, "action": read_action(action)})


# ------------------------------------------------------------------ reaction


def _reaction(content: Any) -> tuple[dict[str, Any], str]:
    fields = _Fields(content, REACTION, {"messageId", "emoji"})
    target = fields.required_text("messageId", missing="REACTION_TARGET_REQUIRED")
    emoji = fields.value.get("emoji")
    if not isinstance(emoji, str):
        _fail("EMOJI_INVALID", "reaction.emoji is required: one emoji, or \"\" to remove the reaction")
    if emoji and (not emoji.strip() or len(emoji) > EMOJI_MAX_CODE_POINTS
                  or any(ch.isascii() and (ch.isalnum() or ch.isspace()) for ch in emoji)):
        _fail("EMOJI_INVALID", "reaction.emoji must be one emoji, or \"\" to remove the reaction")
    return {"messageId": target, "emoji": emoji}, target


# ------------------------------------------------------------------ entry points


def _preview(kind: str, stored: Mapping[str, Any]) -> str:
    if kind == TEXT:
        return str(stored["body"])[:PREVIEW_LENGTH]
    if kind == INTERACTIVE:
        return str(stored["body"]["text"])[:PREVIEW_LENGTH]
    return f"[{kind}]"


def parse_outbound(type: str, content: Mapping[str, Any] | Sequence[Any] | None) -> OutboundContent:  # noqa: A002
    """The checked content of an outbound message of `type` (the REST body's `<type>` object, camelCase).
    InvalidArgument (with the codes of this module's docstring) when WhatsApp would refuse it."""
    if type not in MESSAGE_TYPES:
        _fail("UNSUPPORTED_MESSAGE_TYPE", f"type must be one of {sorted(MESSAGE_TYPES)} (got {type!r})")
    if type == CONTACTS:
        if content is None or isinstance(content, str | bytes):
            _fail("CONTENT_REQUIRED", "contacts (a list of contact cards) is required for a contacts message")
        cards = _contacts(content)
        return OutboundContent(type=type, meta=_to_meta(cards), stored={"contacts": cards}, preview="[contacts]")
    if not isinstance(content, Mapping):
        _fail("CONTENT_REQUIRED", f"{type} (an object) is required for a {type} message")
    refs: list[MediaRef] = []
    template: TemplateRef | None = None
    target: str | None = None
    if type == TEXT:
        stored = _text(content)
    elif type in MEDIA_KINDS:
        stored = _media(type, content, refs)
    elif type == LOCATION:
        stored = _location(content)
    elif type == TEMPLATE:
        stored, template = _template(content, refs)
    elif type == INTERACTIVE:
        stored = _interactive(content, refs)
    else:
        stored, target = _reaction(content)
    meta = _to_meta(stored)
    if type == REACTION and not stored["emoji"]:
        stored = {**stored, "removed": True}
    return OutboundContent(type=type, meta=meta, stored=stored, preview=_preview(type, stored), media_refs=refs,
                           template=template, reaction_target=target)


def _resolve(value: Any, path: tuple[str | int, ...]) -> tuple[Any, str | int]:
    for key in path[:-1]:
        value = value[key]
    return value, path[-1]


def with_meta_media_ids(meta: MetaObject, ids: Mapping[str, str], *,
                        refs: Iterable[MediaRef] | None = None) -> MetaObject:
    """A copy of `meta` with each Eva upload id replaced by Meta's media id (`ids`: upload id → Meta's id). `refs`
    (the content's media_refs) names the places; without it, Meta's media objects are found where this module
    puts them (the object itself for a media type, and every `image`/`video`/`document`/`audio`/`sticker`
    object inside). ValueError when an upload has no Meta id in `ids`."""
    result = copy.deepcopy(meta)
    places: list[tuple[Any, str | int]] = []
    if refs is not None:
        places = [_resolve(result, ref.path) for ref in refs if ref.upload_id is not None]
    else:
        def walk(value: Any, media: bool) -> None:
            if isinstance(value, dict):
                if media and isinstance(value.get("id"), str):
                    places.append((value, "id"))
                for key, item in value.items():
                    walk(item, key in MEDIA_KINDS)
            elif isinstance(value, list):
                for item in value:
                    walk(item, False)

        walk(result, True)  # only a media type's own object has an `id` at the top
    for container, key in places:
        upload_id = container[key]
        if upload_id not in ids:
            raise ValueError(f"no Meta media id for upload {upload_id}")
        container[key] = ids[upload_id]
    return result


def with_reaction_wamid(meta: MetaObject, wamid: str) -> dict[str, Any]:
    """A reaction's Meta object aimed at the reacted message's wamid (the parse leaves its Eva id there)."""
    if not isinstance(meta, dict) or "message_id" not in meta:
        raise ValueError("not a reaction's Meta object")
    return {**meta, "message_id": wamid}
