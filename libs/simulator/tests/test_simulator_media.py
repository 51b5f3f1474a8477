"""Media like the Graph API, over real HTTP (uvicorn on a free port): upload, URL look-up, download with the
number's bearer token, URL expiry after 5 minutes, delete, the /_sim/media control API, guest media messages,
and the corrupt-bytes fault switch."""

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from eva_simulator.app import create_app
from eva_simulator.server import serve_in_background


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def served(kit: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    app = create_app(kit.settings())
    clock = Clock()
    app.state.simulator.state.clock = clock
    async with serve_in_background(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await kit.register(client)
        yield client, clock


def meta_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def upload(
    client: httpx.AsyncClient, kit: Any, data: bytes, mime: str = "image/jpeg", token: str | None = None
) -> httpx.Response:
    return await client.post(
        f"/v21.0/{kit.PNID}/media",
        headers=kit.auth(token or kit.TOKEN),
        data={"messaging_product": "whatsapp", "type": mime},
        files={"file": ("photo.jpg", data, mime)},
    )


async def test_upload_then_get_url_then_download_with_the_numbers_token(served: Any, kit: Any) -> None:
    client, _ = served
    data = os.urandom(50_000) + b"\r\n--boundary-like\r\n"
    uploaded = await upload(client, kit, data)
    assert uploaded.status_code == 200, uploaded.text
    media_id = uploaded.json()["id"]
    assert media_id.isdigit() and set(uploaded.json()) == {"id"}

    info = await client.get(f"/v21.0/{media_id}", headers=kit.auth())
    assert info.status_code == 200, info.text
    body = info.json()
    assert list(body) == ["messaging_product", "url", "mime_type", "sha256", "file_size", "id"]
    assert (body["messaging_product"], body["mime_type"], body["id"]) == ("whatsapp", "image/jpeg", media_id)
    assert body["sha256"] == meta_sha256(data) and body["file_size"] == str(len(data))
    query = parse_qs(urlsplit(body["url"]).query)
    assert query["mid"] == [media_id] and int(query["ext"][0]) == 1_800_000_000 + 300 and query["hash"][0]
    assert body["url"].startswith(str(client.base_url).rstrip("/"))

    downloaded = await client.get(body["url"], headers=kit.auth())
    assert downloaded.status_code == 200
    assert downloaded.content == data and downloaded.headers["content-type"] == "image/jpeg"
    assert meta_sha256(downloaded.content) == body["sha256"]

    scoped = await client.get(f"/v21.0/{media_id}", params={"phone_number_id": kit.PNID}, headers=kit.auth())
    assert scoped.status_code == 200


async def test_download_needs_the_bearer_token_and_a_fresh_unaltered_url(served: Any, kit: Any) -> None:
    client, clock = served
    media_id = (await upload(client, kit, b"\x89PNG fake image")).json()["id"]
    url = (await client.get(f"/v21.0/{media_id}", headers=kit.auth())).json()["url"]

    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers={"Authorization": "Basic abc"})).status_code == 401
    await kit.register(client, phoneNumberId="999000111", accessToken="EAAG-other-number-token")
    assert (await client.get(url, headers=kit.auth("EAAG-other-number-token"))).status_code == 401
    tampered = url.replace(f"mid={media_id}", "mid=1234567890123456")
    assert (await client.get(tampered, headers=kit.auth())).status_code == 404
    longer = url.replace("ext=", "ext=9")
    assert (await client.get(longer, headers=kit.auth())).status_code == 404

    clock.now += 299
    assert (await client.get(url, headers=kit.auth())).status_code == 200
    clock.now += 2  # past the 5 minutes: a new URL must be asked for
    assert (await client.get(url, headers=kit.auth())).status_code == 404
    fresh = (await client.get(f"/v21.0/{media_id}", headers=kit.auth())).json()["url"]
    assert fresh != url and (await client.get(fresh, headers=kit.auth())).content == b"\x89PNG fake image"


