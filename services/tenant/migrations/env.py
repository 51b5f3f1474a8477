"""Alembic environment of the tenant database: this service's tables plus the shared outbox table."""

from eva_common.migrations import run_env
from eva_common.outbox import OutboxEvent
from tenant_service.models import metadata

if OutboxEvent.__tablename__ not in metadata.tables:  # the outbox lives in this database too (for autogenerate)
    OutboxEvent.__table__.to_metadata(metadata)

run_env(metadata)
