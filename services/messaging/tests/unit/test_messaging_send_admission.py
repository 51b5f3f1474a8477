"""SendMessage and RetryMessage pass the servicer's admission gate: past its places and its wait, a request is refused
with OVERLOADED before the sending service saw it (nothing stored, nothing sent), so the client may retry it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eva.messaging.v1 import messaging_pb2
from eva_common.admission import AdmissionGate
from eva_common.auth import Principal, principal_var
from eva_common.errors import NotFound, Overloaded
from messaging_service.grpc_server import MessagingServicer

ATTENDANT = Principal(subject="u1", kind="user", role="agent", tenant_id="t1", token="t", token_id="j",
                      issued_at=0, expires_at=2**31)


class Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def time_remaining(self) -> float:
        return 5.0


class SlowSending:
    """Counts the requests that reached it; each waits for `release`, then is refused as a missing conversation."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def _work(self) -> Any:
        self.calls += 1
        await self.release.wait()
        raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")

    async def send(self, **_: Any) -> Any:
        return await self._work()

    async def retry(self, **_: Any) -> Any:
        return await self._work()


def _servicer(sending: SlowSending) -> MessagingServicer:
    return MessagingServicer(service=None, sending=sending,  # type: ignore[arg-type]
                             admission=AdmissionGate("test-send", limit=1, max_wait=0.05))


async def _send(servicer: MessagingServicer) -> None:
    principal_var.set(ATTENDANT)
    await servicer.SendMessage(messaging_pb2.SendMessageRequest(conversation_id="c", type="text"),
                               Context())  # type: ignore[arg-type]


async def _retry(servicer: MessagingServicer) -> None:
    principal_var.set(ATTENDANT)
    await servicer.RetryMessage(messaging_pb2.RetryMessageRequest(message_id="m"), Context())  # type: ignore[arg-type]


async def test_a_send_past_the_gates_places_is_refused_overloaded_before_it_reaches_the_sending_service() -> None:
    sending = SlowSending()
    servicer = _servicer(sending)
    first = asyncio.create_task(_send(servicer))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as refused:
        await _send(servicer)
    with pytest.raises(Overloaded):
        await _retry(servicer)
    assert refused.value.http_status == 503 and refused.value.retry_after == 1
    assert sending.calls == 1
    sending.release.set()
    with pytest.raises(NotFound):
        await first
    with pytest.raises(NotFound):  # the place is free again
        await _retry(servicer)
    assert sending.calls == 2
