import messaging_service.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from eva_common.migrations import run_env
from sqlmodel import SQLModel

run_env(SQLModel.metadata)
