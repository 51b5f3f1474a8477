"""The HTTP app factory: health endpoints, problem+json errors, request ids."""

from __future__ import annotations

import httpx
from eva_common.errors import NotFound
from eva_common.http.app import create_http_app
from fastapi import APIRouter
from pydantic import BaseModel


class Body(BaseModel):
    name: str
    count: int


def make_app(ready: bool = True) -> httpx.AsyncClient:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        raise NotFound(f"no thing {thing_id}", code="THING_NOT_FOUND")

    @router.post("/things")
    async def create_thing(body: Body) -> Body:
        return body

    async def check() -> bool:
        return ready

    async def broken() -> bool:
        raise ConnectionRefusedError

    app = create_http_app(title="t", readiness={"db": check, "kafka": check if ready else broken}, routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_domain_error_becomes_problem_json() -> None:
    async with make_app() as client:
        response = await client.get("/things/42")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "THING_NOT_FOUND" and body["status"] == 404 and body["detail"] == "no thing 42"
    assert {"type", "title"} <= set(body)


async def test_validation_error_lists_fields() -> None:
    async with make_app() as client:
        response = await client.post("/things", json={"name": "x", "count": "many"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_FAILED"
    assert [error["field"] for error in body["errors"]] == ["count"]


async def test_readyz_tells_the_truth() -> None:
    async with make_app(ready=True) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert "eva_http_requests_total" in (await client.get("/metrics")).text
    async with make_app(ready=False) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["kafka"].startswith("down")


async def test_request_id_is_echoed_or_made() -> None:
    async with make_app() as client:
        given = await client.get("/healthz", headers={"X-Request-Id": "abc123"})
        made = await client.get("/healthz")
    assert given.headers["X-Request-Id"] == "abc123"
    assert len(made.headers["X-Request-Id"]) == 32
