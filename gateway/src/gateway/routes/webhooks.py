"""/api/webhooks: the tenant's outbound webhook subscriptions and their delivery log, for its admins (n8n-integration's
WebhookService). The signing secret is returned once, at creation. Users only: an API key is 403
API_KEY_NOT_ALLOWED, an attendant 403 FORBIDDEN_ROLE (at the edge, and again by the service); another tenant's
subscription or delivery is 404."""

from __future__ import annotations

from typing import Annotated

from eva.n8n.v1 import webhooks_pb2
from eva_common.auth import Principal
from eva_common.identity import ADMIN_ROLES
from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import api_problems
from gateway.routes.params import Cursor, DeliveryId, PageLimit, WebhookId
from gateway.schemas.base import DEFAULT_PAGE_SIZE, optional
from gateway.schemas.webhooks import (
    DELIVERY_STATES,
    CreatedWebhookOut,
    RedeliverRangeIn,
    RedeliverRangeOut,
    WebhookCreateIn,
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookList,
    WebhookOut,
    WebhookUpdateIn,
    time_filter,
)
from gateway.visibility import ensure_visible, visible_items

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

_SIGNING = (
    "Each delivery is `POST <url>` with the body `{id, type, tenantId, occurredAt, seq, data}` and "
    "`X-Eva-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" with the secret>`; at least once, "
    "in order per conversation, retried with backoff for 24 hours."
)


def _admin(principal: Principal) -> Principal:
    principal.require_role(*ADMIN_ROLES)  # FORBIDDEN_ROLE before any upstream call
    return principal


def _subscription(principal: Principal, subscription: webhooks_pb2.Subscription) -> WebhookOut:
    ensure_visible(principal, subscription.tenant_id, what="webhook subscription")
    return WebhookOut.from_proto(subscription)


def _delivery(principal: Principal, delivery: webhooks_pb2.Delivery) -> WebhookDeliveryOut:
    ensure_visible(principal, delivery.tenant_id, what="webhook delivery")
    return WebhookDeliveryOut.from_proto(delivery)


# --- subscriptions (the /deliveries routes come before /{subscription_id}) -----------------------------------------
@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL to events (admins); the signing secret is in this response only",
    description=(
        "Checks the URL (https; its host must resolve to public addresses only: WEBHOOK_URL_NOT_ALLOWED, "
        "WEBHOOK_URL_UNRESOLVABLE, WEBHOOK_URL_INVALID), the events (WEBHOOK_EVENTS_INVALID) and the secret "
        "(WEBHOOK_SECRET_INVALID); at most 20 subscriptions per tenant (422 WEBHOOK_LIMIT_REACHED). **The `secret` "
        "field of this response is the only time the secret is shown.** " + _SIGNING
    ),
    responses=api_problems(400, 409, 413, 422),
)
async def create_webhook(body: WebhookCreateIn, principal: PrincipalDep, clients: ClientsDep) -> CreatedWebhookOut:
    _admin(principal)
    created: webhooks_pb2.CreatedSubscription = await clients.call(clients.webhooks.CreateSubscription,
                                                                   body.to_proto(), token=principal.token)
    ensure_visible(principal, created.subscription.tenant_id, what="webhook subscription")
    return CreatedWebhookOut.from_created(created)


@router.get("", summary="The tenant's webhook subscriptions, oldest first, never their secrets (admins)",
            responses=api_problems(409))
async def list_webhooks(principal: PrincipalDep, clients: ClientsDep) -> WebhookList:
    _admin(principal)
    listing: webhooks_pb2.ListSubscriptionsResponse = await clients.call(
        clients.webhooks.ListSubscriptions, webhooks_pb2.ListSubscriptionsRequest(), token=principal.token)
    items = visible_items(principal, listing.items, what="webhook subscription")
    return WebhookList(items=[WebhookOut.from_proto(item) for item in items])


# --- the delivery log ------------------------------------------------------------------------------------------------
@router.get(
    "/deliveries",
    summary="The delivery log, newest first, a page at a time (admins)",
    description="Each delivery's state, attempts, last error, the receiver's last status code and latency, and the "
                "envelope sent. `from`/`to` bound the creation time (RFC 3339 with an offset; from inclusive, to "
                "exclusive: WEBHOOK_TIME_RANGE_INVALID otherwise).",
    responses=api_problems(400, 409),
)
async def list_deliveries(
    principal: PrincipalDep,
    clients: ClientsDep,
    subscription_id: Annotated[str | None, Query(alias="subscriptionId", min_length=1, max_length=128,
                                                 description="Only this subscription's deliveries")] = None,
    state: Annotated[str | None, Query(min_length=1, max_length=32, description=" | ".join(DELIVERY_STATES),
                                       json_schema_extra={"enum": list(DELIVERY_STATES)})] = None,
    from_time: Annotated[AwareDatetime | None, Query(alias="from", description="RFC 3339, inclusive")] = None,
    to_time: Annotated[AwareDatetime | None, Query(alias="to", description="RFC 3339, exclusive")] = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> WebhookDeliveryPage:
    _admin(principal)
    page: webhooks_pb2.ListDeliveriesResponse = await clients.call(
        clients.webhooks.ListDeliveries,
        webhooks_pb2.ListDeliveriesRequest(
            subscription_id=subscription_id or "", state=state or "", from_time=time_filter(from_time),
            to_time=time_filter(to_time), limit=limit, cursor=cursor or "",
        ),
        token=principal.token,
    )
    items = visible_items(principal, page.items, what="webhook delivery")
    return WebhookDeliveryPage(items=[WebhookDeliveryOut.from_proto(item) for item in items],
                               next_cursor=optional(page.next_cursor))


@router.get("/deliveries/{delivery_id}", summary="One delivery of the log (admins)",
            responses=api_problems(400, 404, 409))
async def get_delivery(delivery_id: DeliveryId, principal: PrincipalDep, clients: ClientsDep) -> WebhookDeliveryOut:
    _admin(principal)
    delivery: webhooks_pb2.Delivery = await clients.call(
        clients.webhooks.GetDelivery, webhooks_pb2.GetDeliveryRequest(delivery_id=delivery_id), token=principal.token)
    return _delivery(principal, delivery)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    summary="Send a delivered or dead delivery again (admins)",
    description="It goes back to `pending`, due now, with a fresh 24-hour expiry and its attempts kept; it keeps its "
                "place in its conversation's line. A delivery still pending is 422 WEBHOOK_DELIVERY_PENDING.",
    responses=api_problems(400, 404, 409, 422),
)
async def redeliver(delivery_id: DeliveryId, principal: PrincipalDep, clients: ClientsDep) -> WebhookDeliveryOut:
    _admin(principal)
    delivery: webhooks_pb2.Delivery = await clients.call(
        clients.webhooks.Redeliver, webhooks_pb2.RedeliverRequest(delivery_id=delivery_id), token=principal.token)
    return _delivery(principal, delivery)


# --- one subscription ------------------------------------------------------------------------------------------------
@router.get("/{subscription_id}", summary="One webhook subscription, never its secret (admins)",
            responses=api_problems(400, 404, 409))
async def get_webhook(subscription_id: WebhookId, principal: PrincipalDep, clients: ClientsDep) -> WebhookOut:
    _admin(principal)
    subscription: webhooks_pb2.Subscription = await clients.call(
        clients.webhooks.GetSubscription, webhooks_pb2.GetSubscriptionRequest(subscription_id=subscription_id),
        token=principal.token)
    return _subscription(principal, subscription)


@router.patch(
    "/{subscription_id}",
    summary="Change a subscription's URL, events or state (admins)",
    description="Only the fields given change. `state: paused` stops its attempts (its events still queue); "
                "`state: active` resumes it, clearing its failures. A new URL is checked again.",
    responses=api_problems(400, 404, 409, 413),
)
async def update_webhook(subscription_id: WebhookId, body: WebhookUpdateIn, principal: PrincipalDep,
                         clients: ClientsDep) -> WebhookOut:
    _admin(principal)
    subscription: webhooks_pb2.Subscription = await clients.call(
        clients.webhooks.UpdateSubscription, body.to_proto(subscription_id), token=principal.token)
    return _subscription(principal, subscription)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a subscription and its delivery log (admins)",
               responses=api_problems(400, 404, 409))
async def delete_webhook(subscription_id: WebhookId, principal: PrincipalDep, clients: ClientsDep) -> None:
    _admin(principal)
    await clients.call(clients.webhooks.DeleteSubscription,
                       webhooks_pb2.DeleteSubscriptionRequest(subscription_id=subscription_id), token=principal.token)


@router.post(
    "/{subscription_id}/redeliver",
    summary="Send again every delivered or dead delivery of a subscription created in a time range (admins)",
    description="`{from, to}`: RFC 3339 with an offset, from inclusive, to exclusive (WEBHOOK_TIME_RANGE_INVALID "
                "otherwise). Answers how many deliveries went back in line.",
    responses=api_problems(400, 404, 409, 413),
)
async def redeliver_range(subscription_id: WebhookId, body: RedeliverRangeIn, principal: PrincipalDep,
                          clients: ClientsDep) -> RedeliverRangeOut:
    _admin(principal)
    answer: webhooks_pb2.RedeliverRangeResponse = await clients.call(
        clients.webhooks.RedeliverRange, body.to_proto(subscription_id), token=principal.token)
    return RedeliverRangeOut(count=answer.count)
