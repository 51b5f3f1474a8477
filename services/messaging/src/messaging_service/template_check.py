"""The template check before a send: the template must be synced in that language, APPROVED, and the send's
components (Meta's snake_case shape: `type`, `sub_type`, `index`, `parameters`) must fill exactly its placeholders —
what Meta would otherwise refuse with 132001 / 132000 (reference §5.1, §5.4, §8). Pure, except `template_for_send`
(one read in the caller's tenant transaction)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from eva_common.errors import FailedPrecondition, InvalidArgument, NotFound
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.models import Template
from messaging_service.templates import TemplateRepository

APPROVED = "APPROVED"
NAMED = "NAMED"
MEDIA_HEADERS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})
# A button component of a send (sub_type) fills a button of these types of the template: URL buttons (their
# dynamic suffix), quick replies (their payload); one-time-password and copy-code buttons take their code the same way.
BUTTON_KINDS: Mapping[str, frozenset[str]] = {
    "url": frozenset({"URL", "OTP"}),
    "quick_reply": frozenset({"QUICK_REPLY"}),
    "copy_code": frozenset({"COPY_CODE"}),
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def _mismatch(detail: str) -> InvalidArgument:
    return InvalidArgument(detail, code="TEMPLATE_PARAMS_MISMATCH")


def placeholders(text: object) -> list[str]:
    """The distinct placeholders of a template text (`{{1}}`, `{{name}}`), in order of appearance."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text))) if isinstance(text, str) else []


def _params(component: Mapping[str, Any]) -> list[dict[str, Any]]:
    parameters = component.get("parameters")
    return [p for p in parameters if isinstance(p, dict)] if isinstance(parameters, list) else []


