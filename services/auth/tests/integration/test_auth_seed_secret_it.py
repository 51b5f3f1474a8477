"""The real seeding command with its password passed the way scripts/stack.py passes it: in the environment (or on
standard input), never on the command line, even when it begins with '-'."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from auth_service.seed_super_admin import PASSWORD_ENV

pytestmark = pytest.mark.integration


async def test_a_dashed_password_from_the_environment_seeds_a_super_admin(stack) -> None:
    email, password = stack.email("dashed-root"), "-a dashed platform passphrase"
    code, out, err = await stack.seed("--email", email, env={**stack.service_env(), PASSWORD_ENV: password})
    assert code == 0, err
    made = json.loads(out)
    assert made["created"] is True
    assert (await stack.login(email, password)).user.id == made["userId"]


async def test_a_dashed_password_on_standard_input_seeds_a_super_admin(stack) -> None:
    email, password = stack.email("stdin-root"), "--an-option-looking platform passphrase"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auth_service.seed_super_admin", "--email", email, "--password-stdin",
        env=stack.service_env(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate((password + "\n").encode()), 60)
    assert process.returncode == 0, err.decode()
    assert (await stack.login(email, password)).user.id == json.loads(out)["userId"]