async def test_graph_media_errors_like_meta(served: Any, kit: Any) -> None:
    client, _ = served
    media_id = (await upload(client, kit, b"abc")).json()["id"]
    no_token = await client.get(f"/v21.0/{media_id}")
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == 190
    bad_token = await client.get(f"/v21.0/{media_id}", headers=kit.auth("EAAG-unknown"))
    assert bad_token.status_code == 400 and bad_token.json()["error"]["code"] == 190
    await kit.register(client, phoneNumberId="999000222", accessToken="EAAG-another-token")
    other = await client.get(f"/v21.0/{media_id}", headers=kit.auth("EAAG-another-token"))
    assert other.status_code == 400 and other.json()["error"]["error_subcode"] == 33
    wrong_number = await client.get(f"/v21.0/{media_id}", params={"phone_number_id": "999000222"}, headers=kit.auth())
    assert wrong_number.status_code == 400 and wrong_number.json()["error"]["code"] == 100
    unknown = await client.get("/v21.0/1111222233334444", headers=kit.auth())
    assert unknown.status_code == 400 and unknown.json()["error"]["error_subcode"] == 33

    not_multipart = await client.post(f"/v21.0/{kit.PNID}/media", headers=kit.auth(), json={"file": "x"})
    assert not_multipart.status_code == 400 and not_multipart.json()["error"]["code"] == 100
    no_product = await client.post(
        f"/v21.0/{kit.PNID}/media", headers=kit.auth(), files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert no_product.status_code == 400 and "messaging_product" in no_product.json()["error"]["message"]
    no_file = await client.post(
        f"/v21.0/{kit.PNID}/media",
        headers=kit.auth(),
        data={"messaging_product": "whatsapp", "type": "image/png"},
        files={"other": ("a.txt", b"x", "text/plain")},
    )
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
    foreign = await client.post(
        "/v21.0/999000222/media",
        headers=kit.auth(),
        data={"messaging_product": "whatsapp"},
        files={"file": ("a.txt", b"x", "text/plain")},
    )
    assert foreign.status_code == 400 and foreign.json()["error"]["error_subcode"] == 33


async def test_delete_makes_the_media_and_its_urls_unavailable(served: Any, kit: Any) -> None:
    client, _ = served
    media_id = (await upload(client, kit, b"to be deleted")).json()["id"]
    url = (await client.get(f"/v21.0/{media_id}", headers=kit.auth())).json()["url"]
    deleted = await client.delete(f"/v21.0/{media_id}", headers=kit.auth())
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert (await client.get(f"/v21.0/{media_id}", headers=kit.auth())).status_code == 400
    assert (await client.get(url, headers=kit.auth())).status_code == 404
    assert (await client.delete(f"/v21.0/{media_id}", headers=kit.auth())).status_code == 400


async def test_control_api_stores_given_or_random_bytes(served: Any, kit: Any) -> None:
    client, _ = served
    given = "Grüße aus dem Hotel".encode()
    made = await client.post(
        "/_sim/media",
        json={
            "phoneNumberId": kit.PNID,
            "mimeType": "text/plain",
            "filename": "greeting.txt",
            "contentBase64": base64.b64encode(given).decode(),
        },
    )
    assert made.status_code == 200, made.text
    assert made.json()["sha256"] == meta_sha256(given)
    url = (await client.get(f"/v21.0/{made.json()['id']}", headers=kit.auth())).json()["url"]
    assert (await client.get(url, headers=kit.auth())).content == given

    random = await client.post(
        "/_sim/media", json={"phoneNumberId": kit.PNID, "mimeType": "video/mp4", "sizeBytes": 100_000}
    )
    info = (await client.get(f"/v21.0/{random.json()['id']}", headers=kit.auth())).json()
    assert info["file_size"] == "100000" and info["sha256"] == random.json()["sha256"]
    content = (await client.get(info["url"], headers=kit.auth())).content
    assert len(content) == 100_000 and meta_sha256(content) == info["sha256"]

    assert (
        await client.post("/_sim/media", json={"phoneNumberId": "nope", "mimeType": "image/png", "sizeBytes": 1})
    ).status_code == 404
    assert (
        await client.post("/_sim/media", json={"phoneNumberId": kit.PNID, "mimeType": "image/png"})
    ).status_code == 422


async def test_corrupt_switch_serves_bytes_whose_sha256_does_not_match(served: Any, kit: Any) -> None:
    client, _ = served
    made = (
        await client.post("/_sim/media", json={"phoneNumberId": kit.PNID, "mimeType": "image/jpeg", "sizeBytes": 4096})
    ).json()
    switched = await client.post(f"/_sim/media/{made['id']}/corrupt", json={"corrupt": True})
    assert switched.json() == {"id": made["id"], "corrupt": True}
    info = (await client.get(f"/v21.0/{made['id']}", headers=kit.auth())).json()
    assert info["sha256"] == made["sha256"]  # the Graph API still announces the real hash
    served_bytes = (await client.get(info["url"], headers=kit.auth())).content
    assert len(served_bytes) == 4096 and meta_sha256(served_bytes) != info["sha256"]
    await client.post(f"/_sim/media/{made['id']}/corrupt", json={"corrupt": False})
    healed = (await client.get(info["url"], headers=kit.auth())).content
    assert meta_sha256(healed) == info["sha256"]
    assert (await client.post("/_sim/media/0000/corrupt", json={})).status_code == 404


@pytest.mark.parametrize(
    ("message_type", "mime", "extra", "expected"),
    [
        ("image", "image/jpeg", {"caption": "Pool 🏊"}, {"caption": "Pool 🏊"}),
        ("audio", "audio/ogg", {"voice": True}, {"voice": True}),
        ("video", "video/mp4", {"caption": "tour"}, {"caption": "tour"}),
        (
            "document",
            "application/pdf",
            {"filename": "Factura ñ.pdf", "caption": "bill"},
            {"filename": "Factura ñ.pdf", "caption": "bill"},
        ),
        ("sticker", "image/webp", {"animated": False}, {"animated": False}),
    ],
)
async def test_guest_media_message_carries_the_stored_medias_id_mime_and_sha256(
    kit: Any, receiver: Any, message_type: str, mime: str, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    app = create_app(kit.settings())
    async with serve_in_background(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await kit.register(client, receiver.url)
        made = (
            await client.post("/_sim/media", json={"phoneNumberId": kit.PNID, "mimeType": mime, "sizeBytes": 2048})
        ).json()
        sent = await client.post(
            "/_sim/guest-messages",
            json={
                "phoneNumberId": kit.PNID,
                "from": kit.GUEST,
                "type": message_type,
                "content": {"mediaId": made["id"], **extra},
            },
        )
        assert sent.status_code == 200, sent.text
        (got,) = await receiver.wait_for(1)
        assert got.signature_ok
        message = json.loads(got.body)["entry"][0]["changes"][0]["value"]["messages"][0]
        assert message["type"] == message_type
        assert message[message_type] == {**expected, "mime_type": mime, "sha256": made["sha256"], "id": made["id"]}
        # and the business can fetch it like Meta's media
        info = (await client.get(f"/v21.0/{made['id']}", headers=kit.auth())).json()
        content = (await client.get(info["url"], headers=kit.auth())).content
        assert meta_sha256(content) == message[message_type]["sha256"]


async def test_guest_media_message_with_unknown_or_foreign_media_is_refused(kit: Any, receiver: Any) -> None:
    app = create_app(kit.settings())
    async with serve_in_background(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await kit.register(client, receiver.url)
        await kit.register(client, phoneNumberId="999000333", accessToken="EAAG-third")
        foreign = (
            await client.post(
                "/_sim/media", json={"phoneNumberId": "999000333", "mimeType": "image/png", "sizeBytes": 8}
            )
        ).json()
        unknown = await client.post(
            "/_sim/guest-messages",
            json={"phoneNumberId": kit.PNID, "from": kit.GUEST, "type": "image", "content": {"mediaId": "404"}},
        )
        assert unknown.status_code == 404
        other = await client.post(
            "/_sim/guest-messages",
            json={"phoneNumberId": kit.PNID, "from": kit.GUEST, "type": "image", "content": {"mediaId": foreign["id"]}},
        )
        assert other.status_code == 422
        assert receiver.received == []
