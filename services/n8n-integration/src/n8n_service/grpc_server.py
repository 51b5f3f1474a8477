"""gRPC WebhookService (eva.n8n.v1): proto <-> domain mapping only. The caller's token is verified by the shared
interceptor (eva_common.grpc.interceptors), which also maps the use cases' DomainErrors to gRPC statuses with their
stable code; who may call and what is refused is `service.WebhookService`'s."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
from eva.n8n.v1 import webhooks_pb2, webhooks_pb2_grpc
from eva_common.audit import Actor
from eva_common.auth import current_principal
from eva_common.errors import InvalidArgument
from eva_common.grpc.metadata import request_meta
from eva_common.timefmt import parse_rfc3339, rfc3339

from n8n_service.service import TIME_RANGE_INVALID, DeliveryView, SubscriptionView, WebhookService

SERVICE_NAME = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name


def subscription_message(view: SubscriptionView) -> webhooks_pb2.Subscription:
    return webhooks_pb2.Subscription(
        id=view.id, tenant_id=view.tenant_id, url=view.url, events=view.events, state=view.state,
        paused_reason=view.paused_reason or "", consecutive_failures=view.consecutive_failures,
        created_at=rfc3339(view.created_at), updated_at=rfc3339(view.updated_at), created_by=view.created_by or "",
    )


def delivery_message(view: DeliveryView) -> webhooks_pb2.Delivery:
    message = webhooks_pb2.Delivery(
        id=view.id, tenant_id=view.tenant_id, subscription_id=view.subscription_id, event_id=view.event_id,
        event_type=view.event_type, state=view.state, attempts=view.attempts,
        next_attempt_at=rfc3339(view.next_attempt_at),
        expires_at=rfc3339(view.expires_at), last_error=view.last_error or "",
        last_status_code=view.last_status_code or 0, created_at=rfc3339(view.created_at),
        delivered_at=rfc3339(view.delivered_at),
        envelope_json=json.dumps(view.envelope, separators=(",", ":"), ensure_ascii=False),
    )
    if view.last_latency_ms is not None:
        message.last_latency_ms = view.last_latency_ms
    return message


def actor(context: grpc.aio.ServicerContext) -> Actor:
    """The verified caller, with the gateway's view of its address and agent (for audit only)."""
    return Actor(principal=current_principal(), meta=request_meta(context))


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, *, webhooks: WebhookService) -> None:
        self._webhooks = webhooks

    # --- subscriptions -------------------------------------------------------------------------------------------
    async def CreateSubscription(
        self, request: webhooks_pb2.CreateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.CreatedSubscription:
        created = await self._webhooks.create_subscription(
            actor=actor(context), url=request.url, events=list(request.events),
            secret=request.secret if request.HasField("secret") else None,
        )
        return webhooks_pb2.CreatedSubscription(subscription=subscription_message(created.subscription),
                                                secret=created.secret)

    async def ListSubscriptions(
        self, request: webhooks_pb2.ListSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListSubscriptionsResponse:
        views = await self._webhooks.list_subscriptions(principal=current_principal())
        return webhooks_pb2.ListSubscriptionsResponse(items=[subscription_message(view) for view in views])

    async def GetSubscription(
        self, request: webhooks_pb2.GetSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Subscription:
        view = await self._webhooks.get_subscription(principal=current_principal(),
                                                     subscription_id=request.subscription_id)
        return subscription_message(view)

    async def UpdateSubscription(
        self, request: webhooks_pb2.UpdateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Subscription:
        view = await self._webhooks.update_subscription(
            actor=actor(context), subscription_id=request.subscription_id,
            url=request.url if request.HasField("url") else None,
            events=list(request.events.items) if request.HasField("events") else None,
            state=request.state if request.HasField("state") else None,
        )
        return subscription_message(view)

    async def DeleteSubscription(
        self, request: webhooks_pb2.DeleteSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.DeleteSubscriptionResponse:
        await self._webhooks.delete_subscription(actor=actor(context), subscription_id=request.subscription_id)
        return webhooks_pb2.DeleteSubscriptionResponse()

    # --- the delivery log ----------------------------------------------------------------------------------------
    async def ListDeliveries(
        self, request: webhooks_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListDeliveriesResponse:
        page = await self._webhooks.list_deliveries(
            principal=current_principal(),
            subscription_id=request.subscription_id or None,
            state=request.state or None,
            since=parse_rfc3339(request.from_time, field="from_time", code=TIME_RANGE_INVALID),
            until=parse_rfc3339(request.to_time, field="to_time", code=TIME_RANGE_INVALID),
            limit=request.limit,
            cursor=request.cursor,
        )
        return webhooks_pb2.ListDeliveriesResponse(items=[delivery_message(view) for view in page.items],
                                                   next_cursor=page.next_cursor or "")

    async def GetDelivery(
        self, request: webhooks_pb2.GetDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Delivery:
        view = await self._webhooks.get_delivery(principal=current_principal(), delivery_id=request.delivery_id)
        return delivery_message(view)

    async def Redeliver(
        self, request: webhooks_pb2.RedeliverRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.Delivery:
        view = await self._webhooks.redeliver(actor=actor(context), delivery_id=request.delivery_id)
        return delivery_message(view)

    async def RedeliverRange(
        self, request: webhooks_pb2.RedeliverRangeRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.RedeliverRangeResponse:
        since = parse_rfc3339(request.from_time, field="from_time", code=TIME_RANGE_INVALID)
        until = parse_rfc3339(request.to_time, field="to_time", code=TIME_RANGE_INVALID)
        if since is None or until is None:
            raise InvalidArgument("from_time and to_time are both required", code=TIME_RANGE_INVALID)
        count = await self._webhooks.redeliver_range(actor=actor(context), subscription_id=request.subscription_id,
                                                     since=since, until=until)
        return webhooks_pb2.RedeliverRangeResponse(count=count)


def registrar(servicer: WebhookServicer) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        webhooks_pb2_grpc.add_WebhookServiceServicer_to_server(servicer, server)

    return register
