"""Writing a message and its statuses inside the caller's tenant transaction, with their events in the outbox:
stored once per (tenant, wamid); a media message gets its download job; a reaction updates the reacted message's
summary; statuses parked before the message existed are applied right after it is inserted, in Meta's timestamp
order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eva_common.outbox import enqueue
from eva_events.messaging import MESSAGE_STATUS_CHANGED, ContactSnapshot
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service import media_state, statuses
from messaging_service.content import REACTION
from messaging_service.events import MESSAGE_UPDATED, message_event
from messaging_service.graph_errors import with_hints
from messaging_service.models import INBOUND, MediaJob, Message, MessageStatus, ParkedStatus
from messaging_service.repository import MessageRepository
from messaging_service.webhook import StatusUpdate

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def store_message(
    session: AsyncSession, message: Message, *, event_type: str, events_topic: str,
    contact: ContactSnapshot | None = None,
) -> Message | None:
    """Inserts the message unless its (tenant, wamid) is stored, announces it, queues its media download and applies
    its parked statuses. None when it was a duplicate (nothing written).

    Meta sends statuses only for the business's messages (Eva's sends, the business app's echoes): a guest's message
    has none to wait for or apply, so it takes neither the wamid's lock nor a look at the parked statuses (two of
    the four statements of every guest message)."""
    repository = MessageRepository(session)
    has_statuses = message.direction != INBOUND
    if message.wamid and has_statuses:
        await repository.lock_wamid(tenant_id=message.tenant_id, wamid=message.wamid)
    stored = await repository.insert_once(message)
    if stored is None:
        return None
    return await announce(session, stored, event_type=event_type, events_topic=events_topic, contact=contact)


async def store_guest_messages(session: AsyncSession, messages: Sequence[Message]) -> dict[str, Message]:
    """Inserts guests' messages of the session's tenant in one statement, each once per (tenant, wamid): the stored
    ones by wamid (a wamid stored before, or a second copy, is left out). Each is then `announce`d by the caller, in
    its delivery's order."""
    if not all(message.direction == INBOUND and message.wamid for message in messages):
        raise ValueError("only guests' messages with their wamid are stored together")
    return {row.wamid: row for row in await MessageRepository(session).insert_many(messages) if row.wamid}


async def announce(
    session: AsyncSession, stored: Message, *, event_type: str, events_topic: str,
    contact: ContactSnapshot | None = None,
) -> Message:
    """What follows a message's insert: its media download job, its event, a reaction's summary, and (a message of
    the business) the statuses parked for its wamid."""
    has_statuses = stored.direction != INBOUND
    media_id = media_state.media_id(stored.media)
    if media_id is not None:
        await MessageRepository(session).add_media_job(
            MediaJob(tenant_id=stored.tenant_id, message_id=stored.id, media_id=media_id))
    await enqueue(session, topic=events_topic, key=str(stored.conversation_id),
                  event=message_event(event_type, stored, contact=contact))
    if stored.type == REACTION and stored.direction == INBOUND:
        await _react(session, stored, events_topic=events_topic)
    return await apply_parked(session, stored, events_topic=events_topic) if has_statuses else stored


async def apply_parked(session: AsyncSession, message: Message, *, events_topic: str) -> Message:
    """Applies the statuses parked for the message's wamid (they came before it was stored, or before its send's
    answer was recorded), in Meta's timestamp order. Returns the message as they left it."""
    if not message.wamid:
        return message
    parked = await MessageRepository(session).take_parked(tenant_id=message.tenant_id, wamid=message.wamid)
    for item in sorted(parked, key=lambda p: (p.occurred_at or _EPOCH, p.id or 0)):
        moved = await apply_status(session, message, parked_update(item), events_topic=events_topic)
        message = moved or message
    return message


async def _react(session: AsyncSession, reaction: Message, *, events_topic: str) -> None:
    """Keeps the reacted message's summary: one reaction per contact, the newest by Meta's timestamp; a reaction
    without an emoji removes the contact's. A reaction to a message not stored here changes nothing else."""
    target_wamid = reaction.content.get("messageId")
    if not isinstance(target_wamid, str) or not target_wamid:
        return
    repository = MessageRepository(session)
    target = await repository.message_by_wamid_for_update(tenant_id=reaction.tenant_id, wamid=target_wamid)
    if target is None:
        return
    contact = str(reaction.contact_id)
    reacted_at = reaction.sent_at.astimezone(UTC).isoformat()
    current = list(target.reactions or [])
    previous = next((item for item in current if item.get("contactId") == contact), None)
    if previous is not None and str(previous.get("reactedAt", "")) > reacted_at:
        return  # an older reaction arriving late never replaces a newer one
    summary = [item for item in current if item.get("contactId") != contact]
    emoji = reaction.content.get("emoji")
    if emoji and not reaction.content.get("removed"):
        summary.append({"contactId": contact, "emoji": emoji, "reactionWamid": reaction.wamid,
                        "reactedAt": reacted_at})
    if summary == current:
        return
    updated = await repository.set_reactions(tenant_id=target.tenant_id, message_id=target.id, reactions=summary)
    if updated is not None:
        await enqueue(session, topic=events_topic, key=str(updated.conversation_id),
                      event=message_event(MESSAGE_UPDATED, updated, history=await repository.history_of(updated)))


