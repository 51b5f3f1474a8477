"""HTTP routes of auth besides health and metrics: the JWKS at its well-known address."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auth_service.tokens import KeyRing

JWKS_PATH = "/.well-known/jwks.json"
JWKS_MAX_AGE_SECONDS = 300


def jwks_router(keys: KeyRing) -> APIRouter:
    router = APIRouter()

    @router.get(JWKS_PATH, include_in_schema=False)
    async def jwks() -> JSONResponse:
        return JSONResponse(
            keys.jwks(),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
        )

    return router
