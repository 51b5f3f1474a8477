"""Kafka topics and their sizing. Keys: conversation id for message and conversation events,
phone_number_id for raw webhooks, tenant id for tenant, audit and integration events."""

from __future__ import annotations

from dataclasses import dataclass

WA_WEBHOOKS = "wa.webhooks.v1"
WEBHOOK_OUTCOMES = "webhook.outcomes.v1"
MESSAGING_EVENTS = "messaging.events.v1"
CONVERSATION_EVENTS = "conversation.events.v1"
TENANT_EVENTS = "tenant.events.v1"
AUDIT_EVENTS = "audit.events.v1"
INTEGRATION_EVENTS = "integration.events.v1"  # n8n-integration: webhook.subscription_paused (key tenant id)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a 3 MB Meta delivery plus its envelope
DAY_MS = 24 * 60 * 60 * 1000
RETENTION_MS = 7 * DAY_MS  # a week to replay a consumer's backlog or rebuild a projection after an incident
DLQ_RETENTION_MS = 30 * DAY_MS  # dead letters wait for a person to look at them and redeliver


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    max_message_bytes: int = 1024 * 1024
    retention_ms: int = RETENTION_MS
    cleanup_policy: str = "delete"  # no topic is compacted: every event matters, not only a key's latest


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(WA_WEBHOOKS, 6, MAX_MESSAGE_BYTES),
    TopicSpec(WEBHOOK_OUTCOMES, 3),
    TopicSpec(MESSAGING_EVENTS, 12, MAX_MESSAGE_BYTES),
    TopicSpec(CONVERSATION_EVENTS, 12),
    TopicSpec(TENANT_EVENTS, 3),
    TopicSpec(AUDIT_EVENTS, 3),
    TopicSpec(INTEGRATION_EVENTS, 3),
)

ALL_TOPICS: tuple[TopicSpec, ...] = TOPICS + tuple(
    TopicSpec(dlq(spec.name), 1, spec.max_message_bytes, DLQ_RETENTION_MS) for spec in TOPICS
)
