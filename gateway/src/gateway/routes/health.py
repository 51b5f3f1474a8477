"""GET /health: Redis and every upstream's gRPC health, each by name."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from eva_common.http.app import ReadinessCheck, run_checks
from eva_common.redis import redis_ready
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.clients import UPSTREAM_SERVICES
from gateway.deps import StateDep
from gateway.schemas.health import HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Whether the gateway and everything it depends on are ready",
    responses={503: {"model": HealthOut, "description": "At least one dependency is down (named in `dependencies`)"}},
)
async def health(state: StateDep) -> JSONResponse:
    checks: Mapping[str, ReadinessCheck] = {
        "redis": partial(redis_ready, state.redis),
        **{name: partial(state.clients.serving, name) for name in UPSTREAM_SERVICES},
    }
    results = await run_checks(checks, timeout=state.settings.health_check_timeout_seconds + 0.5)
    dependencies = {name: "ok" if result == "ok" else "down" for name, result in results.items()}
    ready = all(result == "ok" for result in dependencies.values())
    body = HealthOut(status="ok" if ready else "unavailable", dependencies=dependencies)
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if ready else 503)
