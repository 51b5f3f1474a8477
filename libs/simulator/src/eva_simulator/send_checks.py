"""Send checks that need the simulator's registries: templates (reference §5.4, §8), BSUID recipients (§12)
and media ids (§6). :mod:`eva_simulator.validation` checks the shape of a body; this module checks what it
names. Each check raises Meta's :class:`GraphError` or returns what the send needs to know.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eva_simulator.errors import invalid_parameter, whatsapp_error
from eva_simulator.state import AsyncFailure, BusinessNumber, SimulatorState, Template
from eva_simulator.validation import MessageSend

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
HEADER_MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
MB = 1024 * 1024


# --- media kinds (reference §6) ----------------------------------------------------------------------


@dataclass(frozen=True)
class MediaKind:
    """One of Meta's media kinds: which MIME types it takes and how large a file may be."""

    name: str
    max_bytes: int
    accepts: Callable[[str], bool]


def _one_of(*types: str) -> Callable[[str], bool]:
    return lambda mime: mime in types


def _document(mime: str) -> bool:
    return mime in ("text/plain", "application/pdf", "application/msword") or mime.startswith(
        ("application/vnd.ms-", "application/vnd.openxmlformats-officedocument.")
    )


MEDIA_KINDS: tuple[MediaKind, ...] = (
    MediaKind("image", 5 * MB, _one_of("image/jpeg", "image/png")),
    MediaKind("audio", 16 * MB, _one_of("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg")),
    MediaKind("video", 16 * MB, _one_of("video/mp4", "video/3gpp")),
    MediaKind("document", 100 * MB, _document),
    MediaKind("sticker", 500 * 1024, _one_of("image/webp")),
)
MAX_UPLOAD_BYTES = max(kind.max_bytes for kind in MEDIA_KINDS)

# Which uploaded kinds a message type can carry: any media goes as a document; otherwise kinds must match.
SENDABLE_AS: dict[str, frozenset[str]] = {
    "image": frozenset({"image"}),
    "audio": frozenset({"audio"}),
    "video": frozenset({"video"}),
    "sticker": frozenset({"sticker"}),
    "document": frozenset({"document", "image", "audio", "video"}),
}


def bare_mime(mime_type: str) -> str:
    """``audio/ogg; codecs=opus`` → ``audio/ogg``."""
    return mime_type.split(";", 1)[0].strip().lower()


def media_kind(mime_type: str) -> MediaKind | None:
    mime = bare_mime(mime_type)
    return next((kind for kind in MEDIA_KINDS if kind.accepts(mime)), None)


def _uploaded_media_kind(state: SimulatorState, phone_number_id: str, path: str, media_id: Any) -> str | None:
    """The kind of the media ``media_id`` uploaded by this number; 100 when it names no such media."""
    media = state.get_media(str(media_id))
    if media is None or media.phone_number_id != phone_number_id:
        raise invalid_parameter(
            f"Param {path}['id'] ({media_id}) is not a valid media ID uploaded by this phone number."
        )
    kind = media_kind(media.mime_type)
    return None if kind is None else kind.name


def check_media(state: SimulatorState, phone_number_id: str, send: MessageSend) -> AsyncFailure | None:
    """A media send by ``id`` must name this number's media (else 100); media of the wrong kind is accepted
    and fails afterwards with 131053 (reference §6)."""
    if send.type not in SENDABLE_AS:
        return None
    content = send.body.get(send.type)
    if not isinstance(content, Mapping) or content.get("id") is None:
        return None
    media_id = content["id"]
    kind = _uploaded_media_kind(state, phone_number_id, send.type, media_id)
    if kind not in SENDABLE_AS[send.type]:
        media = state.get_media(str(media_id))
        mime = media.mime_type if media is not None else "unknown"
        return AsyncFailure(code=131053, details=f"Unsupported {send.type} mime type {mime} for media {media_id}.")
    return None


# --- templates (reference §5.4) -------------------------------------------------------------------------


def placeholders(text: str | None) -> list[str]:
    """The distinct ``{{1}}`` / ``{{name}}`` placeholders of a template text, in order."""
    found: list[str] = []
    for name in PLACEHOLDER.findall(text or ""):
        if name not in found:
            found.append(name)
    return found


def _component(template: Template, kind: str) -> Mapping[str, Any] | None:
    return next((item for item in template.components if str(item.get("type", "")).upper() == kind), None)


