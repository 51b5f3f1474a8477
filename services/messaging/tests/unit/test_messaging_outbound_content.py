"""outbound_content: Meta's own request bodies (reference §5.1, keys turned camelCase, Meta's media ids turned into
Eva upload ids) come out as exactly Meta's snake_case objects once the uploads' Meta ids are put back; every limit
is refused before Meta is called, with its stable code and the field named."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import pytest
from eva_common.errors import InvalidArgument
from messaging_service.outbound_content import (
    MediaRef,
    TemplateRef,
    parse_outbound,
    with_meta_media_ids,
    with_reaction_wamid,
)

UPLOAD = str(uuid.uuid4())
MEDIA_KEYS = {"image", "video", "document", "audio", "sticker"}


def camel(value: Any, *, media: bool = False, ids: dict[str, str] | None = None) -> Any:
    """Meta's snake_case body as the REST API takes it: camelCase keys; in a media object, Meta's `id` becomes an
    Eva upload id (`ids` maps it back to Meta's)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if media and key == "id" and ids is not None:
                upload = str(uuid.uuid4())
                ids[upload] = item
                out["mediaId"] = upload
                continue
            name = "amount1000" if key == "amount_1000" else re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
            out[name] = camel(item, media=key in MEDIA_KEYS, ids=ids)
        return out
    if isinstance(value, list):
        return [camel(item, ids=ids) for item in value]
    return value


def round_trip(body: dict[str, Any]) -> None:
    """Meta's request body → REST content → parse → Meta ids back → exactly Meta's object."""
    kind = body["type"]
    ids: dict[str, str] = {}
    content = camel(body[kind], media=kind in MEDIA_KEYS, ids=ids)
    parsed = parse_outbound(kind, content)
    assert {ref.upload_id for ref in parsed.media_refs if ref.upload_id} == set(ids)
    assert with_meta_media_ids(parsed.meta, ids) == body[kind]
    assert with_meta_media_ids(parsed.meta, ids, refs=parsed.media_refs) == body[kind]


def refused(kind: str, content: Any) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        parse_outbound(kind, content)
    return caught.value.code, caught.value.detail


# ------------------------------------------------------------------ Meta's own bodies (reference §5.1)

META_BODIES: list[dict[str, Any]] = [
    {"type": "text", "text": {"preview_url": True, "body": "As requested, here's the link to our latest product: "
                                                           "https://www.meta.com/quest/quest-3/"}},
    {"type": "text", "text": {"body": "<TEXT_MSG_CONTENT>", "preview_url": False}},
    {"type": "image", "image": {"id": "1479537139650973", "caption": "The best succulent ever?"}},
    {"type": "image", "image": {"link": "https://image-url"}},
    {"type": "audio", "audio": {"id": "<AUDIO_OBJECT_ID>"}},
    {"type": "audio", "audio": {"link": "https://audio-url"}},
    {"type": "video", "video": {"caption": "<VIDEO_CAPTION_TEXT>", "id": "<VIDEO_OBJECT_ID>"}},
    {"type": "video", "video": {"caption": "<VIDEO_CAPTION_TEXT>", "link": "http://video-url"}},
    {"type": "document", "document": {"caption": "<DOCUMENT_CAPTION_TO_SEND>", "filename": "<DOCUMENT_FILENAME>",
                                      "id": "<DOCUMENT_OBJECT_ID>"}},
    {"type": "document", "document": {"caption": "<DOCUMENT-CAPTION-TEXT>", "link": "https://document-url"}},
    {"type": "sticker", "sticker": {"id": "<MEDIA_OBJECT_ID>"}},
    {"type": "template", "template": {"language": {"code": "en_US"}, "name": "hello_world"}},
    {"type": "template", "template": {
        "components": [
            {"parameters": [{"image": {"link": "https://the-image-url"}, "type": "image"}], "type": "header"},
            {"parameters": [
                {"text": "text-string", "type": "text"},
                {"currency": {"amount_1000": 100990, "code": "USD", "fallback_value": "$100.99"}, "type": "currency"},
                {"date_time": {"calendar": "GREGORIAN", "day_of_month": 25, "day_of_week": 5,
                               "fallback_value": "February 25, 1977", "hour": 15, "minute": 33, "month": 2,
                               "year": 1977}, "type": "date_time"}],
             "type": "body"},
            {"index": "0", "parameters": [{"payload": "aGlzIHRoaXMgaXMgY29v", "type": "payload"}],
             "sub_type": "quick_reply", "type": "button"},
            {"index": "1", "parameters": [{"payload": "9rwnB8RbYmPF5t2Mn09x4h", "type": "payload"}],
             "sub_type": "quick_reply", "type": "button"}],
        "language": {"code": "language-and-locale-code"}, "name": "template-name"}},
    {"type": "template", "template": {"name": "wedding_pre_invite_1", "language": {"code": "en_US"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Madhav Sharma", "parameter_name": "name"}]}]}},
    {"type": "template", "template": {"name": "invoice", "language": {"code": "pt_BR"}, "components": [
        {"type": "header", "parameters": [{"type": "document", "document": {"id": "889", "filename": "a.pdf"}}]}]}},
    {"type": "interactive", "interactive": {
        "type": "button", "header": {"type": "image", "image": {"id": "2762702990552401"}},
        "body": {"text": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow. Use the buttons if you "
                         "need to reschedule. Thank you!"},
        "footer": {"text": "Lucky Shrub: Your gateway to succulents!™"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                               {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}}]}}},
    {"type": "interactive", "interactive": {
        "type": "list", "header": {"type": "text", "text": "Choose Shipping Option"},
        "body": {"text": "Which shipping option do you prefer?"},
        "footer": {"text": "Lucky Shrub: Your gateway to succulents™"},
        "action": {"button": "Shipping Options", "sections": [
            {"title": "I want it ASAP!", "rows": [
                {"id": "priority_express", "title": "Priority Mail Express", "description": "Next Day to 2 Days"},
                {"id": "priority_mail", "title": "Priority Mail", "description": "1–3 Days"}]},
            {"title": "I can wait a bit", "rows": [
                {"id": "usps_ground_advantage", "title": "USPS Ground Advantage", "description": "2–5 Days"},
                {"id": "media_mail", "title": "Media Mail", "description": "2–8 Days"}]}]}}},
    {"type": "interactive", "interactive": {
        "type": "cta_url", "header": {"type": "text", "text": "Your booking"},
        "body": {"text": "Tap below to see your reservation."}, "footer": {"text": "Hotel Eva"},
        "action": {"name": "cta_url", "parameters": {"display_text": "See booking",
                                                     "url": "https://hotel.example/booking?id=1"}}}},
    {"type": "location", "location": {"latitude": 37.44216251868683, "longitude": -122.16153582049394,
                                      "name": "Philz Coffee", "address": "101 Forest Ave, Palo Alto, CA 94301"}},
    {"type": "contacts", "contacts": [{
        "name": {"first_name": "Lucía", "last_name": "Gómez", "formatted_name": "Lucía Gómez"},
        "org": {"company": "Google"},
        "phones": [{"phone": "+1 (983) 555-2319", "wa_id": "19835552319", "type": "MOBILE"}],
        "emails": [{"email": "lucia@example.com", "type": "WORK"}],
        "urls": [{"url": "https://example.com", "type": "WORK"}],
        "addresses": [{"street": "1 Hacker Way", "city": "Menlo Park", "state": "CA", "zip": "94025",
                       "country": "United States", "country_code": "us", "type": "WORK"}],
        "birthday": "1990-07-15"}]},
    {"type": "reaction", "reaction": {"message_id": "0192f0c4-0000-7000-8000-000000000001", "emoji": "\U0001F600"}},
]


@pytest.mark.parametrize("body", META_BODIES, ids=lambda body: body["type"])
def test_meta_bodies_round_trip_exactly(body: dict[str, Any]) -> None:
    round_trip(body)


def test_text_stored_preview_and_no_refs() -> None:
    parsed = parse_outbound("text", {"body": "Olá! " * 40, "previewUrl": True})
    assert parsed.meta == {"body": "Olá! " * 40, "preview_url": True}
    assert parsed.stored == {"body": "Olá! " * 40, "previewUrl": True}
    assert parsed.preview == ("Olá! " * 40)[:120] and parsed.media_refs == [] and parsed.template is None


def test_media_upload_is_a_placeholder_until_meta_ids_are_known() -> None:
    parsed = parse_outbound("document", {"mediaId": UPLOAD.upper(), "caption": "Invoice", "filename": "a.pdf"})
    assert parsed.meta == {"id": UPLOAD, "caption": "Invoice", "filename": "a.pdf"}
    assert parsed.stored == {"mediaId": UPLOAD, "caption": "Invoice", "filename": "a.pdf"}
    assert parsed.media_refs == [MediaRef(path=("id",), kind="document", upload_id=UPLOAD)]
    assert parsed.preview == "[document]"
    assert with_meta_media_ids(parsed.meta, {UPLOAD: "9988"}) == {"id": "9988", "caption": "Invoice",
                                                                  "filename": "a.pdf"}
    assert parsed.meta["id"] == UPLOAD  # the original is untouched
    with pytest.raises(ValueError, match="no Meta media id"):
        with_meta_media_ids(parsed.meta, {})
    link = parse_outbound("image", {"link": "https://cdn.example/p.jpg"})
    assert link.media_refs == [MediaRef(path=("link",), kind="image", link="https://cdn.example/p.jpg")]
    assert with_meta_media_ids(link.meta, {}) == {"link": "https://cdn.example/p.jpg"}


def test_header_and_template_media_refs_name_their_place() -> None:
    header = parse_outbound("interactive", {
        "type": "cta_url", "header": {"type": "video", "video": {"mediaId": UPLOAD}}, "body": {"text": "Tour"},
        "action": {"parameters": {"displayText": "Book", "url": "https://hotel.example"}}})
    assert header.media_refs == [MediaRef(path=("header", "video", "id"), kind="video", upload_id=UPLOAD)]
    assert header.meta["action"] == {"name": "cta_url", "parameters": {"display_text": "Book",
                                                                       "url": "https://hotel.example"}}
    assert header.preview == "Tour"
    template = parse_outbound("template", {"name": "welcome", "language": {"code": "en"}, "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"mediaId": UPLOAD}}]}]})
    assert template.template == TemplateRef(name="welcome", language="en")
    assert template.media_refs == [MediaRef(path=("components", 0, "parameters", 0, "image", "id"), kind="image",
                                            upload_id=UPLOAD)]
    assert template.preview == "[template]"


def test_reaction_target_removal_and_wamid() -> None:
    parsed = parse_outbound("reaction", {"messageId": "m-1", "emoji": "👍🏽"})
    assert (parsed.reaction_target, parsed.meta) == ("m-1", {"message_id": "m-1", "emoji": "👍🏽"})
    assert with_reaction_wamid(parsed.meta, "wamid.X") == {"message_id": "wamid.X", "emoji": "👍🏽"}
    removal = parse_outbound("reaction", {"messageId": "m-1", "emoji": ""})
    assert removal.meta == {"message_id": "m-1", "emoji": ""}
    assert removal.stored == {"messageId": "m-1", "emoji": "", "removed": True}
    family = parse_outbound("reaction", {"messageId": "m-1", "emoji": "👨‍👩‍👧‍👦"})  # 7 code points, one grapheme
    assert family.meta["emoji"] == "👨‍👩‍👧‍👦"
    with pytest.raises(ValueError):
        with_reaction_wamid({"body": "x"}, "wamid.X")


def test_contacts_accept_the_list_or_the_stored_shape() -> None:
    card = {"name": {"formattedName": "Ana"}, "phones": [{"phone": "+351 912 345 678", "waId": "351912345678"}]}
    for content in ([card], {"contacts": [card]}):
        parsed = parse_outbound("contacts", content)
        assert parsed.meta == [{"name": {"formatted_name": "Ana"},
                                "phones": [{"phone": "+351 912 345 678", "wa_id": "351912345678"}]}]
        assert parsed.stored == {"contacts": [card]} and parsed.preview == "[contacts]"


def test_list_with_one_untitled_section_and_location_integers() -> None:
    parsed = parse_outbound("interactive", {"type": "list", "body": {"text": "Pick"}, "action": {
        "button": "Options", "sections": [{"rows": [{"id": "a", "title": "A"}]}]}})
    assert parsed.meta["action"] == {"button": "Options", "sections": [{"rows": [{"id": "a", "title": "A"}]}]}
    assert parse_outbound("location", {"latitude": -90, "longitude": 180}).meta == {"latitude": -90,
                                                                                   "longitude": 180}


# ------------------------------------------------------------------ every code


def button(title: str, button_id: str | None = None) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": button_id or title, "title": title}}


def buttons(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "button", "body": {"text": "Choose"}, "action": {"buttons": list(items)}, **extra}


def a_list(sections: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "list", "body": {"text": "Choose"}, "action": {"button": "Options", "sections": sections},
            **extra}


def rows(count: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{index}", "title": f"Row {index}"} for index in range(count)]


def cta(url: str = "https://hotel.example", display: str = "Open", **extra: Any) -> dict[str, Any]:
    return {"type": "cta_url", "body": {"text": "Tap"},
            "action": {"name": "cta_url", "parameters": {"displayText": display, "url": url}}, **extra}


CASES: list[tuple[str, str, Any, str]] = [
    # (code, type, content, a piece of the detail: the field)
    ("UNSUPPORTED_MESSAGE_TYPE", "order", {"x": 1}, "type"),
    ("UNSUPPORTED_MESSAGE_TYPE", "interactive", {"type": "product", "body": {"text": "x"}}, "interactive.type"),
    ("CONTENT_REQUIRED", "text", None, "text"),
    ("CONTENT_REQUIRED", "image", "https://x", "image"),
    ("CONTENT_REQUIRED", "contacts", None, "contacts"),
    ("TEXT_EMPTY", "text", {"body": "   "}, "text.body"),
    ("TEXT_EMPTY", "text", {}, "text.body"),
    ("TEXT_EMPTY", "interactive", buttons(button("A"), body=None), "interactive.body"),
    ("TEXT_EMPTY", "interactive", buttons(button("A"), body={"text": ""}), "interactive.body.text"),
    ("TEXT_TOO_LONG", "text", {"body": "x" * 4097}, "text.body"),
    ("CAPTION_TOO_LONG", "image", {"mediaId": UPLOAD, "caption": "c" * 1025}, "image.caption"),
    ("CAPTION_TOO_LONG", "document", {"link": "https://x.example/a.pdf", "caption": "c" * 1025}, "document.caption"),
    ("CAPTION_NOT_ALLOWED", "audio", {"mediaId": UPLOAD, "caption": "hi"}, "audio.caption"),
    ("CAPTION_NOT_ALLOWED", "sticker", {"mediaId": UPLOAD, "caption": "hi"}, "sticker.caption"),
    ("MEDIA_SOURCE_REQUIRED", "image", {"caption": "no source"}, "image"),
    ("MEDIA_SOURCE_REQUIRED", "video", {"mediaId": UPLOAD, "link": "https://x.example/v.mp4"}, "video"),
    ("MEDIA_SOURCE_REQUIRED", "interactive", buttons(button("A"), header={"type": "image", "image": {}}),
     "interactive.header.image"),
    ("INVALID_MEDIA_ID", "image", {"mediaId": "1479537139650973"}, "image.mediaId"),
    ("INVALID_MEDIA_LINK", "image", {"link": "ftp://x.example/a.jpg"}, "image.link"),
    ("INVALID_MEDIA_LINK", "audio", {"link": "not a url"}, "audio.link"),
    ("INVALID_MEDIA_LINK", "template", {"name": "t", "language": {"code": "en"}, "components": [
        {"type": "header", "parameters": [{"type": "video", "video": {"link": "file:///etc/passwd"}}]}]},
     "template.components[0].parameters[0].video.link"),
    ("INVALID_LOCATION", "location", {"latitude": 91, "longitude": 0}, "location.latitude"),
    ("INVALID_LOCATION", "location", {"latitude": 0, "longitude": -180.5}, "location.longitude"),
    ("INVALID_LOCATION", "location", {"latitude": "38.7", "longitude": 9}, "location.latitude"),
    ("INVALID_LOCATION", "location", {"latitude": True, "longitude": 9}, "location.latitude"),
    ("INVALID_LOCATION", "location", {"longitude": 9}, "location.latitude"),
    ("CONTACTS_INVALID", "contacts", [], "contacts"),
    ("CONTACTS_INVALID", "contacts", [{"phones": [{"phone": "+1"}]}], "contacts[0].name"),
    ("CONTACTS_INVALID", "contacts", [{"name": {"firstName": "Ana"}}], "contacts[0].name.formattedName"),
    ("CONTACTS_INVALID", "contacts", [{"name": {"formattedName": "Ana"}, "phones": [{"type": "HOME"}]}],
     "contacts[0].phones[0].phone"),
    ("CONTACTS_INVALID", "contacts", [{"name": {"formattedName": "Ana"}, "birthday": "15/07/1990"}],
     "contacts[0].birthday"),
    ("CONTACTS_INVALID", "contacts", [{"name": {"formattedName": "Ana"}, "org": {"company": 7}}],
     "contacts[0].org.company"),
    ("TOO_MANY_BUTTONS", "interactive", buttons(*(button(t) for t in "ABCD")), "interactive.action.buttons"),
    ("TOO_MANY_BUTTONS", "interactive", buttons(), "interactive.action.buttons"),
    ("BUTTON_TITLE_TOO_LONG", "interactive", buttons(button("A"), button("x" * 21)),
     "interactive.action.buttons[1].reply.title"),
    ("BUTTON_TITLE_TOO_LONG", "interactive", cta(display="x" * 21), "interactive.action.parameters.displayText"),
    ("DUPLICATE_BUTTON_TITLE", "interactive", buttons(button("Yes", "a"), button("Yes", "b")),
     "interactive.action.buttons[1].reply.title"),
    ("BUTTON_ID_TOO_LONG", "interactive", buttons(button("A", "i" * 257)), "interactive.action.buttons[0].reply.id"),
    ("INTERACTIVE_BODY_TOO_LONG", "interactive", buttons(button("A"), body={"text": "b" * 1025}),
     "interactive.body.text"),
    ("INTERACTIVE_BODY_TOO_LONG", "interactive", a_list([{"rows": rows(1)}], body={"text": "b" * 4097}),
     "interactive.body.text"),
    ("INTERACTIVE_BODY_TOO_LONG", "interactive", cta(body={"text": "b" * 1025}), "interactive.body.text"),
    ("FOOTER_TOO_LONG", "interactive", buttons(button("A"), footer={"text": "f" * 61}), "interactive.footer.text"),
    ("HEADER_TOO_LONG", "interactive", buttons(button("A"), header={"type": "text", "text": "h" * 61}),
     "interactive.header.text"),
    ("HEADER_TOO_LONG", "interactive", a_list([{"rows": rows(1)}], header={"type": "text", "text": "h" * 61}),
     "interactive.header.text"),
    ("TOO_MANY_SECTIONS", "interactive", a_list([{"title": f"S{i}", "rows": rows(1, f"s{i}")} for i in range(11)]),
     "interactive.action.sections"),
    ("TOO_MANY_ROWS", "interactive", a_list([{"title": "A", "rows": rows(6, "a")}, {"title": "B",
                                                                                   "rows": rows(5, "b")}]),
     "interactive.action.sections"),
    ("ROW_TITLE_TOO_LONG", "interactive", a_list([{"rows": [{"id": "a", "title": "t" * 25}]}]),
     "interactive.action.sections[0].rows[0].title"),
    ("ROW_DESCRIPTION_TOO_LONG", "interactive",
     a_list([{"rows": [{"id": "a", "title": "A", "description": "d" * 73}]}]),
     "interactive.action.sections[0].rows[0].description"),
    ("ROW_ID_TOO_LONG", "interactive", a_list([{"rows": [{"id": "i" * 201, "title": "A"}]}]),
     "interactive.action.sections[0].rows[0].id"),
    ("SECTION_TITLE_TOO_LONG", "interactive", a_list([{"title": "s" * 25, "rows": rows(1)}]),
     "interactive.action.sections[0].title"),
    ("LIST_BUTTON_TOO_LONG", "interactive",
     {"type": "list", "body": {"text": "x"}, "action": {"button": "b" * 21, "sections": [{"rows": rows(1)}]}},
     "interactive.action.button"),
    ("INVALID_CTA_URL", "interactive", cta(url="javascript:alert(1)"), "interactive.action.parameters.url"),
    ("INVALID_CTA_URL", "interactive", cta(url=""), "interactive.action.parameters.url"),
    ("TEMPLATE_NAME_REQUIRED", "template", {"language": {"code": "en"}}, "template.name"),
    ("TEMPLATE_NAME_REQUIRED", "template", {"name": " ", "language": {"code": "en"}}, "template.name"),
    ("TEMPLATE_LANGUAGE_REQUIRED", "template", {"name": "t"}, "template.language"),
    ("TEMPLATE_LANGUAGE_REQUIRED", "template", {"name": "t", "language": {"code": ""}}, "template.language.code"),
    ("REACTION_TARGET_REQUIRED", "reaction", {"emoji": "👍"}, "reaction.messageId"),
    ("EMOJI_INVALID", "reaction", {"messageId": "m"}, "reaction.emoji"),
    ("EMOJI_INVALID", "reaction", {"messageId": "m", "emoji": "👍" * 11}, "reaction.emoji"),
    ("EMOJI_INVALID", "reaction", {"messageId": "m", "emoji": "ok"}, "reaction.emoji"),
    ("EMOJI_INVALID", "reaction", {"messageId": "m", "emoji": " "}, "reaction.emoji"),
    # a key this module does not know is refused, naming it (a typo never silently drops content)
    ("VALIDATION_FAILED", "text", {"body": "hi", "preview_url": True}, "text.preview_url"),
    ("VALIDATION_FAILED", "image", {"mediaId": UPLOAD, "filename": "a.jpg"}, "image.filename"),
    ("VALIDATION_FAILED", "interactive", buttons(button("A"), fotter={"text": "x"}), "interactive.fotter"),
    ("VALIDATION_FAILED", "template", {"name": "t", "language": {"code": "en"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "x", "payload": "y"}]}]},
     "template.components[0].parameters[0].payload"),
    ("VALIDATION_FAILED", "template", {"name": "t", "language": {"code": "en"}, "components": [
        {"type": "body", "parameters": [{"type": "currency", "currency": {"code": "EUR", "fallbackValue": "1 €"}}]}]},
     "template.components[0].parameters[0].currency.amount1000"),
    ("VALIDATION_FAILED", "contacts", [{"name": {"formattedName": "Ana"}, "phone": "+1"}], "contacts[0].phone"),
    ("VALIDATION_FAILED", "interactive", a_list([{"rows": rows(1)}],
                                                header={"type": "image", "image": {"mediaId": UPLOAD}}),
     "interactive.header.type"),
    ("VALIDATION_FAILED", "interactive", a_list([{"rows": rows(1, "a")}, {"rows": rows(1, "b")}]),
     "interactive.action.sections[0].title"),
    ("VALIDATION_FAILED", "interactive", buttons(button("A", "same"), button("B", "same")),
     "interactive.action.buttons[1].reply.id"),
    ("VALIDATION_FAILED", "text", {"body": "hi", "previewUrl": "yes"}, "text.previewUrl"),
]


@pytest.mark.parametrize(("code", "kind", "content", "field"), CASES,
                         ids=[f"{code}-{kind}-{index}" for index, (code, kind, _, _) in enumerate(CASES)])
def test_each_limit_has_its_code_and_names_the_field(code: str, kind: str, content: Any, field: str) -> None:
    got_code, detail = refused(kind, copy.deepcopy(content))
    assert got_code == code, detail
    assert field in detail, detail


def test_limits_are_inclusive() -> None:
    parse_outbound("text", {"body": "x" * 4096})
    parse_outbound("image", {"mediaId": UPLOAD, "caption": "c" * 1024})
    parse_outbound("interactive", buttons(button("t" * 20, "i" * 256), button("B"), button("C"),
                                          header={"type": "text", "text": "h" * 60}, footer={"text": "f" * 60},
                                          body={"text": "b" * 1024}))
    parse_outbound("interactive", a_list(
        [{"title": "s" * 24, "rows": [{"id": "i" * 200, "title": "t" * 24, "description": "d" * 72}]},
         *({"title": f"S{i}", "rows": [{"id": f"x{i}", "title": "x"}]} for i in range(9))],
        body={"text": "b" * 4096}))
    parse_outbound("reaction", {"messageId": "m", "emoji": "👍" * 10})
