"""The expiry of parked statuses: a status Meta reported for a wamid Eva never stored waits in `parked_statuses` for
its message; once it has waited longer than Meta retries a webhook (7 days by default), the message will never come
and the status is deleted. Every replica runs `run_once` at start, then every interval (eva_common.runtime.Periodic):
bounded
batches, each one DELETE of its own transaction through the `expire_parked_statuses` SECURITY DEFINER function (the
job works across tenants) that skips the rows another transaction holds, so replicas running at the same moment share
the rows, delete each once and never fail, and a short batch means nothing else is due."""

from __future__ import annotations

import logging

from eva_common.db import SessionFactory, transaction

from messaging_service.metrics import PARKED_STATUSES, PARKED_STATUSES_EXPIRED
from messaging_service.repository import count_parked_statuses, expire_parked_statuses

logger = logging.getLogger(__name__)


class ParkedStatusExpiry:
    def __init__(self, *, sessions: SessionFactory, max_age_seconds: float, batch_size: int = 1000) -> None:
        self._sessions = sessions
        self._max_age_seconds = max_age_seconds
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Deletes every status parked longer than the maximum age, batch after batch, and updates the gauge of
        parked statuses; returns how many it deleted."""
        expired = 0
        while True:
            async with transaction(self._sessions) as session:
                deleted = await expire_parked_statuses(
                    session, max_age_seconds=self._max_age_seconds, batch=self._batch_size)
            PARKED_STATUSES_EXPIRED.inc(deleted)
            expired += deleted
            if deleted < self._batch_size:
                break
        async with transaction(self._sessions) as session:
            PARKED_STATUSES.set(await count_parked_statuses(session))
        if expired:
            logger.info("parked statuses expired", extra={"expired": expired,
                                                          "max_age_seconds": self._max_age_seconds})
        return expired
