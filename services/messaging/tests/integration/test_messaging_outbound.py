"""The outbound path end to end inside the messaging service, against the real WhatsApp simulator: an attendant's
message is stored PENDING and announced, the sender delivers it through the governor to the simulator's Graph API,
the simulator's status webhooks come back (through a receiver standing in for webhook-ingest) and move it forward.
Meta's errors (retried, failed, token expired), the 24-hour window, idempotency keys, per-conversation order under
retries and a send whose answer is lost are all exercised against the simulator's real behaviour."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from eva_events.envelope import make_event
from eva_events.webhook import WEBHOOK_RECEIVED, WebhookReceived
from eva_simulator.app import create_app as create_simulator_app
from eva_simulator.client import SimulatorClient
from eva_simulator.server import serve_in_background
from eva_simulator.settings import Settings as SimulatorSettings
from eva_testing.tokens import TestTokenIssuer
from eva_testing.waiting import eventually
from messaging_service.clients import SendingProfile
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

PHONE_NUMBER_ID = "106540352242977"
FORWARD = ["PENDING", "SENT", "DELIVERED", "READ"]
WABA_ID = "102290129340377"


class WebhookReceiver:
    """Stands in for webhook-ingest: every delivery the simulator POSTs is handed to the messaging service's
    processor as the `webhook.received` event ingest would publish."""

    def __init__(self) -> None:
        self.tenant_id = ""
        self.process: Callable[[Any], Awaitable[Any]] | None = None
        self.payloads: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.process is None:  # the test is over: the messaging service is going away
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        payload = json.loads(body)
        self.payloads.append(payload)
        await self.process(make_event(WEBHOOK_RECEIVED, tenant_id=self.tenant_id, data=WebhookReceived(
            delivery_id=f"dlv-{uuid.uuid4().hex}", phone_number_id=PHONE_NUMBER_ID, received_at=datetime.now(UTC),
            payload=payload)))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


@dataclass
class Outbound:
    stack: Any
    sim: SimulatorClient
    tenant_id: str
    token: str
    issuer: TestTokenIssuer

    async def guest_writes(self, wa_id: str, text: str = "Hello, is breakfast included?") -> str:
        """A guest writes through the simulator (opening its window there and here); the conversation's id."""
        await self.sim.guest_message(phone_number_id=PHONE_NUMBER_ID, from_=wa_id, name="Guest", text=text)
        return await self.conversation_of(wa_id)

    async def conversation_of(self, wa_id: str) -> str:
        async def find() -> str | None:
            page = await self.stack.conversations.ListConversations(
                conversation_pb2.ListConversationsRequest(q=wa_id, limit=10),
                metadata=(("authorization", f"Bearer {self.token}"),))
            return page.items[0].id if page.items else None
        found: str = await eventually(find)
        return found

    async def send(self, conversation_id: str, *, type: str = "text", content: Any = None,  # noqa: A002
                   key: str = "", token: str | None = None) -> messaging_pb2.SendMessageResponse:
        content = {"body": "Yes, from 7 to 10."} if content is None else content
        response: messaging_pb2.SendMessageResponse = await self.stack.stub.SendMessage(
            messaging_pb2.SendMessageRequest(conversation_id=conversation_id, type=type,
                                             content_json=json.dumps(content), idempotency_key=key),
            metadata=(("authorization", f"Bearer {token or self.token}"),))
        return response

    async def message(self, message_id: str) -> messaging_pb2.Message:
        found: messaging_pb2.Message = await self.stack.stub.GetMessage(
            messaging_pb2.GetMessageRequest(message_id=message_id),
            metadata=(("authorization", f"Bearer {self.token}"),))
        return found

    async def reaches(self, message_id: str, status: str, timeout: float = 20) -> messaging_pb2.Message:
        """The message once it is in `status` or further along (SENT < DELIVERED < READ; FAILED exactly)."""
        wanted = FORWARD[FORWARD.index(status):] if status in FORWARD else [status]

        async def probe() -> messaging_pb2.Message | None:
            message = await self.message(message_id)
            return message if message.status in wanted else None
        found: messaging_pb2.Message = await eventually(probe, timeout=timeout)
        return found

    async def sent_to(self, wa_id: str) -> list[dict[str, Any]]:
        return [item for item in await self.sim.sent_messages(phone_number_id=PHONE_NUMBER_ID, to=wa_id)
                if "status" not in item.get("request", {})]


