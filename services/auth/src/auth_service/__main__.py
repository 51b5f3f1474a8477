"""`python -m auth_service` starts the auth service."""

from auth_service.main import run

run()