def _of_type(components: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [c for c in components if str(c.get("type", "")).lower() == kind]


def _template_part(template: Template, kind: str) -> Mapping[str, Any] | None:
    found = _of_type(template.components or [], kind)
    return found[0] if found else None


def check_template_send(
    template: Template | None, *, name: str, language: str, components: list[dict[str, Any]]
) -> None:
    """Raises TEMPLATE_NOT_FOUND (NotFound: not synced, or not in that language), TEMPLATE_NOT_APPROVED
    (FailedPrecondition: its status and Meta's reason), TEMPLATE_PARAMS_MISMATCH (InvalidArgument: which component
    does not match); returns when Meta should accept the send."""
    if template is None or template.name != name or template.language != language:
        raise NotFound(f"no template {name!r} in language {language!r} (synced from WhatsApp)",
                       code="TEMPLATE_NOT_FOUND")
    if (template.status or "").upper() != APPROVED:
        detail = f"template {name!r} ({language}) is {template.status or 'UNKNOWN'}, not APPROVED"
        if template.rejected_reason:
            detail += f"; Meta's reason: {template.rejected_reason}"
        raise FailedPrecondition(detail, code="TEMPLATE_NOT_APPROVED")
    given = [c for c in components if isinstance(c, dict)]
    for component in given:
        kind = str(component.get("type", "")).lower()
        if kind not in ("header", "body", "button"):
            raise _mismatch(f"component type {component.get('type')!r}: only header, body and button take "
                            f"parameters")
    named = (template.parameter_format or "").upper() == NAMED
    _check_header(template, _of_type(given, "header"), named=named)
    _check_body(template, _of_type(given, "body"), named=named)
    _check_buttons(template, _of_type(given, "button"))


def _check_body(template: Template, given: list[Mapping[str, Any]], *, named: bool) -> None:
    if len(given) > 1:
        raise _mismatch("body: give one body component")
    body = _template_part(template, "body")
    wanted = placeholders(body.get("text") if body else None)
    params = _params(given[0]) if given else []
    if named:
        _check_named("body", wanted, params)
        return
    if len(params) != len(wanted):
        shown = ", ".join(f"{{{{{p}}}}}" for p in wanted) or "none"
        raise _mismatch(f"body: the template has {len(wanted)} placeholder(s) ({shown}), {len(params)} parameter(s) "
                        f"given")


def _check_named(part: str, wanted: list[str], params: list[dict[str, Any]]) -> None:
    names = [p.get("parameter_name") for p in params]
    if any(not isinstance(n, str) or not n for n in names):
        raise _mismatch(f"{part}: the template uses NAMED parameters; give each parameter its parameter_name")
    unknown = [n for n in names if n not in wanted]
    if unknown:
        raise _mismatch(f"{part}: no placeholder {{{{{unknown[0]}}}}} in the template (it has "
                        f"{', '.join(f'{{{{{w}}}}}' for w in wanted) or 'none'})")
    missing = [w for w in wanted if w not in names]
    if missing or len(names) != len(set(names)):
        what = f"{{{{{missing[0]}}}}} has no parameter" if missing else "a parameter_name is given twice"
        raise _mismatch(f"{part}: {what}")


def _check_header(template: Template, given: list[Mapping[str, Any]], *, named: bool) -> None:
    if len(given) > 1:
        raise _mismatch("header: give one header component")
    header = _template_part(template, "header")
    params = _params(given[0]) if given else []
    if header is None:
        if params:
            raise _mismatch("header: the template has no header, yet header parameters are given")
        return
    fmt = str(header.get("format", "TEXT")).upper()
    if fmt in MEDIA_HEADERS or fmt == "LOCATION":
        kind = fmt.lower()
        if len(params) != 1 or str(params[0].get("type", "")).lower() != kind:
            raise _mismatch(f"header: the template's {fmt} header needs one {kind} parameter")
        media = params[0].get(kind)
        if fmt in MEDIA_HEADERS and not (isinstance(media, dict) and (media.get("link") or media.get("id"))):
            raise _mismatch(f"header: the {kind} parameter needs a link or an id")
        return
    wanted = placeholders(header.get("text"))
    if not wanted:
        if params:
            raise _mismatch("header: the template's header has no placeholder, yet header parameters are given")
        return
    if len(params) != 1 or str(params[0].get("type", "text")).lower() != "text":
        raise _mismatch(f"header: the template's text header has a placeholder ({{{{{wanted[0]}}}}}); give one text "
                        f"parameter")
    if named:
        _check_named("header", wanted, params)


def _check_buttons(template: Template, given: list[Mapping[str, Any]]) -> None:
    part = _template_part(template, "buttons")
    raw_buttons = part.get("buttons") if part else None
    buttons = [b for b in raw_buttons if isinstance(b, dict)] if isinstance(raw_buttons, list) else []
    filled: set[int] = set()
    for component in given:
        index = _index(component.get("index"))
        if index is None or not 0 <= index < len(buttons):
            raise _mismatch(f"button: index {component.get('index')!r} is not a button of the template "
                            f"({len(buttons)} button(s))")
        button_type = str(buttons[index].get("type", "")).upper()
        sub_type = str(component.get("sub_type", "")).lower()
        accepted = BUTTON_KINDS.get(sub_type)
        if accepted is None or button_type not in accepted:
            raise _mismatch(f"button {index}: the template's button is {button_type or 'unknown'}; "
                            f"sub_type {component.get('sub_type')!r} does not fill it (URL and quick-reply buttons "
                            f"take parameters)")
        if index in filled:
            raise _mismatch(f"button {index}: given twice")
        filled.add(index)
        if button_type == "URL" and placeholders(buttons[index].get("url")) and len(_params(component)) != 1:
            raise _mismatch(f"button {index}: the URL button's dynamic URL needs one text parameter")
    for index, button in enumerate(buttons):
        if str(button.get("type", "")).upper() == "URL" and placeholders(button.get("url")) and index not in filled:
            raise _mismatch(f"button {index}: the URL button has a dynamic URL; give its parameter (sub_type url, "
                            f"index {index})")


def _index(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


async def template_for_send(session: AsyncSession, *, tenant_id: str, name: str, language: str) -> Template | None:
    """The stored template a send names (in the caller's tenant transaction), or None."""
    return await TemplateRepository(session).by_name(tenant_id=tenant_id, name=name, language=language)