def new_guest() -> str:
    return "3519" + str(uuid.uuid4().int)[:8]


@pytest_asyncio.fixture(scope="module")
async def outbound(infra: Any, database: Any, issuer: TestTokenIssuer, stack_builder: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outbound]:
    receiver = WebhookReceiver()
    simulator_app = create_simulator_app(SimulatorSettings(status_delays=[0.05], webhook_initial_delay=0.05))
    token = f"EAAG-out-{uuid.uuid4().hex}"
    async with (serve_in_background(simulator_app) as sim_server, serve_in_background(receiver) as receiver_server,
                SimulatorClient(sim_server.url) as sim,
                stack_builder(infra, database, issuer, tmp_path_factory.mktemp("media-out"),
                              graph_transport=httpx.AsyncHTTPTransport(), whatsapp_graph_url=sim_server.url,
                              send_timeout_seconds=1.0, send_lease_seconds=4.0, send_reconcile_seconds=2.0,
                              send_backoff_seconds=0.05, send_backoff_max_seconds=0.2, send_poll_seconds=0.1,
                              ) as stack):
        await sim.register_number(phone_number_id=PHONE_NUMBER_ID, waba_id=WABA_ID,
                                  display_phone_number="15550783877", access_token=token,
                                  app_secret="out-secret-" + uuid.uuid4().hex, webhook_url=receiver_server.url)
        tenant_id = f"tenant-out-{uuid.uuid4().hex[:8]}"
        receiver.tenant_id = tenant_id
        receiver.process = stack.messaging.processor.process
        stack.credentials.profiles[tenant_id] = SendingProfile(
            tenant_id=tenant_id, phone_number_id=PHONE_NUMBER_ID, access_token=token, waba_id=WABA_ID,
            display_phone_number="15550783877", coexistence=False, throughput_mps=0, tenant_status="active",
            read_receipts="on_read", health="healthy")
        yield Outbound(stack=stack, sim=sim, tenant_id=tenant_id,
                       token=issuer.user_token(user_id="attendant-1", tenant_id=tenant_id, role="attendant"),
                       issuer=issuer)
        receiver.process = None  # late status webhooks must not reopen the database the module is about to drop


async def test_a_reply_leaves_pending_reaches_the_simulator_and_comes_back_read(outbound: Outbound) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    answer = await outbound.send(conversation_id)
    created = answer.message
    assert (created.status, created.direction, created.source) == ("PENDING", "outbound", "eva")
    assert (created.sender.kind, created.sender.id) == ("user", "attendant-1") and not created.wamid
    read = await outbound.reaches(created.id, "READ")
    assert [change.status for change in read.status_history][:1] == ["SENT"]
    assert {"SENT", "DELIVERED", "READ"} <= {change.status for change in read.status_history}
    [sent] = await outbound.sent_to(guest)
    assert sent["wamid"] == read.wamid and read.attempts == 1
    assert sent["request"]["text"] == {"body": "Yes, from 7 to 10."}
    assert sent["request"]["biz_opaque_callback_data"] == f"eva:{created.id}"


