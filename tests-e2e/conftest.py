"""End-to-end fixtures: the whole stack of the test profile as local processes, driven through its public ports.

The session starts every deployable with `scripts/stack.py up --profile test` (infrastructure included, two
gateway replicas) and stops the deployables afterwards; `make test` stops the infrastructure. With
EVA_E2E_EXTERNAL_STACK=1 the tests use a test-profile stack that is already running and leave it running.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from e2e_support import MATRIX_REPORT, Inbox, SocketRecorder, StackUrls, loopback_client, register_hotel, restore_stack
from js_client import JsDriver

ROOT = Path(__file__).resolve().parent.parent
STACK = [sys.executable, str(ROOT / "scripts" / "stack.py")]


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STACK, *args, "--profile", "test"], cwd=ROOT, text=True, capture_output=True,
                          check=False)


def _secret(name: str) -> str:
    """A secret of the test profile, as scripts/stack.py keeps them (.local/test/secrets.json)."""
    path = ROOT / ".local" / "test" / "secrets.json"
    return str(json.loads(path.read_text()).get(name, "")) if path.exists() else ""


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    # EVA_E2E_EXTERNAL_STACK=1: the test profile's stack is already running (started and stopped by the caller)
    external = os.environ.get("EVA_E2E_EXTERNAL_STACK") == "1"
    result = _stack("up", "--no-seed") if not external else None
    if result is not None and result.returncode != 0:
        pytest.fail(f"the stack did not come up:\n{result.stdout}\n{result.stderr}", pytrace=False)
    env = dict(line.split("=", 1) for line in _stack("env").stdout.splitlines() if "=" in line)
    try:
        yield StackUrls(
            gateway=env["EVA_GATEWAY_URL"],
            gateway_replica=env["EVA_GATEWAY_URL"].replace("13001", "13011"),
            ingest=env["EVA_INGEST_URL"],
            simulator=env["EVA_SIMULATOR_URL"],
            platform_verify_token=env["EVA_PLATFORM_VERIFY_TOKEN"],
            auth_http=env.get("EVA_AUTH_HTTP_URL", "http://127.0.0.1:18101"),
            super_admin_email=env.get("EVA_SUPER_ADMIN_EMAIL", "super@eva.local"),
            super_admin_password=env.get("EVA_SUPER_ADMIN_PASSWORD") or _secret("super_admin_password"),
            n8n=env.get("EVA_N8N_URL", "http://127.0.0.1:13003"),
        )
    finally:
        if not external:
            _stack("stop")


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with loopback_client() as client:  # a client address of its own per test
        yield client


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def inbox(stack: StackUrls) -> AsyncIterator[Inbox]:
    """A hotel of the test module's own, with its admin's socket open."""
    async with loopback_client(timeout=30.0) as client:
        hotel = await register_hotel(client, stack)
        socket = SocketRecorder()
        await socket.connect(stack.gateway, hotel.access_token)
        try:
            yield Inbox(stack=stack, http=client, hotel=hotel, socket=socket)
        finally:
            await socket.close()


@pytest_asyncio.fixture(loop_scope="session")
async def js() -> AsyncIterator[JsDriver]:
    """A socket.io-client@4 driver under Node (tests-e2e/js/driver.mjs) holding the test's sockets."""
    async with JsDriver() as driver:
        yield driver


@pytest_asyncio.fixture(loop_scope="session")
async def restored() -> AsyncIterator[None]:
    """Whatever a disruptive test broke is started again afterwards (also when it failed half-way)."""
    try:
        yield
    finally:
        await asyncio.to_thread(restore_stack)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "disruptive: kills and restarts processes of the test stack; runs last")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `disruptive` (they kill and restart processes of the stack) run after all the others."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The isolation matrix's rows, when this session ran it (also in .local/test/isolation-matrix.md)."""
    if MATRIX_REPORT:
        terminalreporter.section("isolation matrix")
        terminalreporter.write_line("| endpoint | caller | A's own ids | expected | B's ids | expected | result |")
        terminalreporter.write_line("|---|---|---|---|---|---|---|")
        for line in MATRIX_REPORT:
            terminalreporter.write_line(line)
