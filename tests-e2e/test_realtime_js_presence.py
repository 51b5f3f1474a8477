"""Issue 5 with the frontend's own client (socket.io-client@4 under Node): presence across the two gateway replicas.
An attendant's first socket announces `presence:update {userId, online: true}` to the others of the tenant, its last
one going away announces `{online: false}`, each change once; `GET /api/presence` lists who is online; another hotel
hears nothing of it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from e2e_support import StackUrls, bearer, create_user, eventually, register_hotel
from js_client import JsDriver, JsSocket

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def online(http: httpx.AsyncClient, stack: StackUrls, token: str) -> list[str]:
    response = await http.get(f"{stack.gateway}/api/presence", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"online"}, body
    users: list[str] = body["online"]
    return users


def changes_of(socket: JsSocket, user_id: str) -> list[bool]:
    return [data["online"] for data in socket.events("presence:update") if data["userId"] == user_id]


async def test_presence_is_announced_once_per_change_across_replicas(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    other_hotel = await register_hotel(http, stack, configure_whatsapp=False)
    attendant = await create_user(http, stack, hotel.access_token)
    latecomer = await create_user(http, stack, hotel.access_token)
    admin = hotel.user["id"]

    watcher = js.socket("watcher")  # the admin, on replica 1
    await watcher.connect(stack.gateway, hotel.access_token)
    spy = js.socket("other-hotel")
    await spy.connect(stack.gateway_replica, other_hotel.access_token)
    assert await eventually(lambda: _lists(http, stack, hotel.access_token, admin))
    assert attendant.id not in await online(http, stack, hotel.access_token)

    # the attendant's first socket (replica 2) comes online
    first = js.socket("attendant-1")
    await first.connect(stack.gateway_replica, attendant.access_token)
    assert await watcher.wait_for("presence:update", lambda d: d.get("userId") == attendant.id) == {
        "userId": attendant.id, "online": True}
    assert attendant.id in await online(http, stack, attendant.access_token)
    assert sorted(await online(http, stack, hotel.access_token)) == sorted([admin, attendant.id])

    # a second socket of the same attendant (replica 1) changes nothing; the latecomer's arrival is the barrier
    second = js.socket("attendant-2")
    await second.connect(stack.gateway, attendant.access_token)
    late = js.socket("latecomer")
    await late.connect(stack.gateway, latecomer.access_token)
    await watcher.wait_for("presence:update", lambda d: d.get("userId") == latecomer.id and d["online"])
    assert changes_of(watcher, attendant.id) == [True]
    # the attendant's own sockets hear the others: the admin was online before, the latecomer came
    assert await first.wait_for("presence:update", lambda d: d.get("userId") == latecomer.id) == {
        "userId": latecomer.id, "online": True}

    # closing one of two sockets: still online; closing the last: offline, once
    await second.disconnect()
    await late.disconnect()
    await watcher.wait_for("presence:update", lambda d: d.get("userId") == latecomer.id and not d["online"])
    assert changes_of(watcher, attendant.id) == [True]
    assert attendant.id in await online(http, stack, hotel.access_token)
    await first.disconnect()
    assert await watcher.wait_for("presence:update", lambda d: d.get("userId") == attendant.id and not d["online"]) == {
        "userId": attendant.id, "online": False}
    assert changes_of(watcher, attendant.id) == [True, False]
    assert await eventually(lambda: _absent(http, stack, hotel.access_token, attendant.id))
    assert sorted(await online(http, stack, hotel.access_token)) == [admin]

    # the other hotel sees only its own people, and heard nothing of the first: once its spy hears its own
    # attendant arrive (published after all of the above), anything of the first hotel would have reached it before
    assert await online(http, stack, other_hotel.access_token) == [other_hotel.user["id"]]
    colleague = await create_user(http, stack, other_hotel.access_token)
    await js.socket("colleague").connect(stack.gateway, colleague.access_token)
    assert await spy.wait_for("presence:update", lambda d: d.get("userId") == colleague.id) == {
        "userId": colleague.id, "online": True}
    others = [d for d in spy.events("presence:update") if d["userId"] != other_hotel.user["id"]]
    assert others == [{"userId": colleague.id, "online": True}]


async def test_presence_needs_a_signed_in_user(stack: StackUrls, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{stack.gateway}/api/presence")
    assert response.status_code == 401, response.text


async def _lists(http: httpx.AsyncClient, stack: StackUrls, token: str, user_id: str) -> bool:
    return user_id in await online(http, stack, token)


async def _absent(http: httpx.AsyncClient, stack: StackUrls, token: str, user_id: str) -> bool:
    return user_id not in await online(http, stack, token)