async def test_outside_the_window_free_form_is_refused_at_once_and_a_template_goes_through(
    outbound: Outbound,
) -> None:
    guest = new_guest()
    old = int(time.time()) - 25 * 3600
    await outbound.sim.guest_message(phone_number_id=PHONE_NUMBER_ID, from_=guest, name="Late", text="hi",
                                     timestamp=old)
    conversation_id = await outbound.conversation_of(guest)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await outbound.send(conversation_id)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    trailers = dict(refused.value.trailing_metadata() or ())
    assert trailers["eva-error-code"] == "WINDOW_CLOSED"
    closed_at = json.loads(trailers["eva-error-extra"])["windowClosedAt"]
    assert closed_at.startswith(datetime.fromtimestamp(old + 24 * 3600, UTC).strftime("%Y-%m-%dT%H:%M"))
    assert await outbound.sent_to(guest) == []


async def test_the_same_idempotency_key_sends_once_even_when_retried_concurrently(outbound: Outbound) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    key = f"key-{uuid.uuid4().hex}"
    answers = await asyncio.gather(*(outbound.send(conversation_id, key=key) for _ in range(6)))
    assert len({answer.message.id for answer in answers}) == 1
    assert sum(not answer.replayed for answer in answers) == 1
    await outbound.reaches(answers[0].message.id, "SENT")
    await asyncio.sleep(0.5)  # nothing else is on its way
    assert len(await outbound.sent_to(guest)) == 1
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await outbound.send(conversation_id, key=key, content={"body": "another body"})
    assert dict(reused.value.trailing_metadata() or ())["eva-error-code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_a_retryable_error_is_retried_and_a_final_one_fails_with_metas_code(outbound: Outbound) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    await outbound.sim.add_fault(code=131000, times=1, phone_number_id=PHONE_NUMBER_ID)
    retried = (await outbound.send(conversation_id)).message
    sent = await outbound.reaches(retried.id, "SENT")
    assert sent.attempts == 2

    await outbound.sim.add_fault(code=131009, times=1, phone_number_id=PHONE_NUMBER_ID)
    refused = (await outbound.send(conversation_id, content={"body": "second"})).message
    failed = await outbound.reaches(refused.id, "FAILED")
    [error] = json.loads(failed.error_json)
    assert error["code"] == 131009 and failed.attempts == 1 and error["title"]


async def test_messages_of_a_conversation_leave_in_order_even_when_the_first_is_retried(outbound: Outbound) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    await outbound.sim.add_fault(code=131016, times=2, phone_number_id=PHONE_NUMBER_ID)
    ids = [(await outbound.send(conversation_id, content={"body": f"part {n}"})).message.id for n in range(4)]
    for message_id in ids:
        await outbound.reaches(message_id, "SENT")
    bodies = [item["request"]["text"]["body"] for item in await outbound.sent_to(guest)]
    assert bodies == [f"part {n}" for n in range(4)]
    assert (await outbound.message(ids[0])).attempts == 3


async def test_an_expired_token_fails_the_message_and_reports_the_connection_unhealthy(outbound: Outbound) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    await outbound.sim.add_fault(code=190, times=1, phone_number_id=PHONE_NUMBER_ID)
    refused = {"tenant": outbound.tenant_id, "source": "send"}
    refused_before = REGISTRY.get_sample_value("eva_messaging_token_refused_total", refused) or 0.0
    message = (await outbound.send(conversation_id)).message
    failed = await outbound.reaches(message.id, "FAILED")
    assert json.loads(failed.error_json)[0]["code"] == 190
    assert (outbound.tenant_id, False, 190) in outbound.stack.credentials.health_reports
    # the series the "token expired" alert reads, per tenant
    assert REGISTRY.get_sample_value("eva_messaging_token_refused_total", refused) == refused_before + 1


async def test_a_send_whose_answer_is_lost_is_recognised_by_its_statuses_and_not_sent_again(
    outbound: Outbound,
) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    await outbound.sim.add_fault(kind="slow_accept", delay_seconds=3, times=1, phone_number_id=PHONE_NUMBER_ID)
    message = (await outbound.send(conversation_id, content={"body": "answer lost"})).message
    delivered = await outbound.reaches(message.id, "READ", timeout=30)
    await asyncio.sleep(outbound.stack.settings.send_reconcile_seconds + 1)  # the job had its chance to resend
    sent = await outbound.sent_to(guest)
    assert len(sent) == 1 and sent[0]["wamid"] == delivered.wamid
    assert (await outbound.message(message.id)).attempts == 1


async def test_a_retry_of_a_failed_message_is_the_same_message_sent_again(outbound: Outbound) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    await outbound.sim.add_fault(code=131026, times=1, phone_number_id=PHONE_NUMBER_ID)
    message = (await outbound.send(conversation_id)).message
    await outbound.reaches(message.id, "FAILED")
    retried = await outbound.stack.stub.RetryMessage(messaging_pb2.RetryMessageRequest(message_id=message.id),
                                                     metadata=(("authorization", f"Bearer {outbound.token}"),))
    assert (retried.id, retried.status) == (message.id, "PENDING")
    sent = await outbound.reaches(message.id, "SENT")
    assert sent.attempts == 2 and len(await outbound.sent_to(guest)) == 1


async def conversation_row(outbound: Outbound, conversation_id: str) -> conversation_pb2.Conversation:
    found: conversation_pb2.Conversation = await outbound.stack.conversations.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id),
        metadata=(("authorization", f"Bearer {outbound.token}"),))
    return found


