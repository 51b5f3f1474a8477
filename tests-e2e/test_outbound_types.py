"""Every outbound message type through the public gateway on the whole stack: an attendant's `POST /api/messages` is
answered 201 PENDING at once; the attendant's socket gets `message:new` and then `message:status` SENT (seq ordered);
the simulator (Meta) received Meta's exact snake_case body (uploads by the media id Meta gave, quotes by the quoted
wamid, Eva's id in `biz_opaque_callback_data`); DELIVERED and READ come back on the socket; REST shows the status
history and who sent it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from e2e_support import Member, SocketRecorder, StackUrls, create_user
from outbound_support import Desk, Guest, event_index, opened_desk, request_of, statuses_of, until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

LINK = "https://media.hotel-eva.test/files/"


@dataclass
class FrontDesk:
    """The module's hotel, an attendant of it with their own socket, and a guest who wrote."""

    desk: Desk
    attendant: Member
    socket: SocketRecorder
    guest: Guest


@dataclass
class Case:
    kind: str
    content: Any
    meta: Any  # Meta's object expected under `<kind>` (None: checked by the test itself)
    reply_to: str | None = None
    quoted: str | None = None


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def front(stack: StackUrls) -> AsyncIterator[FrontDesk]:
    async with opened_desk(stack) as desk:
        attendant = await create_user(desk.http, stack, desk.hotel.access_token)
        socket = SocketRecorder()
        await socket.connect(stack.gateway, attendant.access_token)
        try:
            guest = await desk.guest_writes("Bom dia! Can you send me the details of my stay?")
            yield FrontDesk(desk=desk, attendant=attendant, socket=socket, guest=guest)
        finally:
            await socket.close()


async def deliver_all(front: FrontDesk, cases: list[Case], *, guest: Guest | None = None) -> list[dict[str, Any]]:
    """Sends each case as the attendant and checks the whole way: 201 PENDING, message:new before message:status SENT
    on the attendant's socket, Meta's exact body at the simulator, DELIVERED and READ back (reactions: only sent, as
    Meta does), and REST's status history and sender. Returns what the simulator received, in case order."""
    desk, guest = front.desk, guest or front.guest
    recipient = {"to": str(guest.wa_id)}
    created = [await desk.accepted(guest.conversation_id, case.kind, case.content, reply_to=case.reply_to,
                                   headers=front.attendant.auth) for case in cases]
    for message in created:
        assert message["sender"]["kind"] == "user" and message["sender"]["id"] == front.attendant.id, message
    sent_events = await asyncio.gather(*(desk.status_event(m["id"], "SENT", socket=front.socket) for m in created))
    for message, sent in zip(created, sent_events, strict=True):
        new = await front.socket.wait_for("message:new", lambda data, i=message["id"]: data.get("id") == i)
        assert new["direction"] == "outbound" and new["type"] == message["type"], new
        assert event_index(front.socket, "message:new", lambda data, i=message["id"]: data.get("id") == i) < \
            event_index(front.socket, "message:status", lambda data, e=sent: data == e)
        assert new["seq"] < sent["seq"], (new, sent)
        assert sent["conversationId"] == guest.conversation_id and "error" not in sent

    requests = [await desk.sent_once(message["id"]) for message in created]
    for case, message, received in zip(cases, created, requests, strict=True):
        if case.meta is not None:
            assert received["request"] == request_of(message["id"], recipient, case.kind, case.meta, case.quoted), \
                (case.kind, received["request"])
        assert received["endpoint"] == "messages"

    final = {}
    for case, message in zip(cases, created, strict=True):
        if case.kind == "reaction":
            final[message["id"]] = ["SENT"]
            continue
        await desk.status_event(message["id"], "DELIVERED", socket=front.socket)
        await desk.status_event(message["id"], "READ", socket=front.socket)
        final[message["id"]] = ["SENT", "DELIVERED", "READ"]
    stored = {m["id"]: m for m in await desk.messages(guest.conversation_id)}
    for message in created:
        shown = stored[message["id"]]
        assert statuses_of(shown) == final[message["id"]], (shown["type"], shown["statusHistory"])
        assert shown["status"] == final[message["id"]][-1]
        assert shown["sender"]["kind"] == "user" and shown["sender"]["id"] == front.attendant.id
        assert shown["source"] == "eva" and shown["direction"] == "outbound"
        assert shown["wamid"] == requests[created.index(message)]["wamid"]
        assert shown["attempts"] == 1
    return requests


