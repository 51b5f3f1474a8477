"""Where the webhook secrets are sealed (eva_common.crypto, this service's scope) and who acts for the service."""

from __future__ import annotations

import uuid

from eva_common.audit import Actor
from eva_common.auth import Principal

SEALING_SCOPE = "eva.n8n"
SERVICE_SUBJECT = "n8n-integration"
SYSTEM_ACTOR = Actor(principal=Principal(
    subject=SERVICE_SUBJECT, kind="service", role="service", tenant_id=None, token="", token_id="",  # noqa: S106
    issued_at=0, expires_at=0))
"""The actor of what the service does on its own (pausing a failing subscription), in audit entries."""


def secret_field(subscription_id: uuid.UUID | str) -> str:
    """The associated-data field a subscription's secret is sealed under: bound to that subscription."""
    return f"webhook_secret:{subscription_id}"
