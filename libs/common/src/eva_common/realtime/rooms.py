"""Socket.io room names (one per tenant, per user and per conversation)."""

from __future__ import annotations


def tenant_room(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def conversation_room(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"
