"""The body of GET /health."""

from __future__ import annotations

from gateway.schemas.base import CamelModel


class HealthOut(CamelModel):
    status: str
    dependencies: dict[str, str]
