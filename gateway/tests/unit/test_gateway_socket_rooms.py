"""Which emits from the channel go through the delivery gate: seq-bearing events to exactly one tenant's room, alone
or with its users' rooms (an assignment to its assignee)."""

from __future__ import annotations

from typing import Any

import pytest
from gateway.socket_manager import tenant_target


@pytest.mark.parametrize(("room", "target"), [
    ("tenant:t-1", ("t-1", "tenant:t-1")),
    (["tenant:t-1", "user:u-1"], ("t-1", ["tenant:t-1", "user:u-1"])),
    (["user:u-1", "tenant:t-1"], ("t-1", ["user:u-1", "tenant:t-1"])),
])
def test_one_tenant_room_with_or_without_user_rooms_is_gated(room: Any, target: tuple[str, Any]) -> None:
    assert tenant_target(room) == target


@pytest.mark.parametrize("room", [
    None, "user:u-1", "conversation:c-1", "sid-123", [], ["user:u-1"], ["tenant:t-1", "tenant:t-2"],
    ["tenant:t-1", 7], {"tenant:t-1"},
])
def test_anything_else_passes_through(room: Any) -> None:
    assert tenant_target(room) is None
