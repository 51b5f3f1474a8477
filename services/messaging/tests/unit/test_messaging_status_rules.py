"""Statuses only move forward: SENT < DELIVERED < READ; FAILED keeps Meta's error and yields to DELIVERED/READ."""

from __future__ import annotations

import pytest
from messaging_service import statuses
from messaging_service.statuses import DELIVERED, FAILED, PENDING, READ, RECEIVED, SENT, advances, predecessors


@pytest.mark.parametrize(("current", "incoming", "moves"), [
    (PENDING, SENT, True), (SENT, DELIVERED, True), (DELIVERED, READ, True), (SENT, READ, True),
    (PENDING, READ, True),
    (READ, DELIVERED, False), (READ, SENT, False), (DELIVERED, SENT, False), (SENT, SENT, False),
    (READ, READ, False),
    (PENDING, FAILED, True), (SENT, FAILED, True), (FAILED, DELIVERED, True), (FAILED, READ, True),
    (FAILED, SENT, False), (DELIVERED, FAILED, False), (READ, FAILED, False), (FAILED, FAILED, False),
    (RECEIVED, READ, False), (RECEIVED, FAILED, False),  # inbound messages stay RECEIVED
    (SENT, "PLAYED", False), (SENT, "DELETED", False),  # history only
])
def test_a_status_moves_a_message_only_forward(current: str, incoming: str, moves: bool) -> None:
    assert advances(current, incoming) is moves
    assert (current in predecessors(incoming)) is moves


def test_out_of_order_statuses_end_at_the_furthest() -> None:
    for arrival in ([READ, DELIVERED, SENT], [SENT, FAILED, DELIVERED, READ], [DELIVERED, FAILED, SENT, READ]):
        status = PENDING
        for incoming in arrival:
            if advances(status, incoming):
                status = incoming
        assert status == READ, arrival


def test_metas_names_are_normalized() -> None:
    assert [statuses.normalize(s) for s in ("sent", "delivered", "read", "failed", " played ")] == [
        SENT, DELIVERED, READ, FAILED, "PLAYED"]
    assert predecessors(SENT) == (PENDING,)
    assert set(predecessors(READ)) == {PENDING, SENT, FAILED, DELIVERED}
