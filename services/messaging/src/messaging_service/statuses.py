"""Message statuses and the rule that moves them: forward only.

Outbound: PENDING < SENT < DELIVERED < READ. FAILED (with Meta's error) overrides PENDING and SENT, and yields to
a later DELIVERED or READ (multi-device: a message can fail on one device and reach another); a late SENT never
moves a message back. Inbound messages stay RECEIVED. Other Meta statuses (e.g. `played`) are kept in the history
only.
"""

from __future__ import annotations

RECEIVED = "RECEIVED"
PENDING = "PENDING"
SENT = "SENT"
DELIVERED = "DELIVERED"
READ = "READ"
FAILED = "FAILED"

_RANK = {PENDING: 0, SENT: 1, FAILED: 2, DELIVERED: 3, READ: 4}
TRACKED = frozenset({SENT, DELIVERED, READ, FAILED})


def normalize(meta_status: str) -> str:
    """Meta's status name (`sent`, `delivered`, …) in our spelling (`SENT`, `DELIVERED`, …)."""
    return meta_status.strip().upper()


def advances(current: str, incoming: str) -> bool:
    """Whether a message in status `current` moves to `incoming`."""
    if incoming not in TRACKED or current not in _RANK:
        return False
    return _RANK[incoming] > _RANK[current]


def predecessors(incoming: str) -> tuple[str, ...]:
    """The statuses from which `incoming` applies (the guard of a conditional UPDATE, so racing writers agree)."""
    return tuple(status for status in _RANK if advances(status, incoming))
