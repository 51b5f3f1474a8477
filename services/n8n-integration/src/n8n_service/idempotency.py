"""Idempotency keys of the /n8n API (n8n retries a failed node with the same `Idempotency-Key`).

One row per (tenant, API key, key) in `n8n_idempotency_keys`. The first request claims the key (an INSERT that
commits before any work, so a concurrent request with the same key finds it), does its work and stores its answer
(status and body); a later request with the same key and body gets that answer again. A concurrent request whose key
is still being worked on waits for the answer (polling, at most `wait_seconds`), then gets 409
IDEMPOTENCY_IN_PROGRESS with Retry-After. The same key with another body (or path) is 422 IDEMPOTENCY_KEY_REUSED.

A claim is a lease (`locked_until`): a process that died mid-request leaves a key another request may take over once
the lease has run out; only the claim's `owner` stores or releases it. Answers that a retry could change — 5xx,
408, 409 and 429 — are not kept: the claim is released and the next retry does the work again (the send below is
itself idempotent at messaging, under a key derived from this one, so it never sends twice). Rows live 24 hours
(`ttl_seconds`); a tenant's expired rows are deleted when one of its keys is claimed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from eva_common.db import SessionFactory, driver, transaction
from eva_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument

KEY_MAX = 255
NOT_KEPT = frozenset({408, 409, 429})

_PURGE = "DELETE FROM n8n_idempotency_keys WHERE tenant_id = $1 AND expires_at <= now()"
_CLAIM = """
INSERT INTO n8n_idempotency_keys AS k (tenant_id, api_key_id, key, request_hash, state, owner, locked_until,
                                       expires_at)
VALUES ($1, $2, $3, $4, 'in_progress', $5, now() + make_interval(secs => $6::float8),
        now() + make_interval(secs => $7::float8))
ON CONFLICT (tenant_id, api_key_id, key) DO UPDATE
   SET owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until
 WHERE k.state = 'in_progress' AND k.locked_until < now() AND k.request_hash = EXCLUDED.request_hash
RETURNING k.owner
"""
_READ = """
SELECT request_hash, state, status_code, body::text AS body FROM n8n_idempotency_keys
 WHERE tenant_id = $1 AND api_key_id = $2 AND key = $3 AND expires_at > now()
"""
_FINISH = """
UPDATE n8n_idempotency_keys SET state = 'done', status_code = $5, body = $6::jsonb, locked_until = NULL
 WHERE tenant_id = $1 AND api_key_id = $2 AND key = $3 AND owner = $4 AND state = 'in_progress'
"""
_RELEASE = """
DELETE FROM n8n_idempotency_keys
 WHERE tenant_id = $1 AND api_key_id = $2 AND key = $3 AND owner = $4 AND state = 'in_progress'
"""


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests with one key "the same": the method, the path and the body (as JSON, keys sorted)."""
    canonical = json.dumps({"method": method, "path": path, "body": body}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > KEY_MAX or not key.isprintable():
        raise InvalidArgument(f"the Idempotency-Key must be 1-{KEY_MAX} printable characters",
                              code="IDEMPOTENCY_KEY_INVALID")
    return key


def keep_answer(status: int) -> bool:
    """Whether an answer is kept for the key's later requests (else the claim is released)."""
    return status < 500 and status not in NOT_KEPT


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class Claim:
    tenant_id: str
    api_key_id: str
    key: str
    owner: uuid.UUID


class IdempotencyStore:
    def __init__(self, *, sessions: SessionFactory, ttl_seconds: float = 24 * 3600.0, lease_seconds: float = 60.0,
                 wait_seconds: float = 5.0, poll_seconds: float = 0.1, retry_after_seconds: int = 1) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._retry_after = retry_after_seconds

    async def claim(self, *, tenant_id: str, api_key_id: str, key: str,
                    fingerprint: str) -> Claim | StoredAnswer:
        """The claim of a key this request now owns, or the first request's answer; 422 IDEMPOTENCY_KEY_REUSED for
        another body, 409 IDEMPOTENCY_IN_PROGRESS when the first request is still at work after `wait_seconds`."""
        deadline = time.monotonic() + self._wait
        while True:
            owner = uuid.uuid4()
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                connection = await driver(session)
                await connection.execute(_PURGE, tenant_id)
                claimed = await connection.fetchval(_CLAIM, tenant_id, api_key_id, key, fingerprint, owner,
                                                    self._lease, self._ttl)
                row = None if claimed is not None else await connection.fetchrow(_READ, tenant_id, api_key_id, key)
            if claimed is not None:
                return Claim(tenant_id, api_key_id, key, owner)
            if row is not None:
                if row["request_hash"] != fingerprint:
                    raise FailedPrecondition("this Idempotency-Key was used with another request",
                                             code="IDEMPOTENCY_KEY_REUSED")
                if row["state"] == "done":
                    return StoredAnswer(int(row["status_code"]), json.loads(row["body"]))
            # still being worked on (or released, or expired, between the two statements): look again
            if time.monotonic() >= deadline:
                raise AlreadyExists("a request with this Idempotency-Key is still in progress; retry shortly",
                                    code="IDEMPOTENCY_IN_PROGRESS", retry_after=self._retry_after)
            if row is not None:
                await asyncio.sleep(self._poll)

    async def finish(self, claim: Claim, *, status: int, body: Any) -> None:
        """Stores the answer of a claimed key (kept), or releases the key (an answer a retry could change)."""
        identity = (claim.tenant_id, claim.api_key_id, claim.key, claim.owner)
        async with transaction(self._sessions, tenant_id=claim.tenant_id) as session:
            connection = await driver(session)
            if keep_answer(status):
                await connection.execute(_FINISH, *identity, status, json.dumps(body))
            else:
                await connection.execute(_RELEASE, *identity)

    async def release(self, claim: Claim) -> None:
        async with transaction(self._sessions, tenant_id=claim.tenant_id) as session:
            await (await driver(session)).execute(_RELEASE, claim.tenant_id, claim.api_key_id, claim.key, claim.owner)
