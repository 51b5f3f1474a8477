"""Public REST routes, one module per upstream domain."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.routes import auth, conversation, health, messaging, tenant

ROUTERS: tuple[APIRouter, ...] = (health.router, auth.router, tenant.router, conversation.router, messaging.router)
