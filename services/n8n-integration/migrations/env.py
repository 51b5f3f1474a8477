from eva_common.migrations import run_env
from sqlmodel import SQLModel

run_env(SQLModel.metadata)
