"""Kafka event contracts shared by every service."""

from eva_events.envelope import CamelModel, EventEnvelope, make_event

__all__ = ["CamelModel", "EventEnvelope", "make_event"]