async def test_reading_a_conversation_clears_its_unread_count_and_sends_metas_read_receipt(
    outbound: Outbound,
) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest, "first")
    await outbound.sim.guest_message(phone_number_id=PHONE_NUMBER_ID, from_=guest, name="Guest", text="second")

    async def unread(count: int) -> bool:
        return (await conversation_row(outbound, conversation_id)).unread_count == count
    await eventually(lambda: unread(2))
    read = await outbound.stack.stub.MarkRead(messaging_pb2.MarkReadRequest(conversation_id=conversation_id),
                                              metadata=(("authorization", f"Bearer {outbound.token}"),))
    assert (read.marked, read.receipt_sent) == (2, True)
    await eventually(lambda: unread(0))
    latest = await outbound.message(read.message_id)
    assert latest.read_at and json.loads(latest.content_json) == {"body": "second"}

    async def receipt() -> list[Any]:
        return [item for item in await outbound.sim.read_receipts(phone_number_id=PHONE_NUMBER_ID)
                if item["messageId"] == latest.wamid]
    [sent] = await eventually(receipt)
    assert sent["typingIndicator"] is False
    again = await outbound.stack.stub.MarkRead(messaging_pb2.MarkReadRequest(message_id=read.message_id),
                                               metadata=(("authorization", f"Bearer {outbound.token}"),))
    assert (again.marked, again.receipt_sent) == (0, False)  # nothing new: no second receipt


async def test_typing_is_sent_once_per_interval_inside_the_window_and_never_under_the_never_policy(
    outbound: Outbound,
) -> None:
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    metadata = (("authorization", f"Bearer {outbound.token}"),)
    request = messaging_pb2.SendTypingRequest(conversation_id=conversation_id)
    first = await outbound.stack.stub.SendTyping(request, metadata=metadata)
    second = await outbound.stack.stub.SendTyping(request, metadata=metadata)
    assert (first.outcome, second.outcome) == ("sent", "debounced")
    latest = await outbound.stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(conversation_id=conversation_id),
                                                    metadata=metadata)
    guest_wamid = latest.items[-1].wamid

    async def indicators() -> list[Any]:
        return [item for item in await outbound.sim.read_receipts(phone_number_id=PHONE_NUMBER_ID)
                if item["typingIndicator"] and item["messageId"] == guest_wamid]
    assert len(await eventually(indicators)) == 1

    other = await outbound.guest_writes(new_guest())
    profiles, profile = outbound.stack.credentials.profiles, outbound.stack.credentials.profiles[outbound.tenant_id]
    profiles[outbound.tenant_id] = replace(profile, read_receipts="never")
    outbound.stack.messaging.profiles.forget(outbound.tenant_id)
    try:
        quiet = await outbound.stack.stub.SendTyping(messaging_pb2.SendTypingRequest(conversation_id=other),
                                                     metadata=metadata)
        assert quiet.outcome == "policy"
    finally:
        profiles[outbound.tenant_id] = profile
        outbound.stack.messaging.profiles.forget(outbound.tenant_id)