async def test_text_location_and_contacts_reach_meta_in_its_own_shape(front: FrontDesk) -> None:
    body = "Your room 214 is ready 🛎️ — details: https://hotel-eva.test/stay/214"
    contact = {"name": {"formattedName": "Front Desk Eva", "firstName": "Front", "lastName": "Desk"},
               "phones": [{"phone": "+351 210 000 000", "type": "WORK", "waId": "351210000000"}],
               "emails": [{"email": "desk@hotel-eva.test", "type": "WORK"}]}
    await deliver_all(front, [
        Case("text", {"body": body, "previewUrl": True}, {"body": body, "preview_url": True}),
        Case("location", {"latitude": 38.7107, "longitude": -9.1365, "name": "Hotel Eva",
                          "address": "Rua Augusta 1, Lisboa"},
             {"latitude": 38.7107, "longitude": -9.1365, "name": "Hotel Eva", "address": "Rua Augusta 1, Lisboa"}),
        Case("contacts", [contact],
             [{"name": {"formatted_name": "Front Desk Eva", "first_name": "Front", "last_name": "Desk"},
               "phones": [{"phone": "+351 210 000 000", "type": "WORK", "wa_id": "351210000000"}],
               "emails": [{"email": "desk@hotel-eva.test", "type": "WORK"}]}]),
    ])


async def test_media_uploaded_to_eva_reach_meta_by_the_id_meta_gave_for_the_same_bytes(front: FrontDesk) -> None:
    desk = front.desk
    files = {
        "image": (b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(2048), "image/png", "pool.png"),
        "audio": (b"OggS" + secrets.token_bytes(4096), "audio/ogg", "welcome.ogg"),
        "video": (secrets.token_bytes(8192), "video/mp4", "tour.mp4"),
        "document": (b"%PDF-1.7\n" + secrets.token_bytes(3000), "application/pdf", "reservation-214.pdf"),
        "sticker": (b"RIFF" + secrets.token_bytes(1024) + b"WEBP", "image/webp", "wave.webp"),
    }
    uploads = {kind: await desk.upload(*spec) for kind, spec in files.items()}
    for kind, upload in uploads.items():
        assert upload["kind"] == kind and upload["size"] == len(files[kind][0]), upload
    extra = {"image": {"caption": "Our rooftop pool"}, "video": {"caption": "A tour of the suite"},
             "document": {"caption": "Your reservation", "filename": "reservation-214.pdf"}}
    cases = [Case(kind, {"mediaId": uploads[kind]["id"], **extra.get(kind, {})}, None) for kind in files]
    requests = await deliver_all(front, cases)
    for kind, received in zip(files, requests, strict=True):
        media = received["request"][kind]
        assert media["id"] != uploads[kind]["id"] and media["id"].isdigit(), media
        assert {key: value for key, value in media.items() if key != "id"} == extra.get(kind, {}), media
        meta_view = await desk.meta_media(media["id"])  # the id Meta gave names the bytes uploaded to Eva
        assert meta_view["sha256"] == uploads[kind]["sha256"] and meta_view["mime_type"] == files[kind][1]
        assert received["request"] == request_of(received["request"]["biz_opaque_callback_data"][4:],
                                                 {"to": str(front.guest.wa_id)}, kind, media)


