import os

from alembic import context
from eva_common.migrations import run_env
from sqlmodel import SQLModel
from webhook_ingest_service import models  # noqa: F401  (registers the tables on SQLModel.metadata)

if not context.config.get_main_option("sqlalchemy.url"):
    context.config.set_main_option("sqlalchemy.url", os.environ["EVA_MIGRATION_DATABASE_URL"].replace("%", "%%"))

run_env(SQLModel.metadata)
