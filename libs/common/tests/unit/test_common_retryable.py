"""Which failures a consumer retries as they are (transient) instead of handing a batch's records over one by one or
dead-lettering them: a deadlock's victim and a serialisation failure are run again, as PostgreSQL asks."""

from __future__ import annotations

import asyncpg
import pytest
from eva_common.db import is_retryable_conflict
from eva_common.kafka.consumer import is_transient
from sqlalchemy.exc import DBAPIError, IntegrityError


def wrapped(error: BaseException) -> DBAPIError:
    """How SQLAlchemy's asyncpg dialect raises a driver error: its DBAPI adapter's error, caused by asyncpg's."""
    adapter = Exception("adapted")
    adapter.__cause__ = error
    return DBAPIError("UPDATE conversations …", {}, adapter)


@pytest.mark.parametrize("error", [
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.SerializationError("could not serialize access"),
    wrapped(asyncpg.DeadlockDetectedError("deadlock detected")),
])
def test_a_deadlock_or_serialisation_failure_is_run_again(error: BaseException) -> None:
    assert is_retryable_conflict(error)
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    asyncpg.UniqueViolationError("duplicate key"),
    IntegrityError("INSERT …", {}, Exception("duplicate key")),
    ValueError("a bad record"),
    wrapped(asyncpg.CheckViolationError("violates check constraint")),
])
def test_other_database_errors_are_not_conflicts(error: BaseException) -> None:
    assert not is_retryable_conflict(error)
    assert not is_transient(error)
