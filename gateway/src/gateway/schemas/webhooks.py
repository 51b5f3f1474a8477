"""Outbound webhook bodies: subscriptions (the signing secret only in the creation's answer), the delivery log and
redelivery. The domain rules (event types, the URL's SSRF guard, the secret's length, states, time ranges) are the
n8n-integration service's, so its stable codes reach the client; the edge checks only shapes and sizes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from eva.n8n.v1 import webhooks_pb2
from pydantic import AwareDatetime, Field, model_validator

from gateway.schemas.base import CamelModel, optional, parse_json_object, require_some_field, rfc3339

EVENT_TYPES = ("message.received", "message.status", "conversation.created", "conversation.updated",
               "conversation.assigned", "escalation.raised", "escalation.updated")
SUBSCRIPTION_STATES = ("active", "paused")
DELIVERY_STATES = ("pending", "delivered", "dead")

# Documented as enums in OpenAPI, checked by the service (WEBHOOK_EVENTS_INVALID, WEBHOOK_STATE_INVALID).
EventType = Annotated[str, Field(max_length=64, json_schema_extra={"enum": list(EVENT_TYPES)})]
EventList = Annotated[list[EventType], Field(max_length=50, description="Public event types (at least one)",
                                             examples=[["message.received", "conversation.assigned"]])]
SubscriptionState = Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(SUBSCRIPTION_STATES)})]
WebhookUrl = Annotated[str, Field(min_length=1, max_length=4096, examples=["https://n8n.hotel.example/webhook/eva"],
                                  description="https (http only where the operator allows it); its host must "
                                              "resolve to public addresses only (WEBHOOK_URL_NOT_ALLOWED)")]


class WebhookCreateIn(CamelModel):
    url: WebhookUrl
    events: EventList
    secret: str | None = Field(default=None, max_length=1024,
                               description="The signing secret, 16–256 printable characters; omitted: one is "
                                           "generated. Either way it is in the answer once and never again.")

    def to_proto(self) -> webhooks_pb2.CreateSubscriptionRequest:
        request = webhooks_pb2.CreateSubscriptionRequest(url=self.url, events=list(self.events))
        if self.secret is not None:
            request.secret = self.secret
        return request


class WebhookUpdateIn(CamelModel):
    """Only the fields given change; at least one must be given. `state: active` resumes a paused subscription
    (its failures are cleared and its queued deliveries leave in order)."""

    url: WebhookUrl | None = None
    events: EventList | None = None
    state: SubscriptionState | None = Field(default=None, description="active | paused")

    @model_validator(mode="after")
    def _changes_something(self) -> WebhookUpdateIn:
        require_some_field(self)
        return self

    def to_proto(self, subscription_id: str) -> webhooks_pb2.UpdateSubscriptionRequest:
        request = webhooks_pb2.UpdateSubscriptionRequest(subscription_id=subscription_id)
        if self.url is not None:
            request.url = self.url
        if self.events is not None:
            request.events.items.extend(self.events)
        if self.state is not None:
            request.state = self.state
        return request


class WebhookOut(CamelModel):
    """A subscription; never its secret."""

    id: str
    url: str
    events: list[str]
    state: str = Field(description="active | paused")
    paused_reason: str | None = Field(description="Why it is paused (by a user, or after failing), null when active")
    consecutive_failures: int = Field(description="Attempts failed in a row (reset by a success or a resume)")
    created_at: str | None
    updated_at: str | None
    created_by: str | None = Field(description="The user who created it")

    @classmethod
    def fields_of(cls, subscription: webhooks_pb2.Subscription) -> dict[str, Any]:
        return {
            "id": subscription.id, "url": subscription.url, "events": list(subscription.events),
            "state": subscription.state, "paused_reason": optional(subscription.paused_reason),
            "consecutive_failures": subscription.consecutive_failures,
            "created_at": optional(subscription.created_at), "updated_at": optional(subscription.updated_at),
            "created_by": optional(subscription.created_by),
        }

    @classmethod
    def from_proto(cls, subscription: webhooks_pb2.Subscription) -> WebhookOut:
        return cls(**cls.fields_of(subscription))


class CreatedWebhookOut(WebhookOut):
    secret: str = Field(description="The signing secret (`X-Eva-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
                                    "\"<t>.<body>\">`). It is shown only in this response and cannot be read "
                                    "again: store it now.")

    @classmethod
    def from_created(cls, created: webhooks_pb2.CreatedSubscription) -> CreatedWebhookOut:
        return cls(**cls.fields_of(created.subscription), secret=created.secret)


class WebhookList(CamelModel):
    items: list[WebhookOut]
    next_cursor: str | None = Field(default=None, description="Always null: every subscription (at most 20) is on "
                                                              "the one page")


class WebhookDeliveryOut(CamelModel):
    """One event's delivery to one subscription: its state, attempts and the last attempt's outcome."""

    id: str
    subscription_id: str
    event_id: str = Field(description="Eva's event id: the envelope's `id` and `X-Eva-Event-Id`, the same on every "
                                      "attempt and redelivery")
    event_type: str = Field(examples=["message.received"])
    state: str = Field(description="pending (queued or being retried) | delivered | dead (expired after 24 h of "
                                   "failures; redeliver to try again)")
    attempts: int
    last_error: str | None = Field(description="What the last failed attempt met (a status, a timeout, a refused "
                                               "address)")
    last_status_code: int | None = Field(description="The receiver's HTTP status of the last attempt (null: no "
                                                     "answer)")
    latency_ms: int | None = Field(description="How long the last attempt took, in milliseconds")
    next_attempt_at: str | None = Field(description="When a pending delivery is attempted next")
    expires_at: str | None = Field(description="A failure after this makes it dead")
    created_at: str | None
    delivered_at: str | None
    envelope: dict[str, Any] = Field(description="The body sent: `{id, type, tenantId, occurredAt, seq, data}`")

    @classmethod
    def from_proto(cls, delivery: webhooks_pb2.Delivery) -> WebhookDeliveryOut:
        return cls(
            id=delivery.id, subscription_id=delivery.subscription_id, event_id=delivery.event_id,
            event_type=delivery.event_type, state=delivery.state, attempts=delivery.attempts,
            last_error=optional(delivery.last_error), last_status_code=delivery.last_status_code or None,
            latency_ms=delivery.last_latency_ms if delivery.HasField("last_latency_ms") else None,
            next_attempt_at=optional(delivery.next_attempt_at), expires_at=optional(delivery.expires_at),
            created_at=optional(delivery.created_at), delivered_at=optional(delivery.delivered_at),
            envelope=parse_json_object(delivery.envelope_json),
        )


class WebhookDeliveryPage(CamelModel):
    items: list[WebhookDeliveryOut]
    next_cursor: str | None


class RedeliverRangeIn(CamelModel):
    """Every delivered or dead delivery of the subscription created in [from, to) goes back in line."""

    from_time: AwareDatetime = Field(alias="from", description="RFC 3339 with an offset, inclusive")
    to_time: AwareDatetime = Field(alias="to", description="RFC 3339 with an offset, exclusive")

    def to_proto(self, subscription_id: str) -> webhooks_pb2.RedeliverRangeRequest:
        return webhooks_pb2.RedeliverRangeRequest(subscription_id=subscription_id, from_time=rfc3339(self.from_time),
                                                  to_time=rfc3339(self.to_time))


class RedeliverRangeOut(CamelModel):
    count: int = Field(description="How many deliveries were put back in line")


def time_filter(moment: datetime | None) -> str:
    return rfc3339(moment) if moment is not None else ""