async def test_a_guest_known_only_by_a_bsuid_is_answered_through_recipient(outbound: Outbound) -> None:
    bsuid = "US." + str(uuid.uuid4().int)[:19]
    name = f"Bsuid {uuid.uuid4().hex[:6]}"
    await outbound.sim.guest_message(phone_number_id=PHONE_NUMBER_ID, from_=None, user_id=bsuid,  # type: ignore[arg-type]
                                     name=name, text="hi, username only")
    conversation_id = await outbound.conversation_of(name)
    message = (await outbound.send(conversation_id)).message
    sent = await outbound.reaches(message.id, "SENT")
    [request] = [item["request"] for item in await outbound.sim.sent_messages(phone_number_id=PHONE_NUMBER_ID)
                 if item["wamid"] == sent.wamid]
    assert request["recipient"] == bsuid and "to" not in request


async def test_templates_are_synced_and_reopen_a_closed_window_marketing_ones_through_their_endpoint(
    outbound: Outbound,
) -> None:
    await outbound.sim.create_template(
        waba_id=WABA_ID, name="spring_offer", language="en_US", category="MARKETING",
        components=[{"type": "BODY", "text": "Hello {{1}}, 20% off in spring"}])
    admin = outbound.issuer.user_token(user_id="admin-1", tenant_id=outbound.tenant_id, role="admin")
    synced = await outbound.stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(),
                                                     metadata=(("authorization", f"Bearer {admin}"),))
    assert synced.fetched >= 2
    guest = new_guest()
    await outbound.sim.guest_message(phone_number_id=PHONE_NUMBER_ID, from_=guest, name="Old guest", text="hi",
                                     timestamp=int(time.time()) - 30 * 3600)
    conversation_id = await outbound.conversation_of(guest)
    hello = (await outbound.send(conversation_id, type="template",
                                 content={"name": "hello_world", "language": {"code": "en_US"}})).message
    assert (await outbound.reaches(hello.id, "SENT")).category == "utility"
    with pytest.raises(grpc.aio.AioRpcError) as mismatch:
        await outbound.send(conversation_id, type="template",
                            content={"name": "spring_offer", "language": {"code": "en_US"}})
    assert dict(mismatch.value.trailing_metadata() or ())["eva-error-code"] == "TEMPLATE_PARAMS_MISMATCH"
    offer = (await outbound.send(conversation_id, type="template", content={
        "name": "spring_offer", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]})).message
    sent = await outbound.reaches(offer.id, "SENT")
    [record] = [item for item in await outbound.sim.sent_messages(phone_number_id=PHONE_NUMBER_ID)
                if item["wamid"] == sent.wamid]
    assert record["endpoint"] == "marketing_messages" and sent.category == "marketing"


async def test_an_uploaded_image_is_put_on_metas_side_and_sent_by_metas_media_id(outbound: Outbound) -> None:
    from eva_common.grpc.client import upload_rpc
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 2048

    async def chunks() -> AsyncIterator[messaging_pb2.UploadMediaChunk]:
        yield messaging_pb2.UploadMediaChunk(data=png[:1000], mime_type="image/png", filename="room.png", kind="image")
        yield messaging_pb2.UploadMediaChunk(data=png[1000:])
    uploaded = await upload_rpc(outbound.stack.stub.UploadMedia, chunks(), token=outbound.token, timeout=10)
    guest = new_guest()
    conversation_id = await outbound.guest_writes(guest)
    message = (await outbound.send(conversation_id, type="image",
                                   content={"mediaId": uploaded.id, "caption": "Your room"})).message
    sent = await outbound.reaches(message.id, "SENT")
    [request] = [item["request"] for item in await outbound.sim.sent_messages(phone_number_id=PHONE_NUMBER_ID)
                 if item["wamid"] == sent.wamid]
    assert request["image"]["caption"] == "Your room" and request["image"]["id"] != uploaded.id
    assert request["image"]["id"].isdigit()  # Meta's media id, from the upload to the simulator's Graph API