async def test_media_by_link_reach_meta_as_the_link(front: FrontDesk) -> None:
    cases = [
        Case("image", {"link": LINK + "pool.jpg", "caption": "Pool"}, {"link": LINK + "pool.jpg", "caption": "Pool"}),
        Case("audio", {"link": LINK + "hello.mp3"}, {"link": LINK + "hello.mp3"}),
        Case("video", {"link": LINK + "tour.mp4", "caption": "Tour"}, {"link": LINK + "tour.mp4", "caption": "Tour"}),
        Case("document", {"link": LINK + "menu.pdf", "filename": "menu.pdf"},
             {"link": LINK + "menu.pdf", "filename": "menu.pdf"}),
        Case("sticker", {"link": LINK + "wave.webp"}, {"link": LINK + "wave.webp"}),
    ]
    await deliver_all(front, cases)


async def test_interactive_buttons_list_and_cta_url(front: FrontDesk) -> None:
    buttons = {"type": "button", "body": {"text": "Would you like a late check-out?"},
               "footer": {"text": "Hotel Eva"},
               "action": {"buttons": [{"type": "reply", "reply": {"id": "late-yes", "title": "Yes, 14h"}},
                                      {"type": "reply", "reply": {"id": "late-no", "title": "No, thanks"}}]}}
    listing = {"type": "list", "header": {"type": "text", "text": "Spa"},
               "body": {"text": "Pick a time for your massage"}, "footer": {"text": "Spa on floor -1"},
               "action": {"button": "See times", "sections": [
                   {"title": "Morning", "rows": [{"id": "m-09", "title": "09:00", "description": "60 minutes"},
                                                 {"id": "m-11", "title": "11:00"}]},
                   {"title": "Afternoon", "rows": [{"id": "a-16", "title": "16:00"}]}]}}
    cta = {"type": "cta_url", "body": {"text": "Check in online before you arrive"},
           "action": {"name": "cta_url", "parameters": {"displayText": "Check in", "url": "https://hotel-eva.test/in"}}}
    cta_meta = {**cta, "action": {"name": "cta_url",
                                  "parameters": {"display_text": "Check in", "url": "https://hotel-eva.test/in"}}}
    await deliver_all(front, [Case("interactive", buttons, buttons), Case("interactive", listing, listing),
                              Case("interactive", cta, cta_meta)])


async def test_a_quoted_reply_and_a_reaction_and_its_removal_name_the_guests_wamid(front: FrontDesk) -> None:
    guest = front.guest
    await deliver_all(front, [
        Case("text", {"body": "Of course, here they are."}, {"body": "Of course, here they are."},
             reply_to=guest.message_id, quoted=guest.wamid),
        Case("reaction", {"messageId": guest.message_id, "emoji": "👍"}, {"message_id": guest.wamid, "emoji": "👍"}),
        Case("reaction", {"messageId": guest.message_id, "emoji": ""}, {"message_id": guest.wamid, "emoji": ""}),
    ])
    reactions = [m["content"] for m in await front.desk.messages(guest.conversation_id) if m["type"] == "reaction"]
    assert reactions == [{"messageId": guest.message_id, "emoji": "👍"},
                         {"messageId": guest.message_id, "emoji": "", "removed": True}], reactions


async def test_a_template_goes_out_with_its_name_and_language(front: FrontDesk) -> None:
    desk = front.desk

    async def hello_world_synced() -> bool:  # storing the credentials synced the WABA's templates (tenant events)
        return any(t["name"] == "hello_world" for t in await desk.templates(status="APPROVED"))

    await until(hello_world_synced)
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    [received] = await deliver_all(front, [Case("template", template, template)])
    assert received["templateCategory"] == "UTILITY"
    [shown] = [m for m in await desk.messages(front.guest.conversation_id)
               if m["id"] == received["request"]["biz_opaque_callback_data"][4:]]
    assert shown["category"] == "utility" and shown["content"]["name"] == "hello_world", shown
