"""Alembic environment of the auth database."""

from auth_service.models import metadata
from eva_common.migrations import run_env

run_env(metadata)