def _sent_parameters(components: Sequence[Any], kind: str) -> list[Mapping[str, Any]]:
    params: list[Mapping[str, Any]] = []
    for item in components:
        if isinstance(item, Mapping) and str(item.get("type", "")).lower() == kind:
            given = item.get("parameters") or []
            if not isinstance(given, list) or not all(isinstance(param, Mapping) for param in given):
                raise invalid_parameter(
                    f"Param template['components'][{kind}]['parameters'] must be an array of objects."
                )
            params.extend(given)
    return params


def _count_mismatch(part: str, given: int, expected: int) -> None:
    if given != expected:
        raise whatsapp_error(
            132000,
            details=f"{part}: number of localizable_params ({given}) does not match the expected number of params "
            f"({expected})",
        )


def _check_body(template: Template, components: Sequence[Any]) -> None:
    body = _component(template, "BODY")
    expected = placeholders(body.get("text") if body is not None else None)
    given = _sent_parameters(components, "body")
    _count_mismatch("body", len(given), len(expected))
    if template.parameter_format != "NAMED":
        return
    seen: set[str] = set()
    for param in given:
        name = param.get("parameter_name")
        if not isinstance(name, str) or name not in expected or name in seen:
            raise whatsapp_error(
                132000,
                details=f"body: parameter_name ({name}) does not match a named param of the template "
                f"({', '.join(expected)})",
            )
        seen.add(name)


def _check_header(state: SimulatorState, phone_number_id: str, template: Template, components: Sequence[Any]) -> None:
    header = _component(template, "HEADER")
    given = _sent_parameters(components, "header")
    header_format = str(header.get("format", "TEXT")).upper() if header is not None else None
    if header_format in HEADER_MEDIA_FORMATS or header_format == "LOCATION":
        wanted = str(header_format).lower()
        param = given[0] if len(given) == 1 else None
        media = param.get(wanted) if param is not None and param.get("type") == wanted else None
        if not isinstance(media, Mapping) or (
            wanted != "location" and media.get("id") is None and media.get("link") is None
        ):
            raise whatsapp_error(132012, details=f"header: Format mismatch, expected {header_format}")
        if wanted != "location" and media.get("id") is not None:
            _uploaded_media_kind(state, phone_number_id, f"header {wanted}", media["id"])
        return
    expected = placeholders(header.get("text") if header is not None else None)
    if expected:
        if len(given) != len(expected) or any(param.get("type") != "text" for param in given):
            raise whatsapp_error(132012, details="header: Format mismatch, expected TEXT")
        return
    _count_mismatch("header", len(given), 0)


def _check_buttons(template: Template, components: Sequence[Any]) -> None:
    buttons_component = _component(template, "BUTTONS")
    buttons = list(buttons_component.get("buttons") or []) if buttons_component is not None else []
    for item in components:
        if not isinstance(item, Mapping) or str(item.get("type", "")).lower() != "button":
            continue
        sub_type = str(item.get("sub_type", ""))
        index = item.get("index")
        try:
            position = int(index)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise invalid_parameter("Param template['components'][button]['index'] must be an integer.") from None
        button = buttons[position] if 0 <= position < len(buttons) else None
        kind = str(button.get("type", "")).replace("_", "").lower() if isinstance(button, Mapping) else None
        if kind is None or kind != sub_type.replace("_", "").lower():
            raise whatsapp_error(
                131009, details=f"buttons: Button at index {index} of type {sub_type} does not exist in the template"
            )
        if (
            kind == "url"
            and isinstance(button, Mapping)
            and placeholders(button.get("url"))
            and not item.get("parameters")
        ):
            raise whatsapp_error(131008, details=f"buttons: Button at index {index} of type Url requires a parameter")


def check_template(state: SimulatorState, number: BusinessNumber, send: MessageSend) -> Template:
    """The approved template a send names, after Meta's checks (132001, 132015, 132016, 132000, 132012,
    131062 for authentication templates to a BSUID)."""
    content = send.body["template"]
    name, language = content["name"], content["language"]["code"]
    template = state.find_template(number.waba_id, name, language)
    if template is None or template.status not in ("APPROVED", "PAUSED", "DISABLED"):
        raise whatsapp_error(132001, details=f"template name ({name}) does not exist in {language}")
    if template.status == "PAUSED":
        raise whatsapp_error(132015)
    if template.status == "DISABLED":
        raise whatsapp_error(132016)
    if template.category == "AUTHENTICATION" and send.user_id is not None:
        raise whatsapp_error(131062)
    components = content.get("components") or []
    _check_header(state, number.phone_number_id, template, components)
    _check_body(template, components)
    _check_buttons(template, components)
    return template