async def test_an_exhausted_quota_and_a_suspended_tenant_are_refused_before_anything_is_stored(
    outbound: Outbound,
) -> None:
    conversation_id = await outbound.guest_writes(new_guest())
    credentials, tenant = outbound.stack.credentials, outbound.tenant_id
    credentials.exhausted.add(tenant)
    outbound.stack.messaging.quotas.forget(tenant)  # an earlier send's answer is kept a few seconds
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await outbound.send(conversation_id)
        assert dict(refused.value.trailing_metadata() or ())["eva-error-code"] == "QUOTA_EXCEEDED"
    finally:
        credentials.exhausted.discard(tenant)
        outbound.stack.messaging.quotas.forget(tenant)
    profile = credentials.profiles[tenant]
    credentials.profiles[tenant] = replace(profile, tenant_status="suspended")
    outbound.stack.messaging.profiles.forget(tenant)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as suspended:
            await outbound.send(conversation_id)
        assert suspended.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert dict(suspended.value.trailing_metadata() or ())["eva-error-code"] == "TENANT_SUSPENDED"
    finally:
        credentials.profiles[tenant] = profile
        outbound.stack.messaging.profiles.forget(tenant)
    page = await outbound.stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(conversation_id=conversation_id),
                                                  metadata=(("authorization", f"Bearer {outbound.token}"),))
    assert [item.direction for item in page.items] == ["inbound"]


async def test_an_attendants_reply_overtakes_a_queue_of_bulk_sends(outbound: Outbound) -> None:
    """At 4 messages/s, 24 bulk sends are 6 s of work; the reply written after them waits only for the sends already
    given a governor slot (at most its 2 s look-ahead), never for the rest of the queue."""
    credentials, tenant = outbound.stack.credentials, outbound.tenant_id
    profile, rate, look_ahead = credentials.profiles[tenant], 4, 2.0
    credentials.profiles[tenant] = replace(profile, throughput_mps=rate)
    outbound.stack.messaging.profiles.forget(tenant)
    try:
        guests = [new_guest() for _ in range(25)]
        conversations = [await outbound.guest_writes(guest) for guest in guests]
        metadata = (("authorization", f"Bearer {outbound.token}"),)
        bulk = await asyncio.gather(*(outbound.stack.stub.SendMessage(
            messaging_pb2.SendMessageRequest(conversation_id=conversation, type="text", priority="bulk",
                                             content_json=json.dumps({"body": "Spring newsletter"})),
            metadata=metadata) for conversation in conversations[:24]))
        reply = (await outbound.send(conversations[24], content={"body": "Your taxi is here"})).message
        # the bound counts from when the reply was written, not from when it was asked for: on a loaded machine the
        # call itself can take a second, during which the governor rightly keeps sending the bulk already queued
        replied_at = datetime.fromisoformat(reply.created_at.replace("Z", "+00:00")).timestamp()
        for message_id in [reply.id, *(answer.message.id for answer in bulk)]:
            await outbound.reaches(message_id, "SENT", timeout=30)
        sent = [item for item in await outbound.sim.sent_messages(phone_number_id=PHONE_NUMBER_ID)
                if item["waId"] in guests]
        order = [item["request"]["text"]["body"] for item in sent]
        before = sum(1 for item in sent if item["receivedAt"] < replied_at)
        assert order.index("Your taxi is here") <= before + math.ceil(look_ahead * rate) + 1, (before, order)
        assert order.index("Your taxi is here") < 20
    finally:
        credentials.profiles[tenant] = profile
        outbound.stack.messaging.profiles.forget(tenant)