def parked_update(parked: ParkedStatus) -> StatusUpdate:
    raw = parked.payload
    pricing = raw.get("pricing") if isinstance(raw, dict) else None
    category = pricing.get("category") if isinstance(pricing, dict) else None
    return StatusUpdate(
        wamid=parked.wamid, status=parked.status, occurred_at=parked.occurred_at, recipient_id=parked.recipient_id,
        phone_number_id=parked.phone_number_id, errors=parked.errors, raw=raw,
        pricing_category=category if isinstance(category, str) and category else None,
    )


async def apply_status(
    session: AsyncSession, message: Message, update: StatusUpdate, *, events_topic: str
) -> Message | None:
    """Records the status in the message's history, keeps its pricing category and moves the message forward
    (announcing `message.status_changed`). Returns the moved message, or None when it did not move."""
    repository = MessageRepository(session)
    error = with_hints(update.errors) if update.status == statuses.FAILED else None
    moved = await repository.record_and_advance(
        MessageStatus(tenant_id=message.tenant_id, message_id=message.id, wamid=update.wamid, status=update.status,
                      occurred_at=update.occurred_at, recipient_id=update.recipient_id, errors=update.errors,
                      payload=update.raw),
        error=error, pricing_category=update.pricing_category, from_statuses=statuses.predecessors(update.status))
    if moved is None and update.pricing_category and message.pricing_category is None:
        await repository.set_pricing_category(tenant_id=message.tenant_id, message_id=message.id,
                                              category=update.pricing_category)
    if moved is None:
        return None
    await _announce_status(session, moved, update, error, events_topic=events_topic)
    return moved


async def apply_statuses(
    session: AsyncSession, pairs: Sequence[tuple[Message, StatusUpdate]], *, events_topic: str
) -> list[Message | None]:
    """`apply_status` for statuses of different messages the caller holds locked (read FOR UPDATE in this
    transaction, so their state here is theirs): where each moves is decided here, by the same forward-only rule,
    and everything is written in one statement. The moved messages (None: did not move), in the pairs' order."""
    if len({message.id for message, _ in pairs}) != len(pairs):
        raise ValueError("one status per message at a time")
    rows: list[tuple[MessageStatus, Message | None, str | None]] = []
    errors: list[list[dict[str, Any]] | None] = []
    for message, update in pairs:
        error = with_hints(update.errors) if update.status == statuses.FAILED else None
        errors.append(error)
        moves = statuses.advances(message.status, update.status)
        prices = bool(update.pricing_category) and message.pricing_category is None
        following = message.model_copy(update={"status": update.status, "error": error}) if moves else (
            message if prices else None)
        rows.append((MessageStatus(
            tenant_id=message.tenant_id, message_id=message.id, wamid=update.wamid, status=update.status,
            occurred_at=update.occurred_at, recipient_id=update.recipient_id, errors=update.errors,
            payload=update.raw), following, update.pricing_category if prices else None))
    tenants = {message.tenant_id for message, _ in pairs}
    if len(tenants) > 1:
        raise ValueError("one tenant at a time")
    written = await MessageRepository(session).record_and_write_many(next(iter(tenants)), rows) if rows else {}
    moved: list[Message | None] = []
    for position, (message, update) in enumerate(pairs):
        row = written.get(position)
        if row is None or not statuses.advances(message.status, update.status):
            moved.append(None)
            continue
        await _announce_status(session, row, update, errors[position], events_topic=events_topic)
        moved.append(row)
    return moved


async def _announce_status(
    session: AsyncSession, moved: Message, update: StatusUpdate, error: list[dict[str, Any]] | None, *,
    events_topic: str,
) -> None:
    extra: dict[str, object] = {"occurredAt": update.occurred_at.isoformat() if update.occurred_at else None}
    category = moved.pricing_category or update.pricing_category
    if category:
        extra["category"] = category
    await enqueue(session, topic=events_topic, key=str(moved.conversation_id),
                  event=message_event(MESSAGE_STATUS_CHANGED, moved, error=error, extra=extra))
