"""Socket.io room names. Every signed-in socket is in its tenant's room (where realtime emits every seq-bearing
event) and its user's room (where an event for that user goes too, in the same emit as the tenant's room: an
assignment to its assignee); a socket joins a conversation's room to get its typing indicators."""

from __future__ import annotations


def tenant_room(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def conversation_room(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"
