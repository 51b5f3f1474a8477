"""End-to-end fixtures: the whole stack of the test profile as local processes, driven through its public ports.

The session starts every deployable with `scripts/stack.py up --profile test` (infrastructure included, two
gateway replicas) and stops the deployables afterwards; `make test` stops the infrastructure.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from e2e_support import StackUrls

ROOT = Path(__file__).resolve().parent.parent
STACK = [sys.executable, str(ROOT / "scripts" / "stack.py")]


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STACK, *args, "--profile", "test"], cwd=ROOT, text=True, capture_output=True,
                          check=False)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    result = _stack("up", "--no-seed")
    if result.returncode != 0:
        pytest.fail(f"the stack did not come up:\n{result.stdout}\n{result.stderr}", pytrace=False)
    env = dict(line.split("=", 1) for line in _stack("env").stdout.splitlines() if "=" in line)
    try:
        yield StackUrls(
            gateway=env["EVA_GATEWAY_URL"],
            gateway_replica=env["EVA_GATEWAY_URL"].replace("13001", "13011"),
            ingest=env["EVA_INGEST_URL"],
            simulator=env["EVA_SIMULATOR_URL"],
            platform_verify_token=env["EVA_PLATFORM_VERIFY_TOKEN"],
        )
    finally:
        _stack("stop")


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client
