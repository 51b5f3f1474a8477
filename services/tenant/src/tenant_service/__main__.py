"""`python -m tenant_service` starts the tenant service."""

from tenant_service.main import run

run()
