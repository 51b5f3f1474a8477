"""Public REST routes, one module per resource (grouped by the upstream that serves it)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.routes import (
    api_keys,
    audit_logs,
    auth,
    contacts,
    conversation,
    escalations,
    health,
    media_uploads,
    messaging,
    presence,
    tags,
    templates,
    tenant,
    tenants,
    usage,
    users,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router, auth.router, users.router, tenants.router, tenant.router, api_keys.router, usage.router,
    audit_logs.router, conversation.router, tags.router, escalations.router, contacts.router, messaging.router,
    media_uploads.router,
    templates.router, presence.router, webhooks.router,
)
