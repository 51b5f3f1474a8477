"""An assignment is emitted by realtime once to the tenant's room and the assignee's user room: through two real
gateway replicas, each socket (the assignee's are in both rooms) gets it once and in seq order with the tenant's
other events, duplicates and reordering included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eva_common.realtime.rooms import tenant_room, user_room

from .conftest import wait_until

pytestmark = pytest.mark.integration

ASSIGNED = "conversation:assigned"


async def test_an_assignment_to_the_tenant_and_the_assignee_reaches_each_socket_once_in_order(
    gateway: Any, gateway_factory: Callable[..., Any], sockets: Callable[[], Any], make_account: Callable[..., Any],
    realtime: Callable[..., Any], wait_subscribed: Callable[..., Any]
) -> None:
    second = await gateway_factory(socketio_channel=gateway.settings.socketio_channel)
    assignee = make_account(role="attendant")
    colleague = make_account(tenant_id=assignee.tenant_id)
    tenant = assignee.tenant_id
    here, there, other = sockets(), sockets(), sockets()
    await here.connect(gateway.url, token=assignee.token)
    await there.connect(second.url, token=assignee.token)
    await other.connect(gateway.url, token=colleague.token)
    await wait_subscribed(gateway.settings.socketio_channel, minimum=2)
    emitter = realtime()
    rooms = [tenant_room(tenant), user_room(assignee.user_id)]

    async def publish_assignment(payload: dict[str, Any]) -> None:  # as realtime's emitter does, in one emit
        await emitter.manager.emit(ASSIGNED, payload, room=rooms, namespace="/")

    first = await emitter.assign(tenant, ASSIGNED, {"conversationId": "c-1", "attendantId": assignee.user_id})
    await publish_assignment(first)
    await publish_assignment(first)  # at-least-once relay: a duplicate
    message = await emitter.assign(tenant, "message:new", {"id": "m-2"})
    later = await emitter.assign(tenant, ASSIGNED, {"conversationId": "c-3", "attendantId": assignee.user_id})
    await publish_assignment(later)  # two relays: out of order
    await emitter.publish(tenant, "message:new", message)
    last = await emitter.emit(tenant, "message:new", {"id": "m-4"})

    for probe in (here, there, other):
        async def delivered(probe: Any = probe) -> bool:
            return last in probe.all_of("message:new")

        await wait_until(delivered, what="the last event")
        assert [(event, data["seq"]) for event, data in probe.events if event in (ASSIGNED, "message:new")] == [
            (ASSIGNED, 1), ("message:new", 2), (ASSIGNED, 3), ("message:new", 4)]
        assert probe.all_of(ASSIGNED) == [first, later]
        assert "resync:required" not in probe.names()
