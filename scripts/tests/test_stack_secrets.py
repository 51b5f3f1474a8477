"""No secret on a command line: every process scripts/stack.py starts gets its passwords, keys and tokens through
the environment. (A super-admin password that began with '-' once broke `make up`: on the command line it was
taken for an option.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import infra
import pytest
import stack

DASHED_PASSWORD = "-Xk3_a-dashed-super-admin-password"  # noqa: S105 - a test value


@pytest.fixture
def local_stack(tmp_path: Path) -> stack.Stack:
    """The test profile's layout, with its secrets kept under tmp_path (the real profile's are left alone)."""
    made = stack.Stack("test", local_root=tmp_path)
    secrets_ = stack.load_secrets(made)
    secrets_["super_admin_password"] = DASHED_PASSWORD
    (made.home / "secrets.json").write_text(json.dumps(secrets_))
    return made


def secret_values(local_stack: stack.Stack) -> set[str]:
    """Every secret the stack hands out: its own (secrets.json) and the databases' URLs with their passwords."""
    def leaves(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, list):
            for item in value:
                yield from leaves(item)
        elif isinstance(value, str):
            yield value

    values = set(leaves(stack.load_secrets(local_stack)))
    for item in local_stack.deployables():
        if item.database:
            values |= set(stack.database_urls(local_stack, item.database))
    values.add(infra.profile_env(local_stack.profile)["EVA_REDIS_URL"])
    return values


def test_the_seeding_command_takes_the_password_from_the_environment(local_stack: stack.Stack) -> None:
    argv, env = stack.seed_super_admin_command(local_stack, stack.load_secrets(local_stack))
    assert DASHED_PASSWORD not in argv
    assert env[stack.SUPER_ADMIN_PASSWORD_ENV] == DASHED_PASSWORD
    assert argv[-2:] == ["--email", stack.SUPER_ADMIN_EMAIL]


def test_no_command_line_built_by_the_stack_holds_a_secret(local_stack: stack.Stack) -> None:
    secrets_ = stack.load_secrets(local_stack)
    commands = [stack.seed_super_admin_command(local_stack, secrets_)[0]]
    commands += [stack.migrate_command(local_stack, item)[0] for item in local_stack.deployables() if item.database]
    commands += [stack.command_for(item) for item in local_stack.deployables()]
    assert len(commands) == 1 + 6 + len(local_stack.deployables())
    hidden = secret_values(local_stack)
    assert DASHED_PASSWORD in hidden and len(hidden) > 10
    leaks = [(arg, value) for argv in commands for arg in argv for value in hidden if value in arg]
    assert leaks == []


def test_the_migration_url_reaches_the_migration_through_its_environment(local_stack: stack.Stack) -> None:
    auth = next(item for item in local_stack.deployables() if item.name == "auth")
    argv, env = stack.migrate_command(local_stack, auth)
    _, owner_url = stack.database_urls(local_stack, "eva_auth")
    assert env[stack.MIGRATION_URL_ENV] == owner_url
    assert stack.MIGRATION_URL_ENV in " ".join(argv)  # the code reads it from there


def test_every_subprocess_the_steps_start_keeps_secrets_off_argv(
    local_stack: stack.Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steps themselves (migrate, seeding), with the process launcher recording instead of running."""
    launched: list[tuple[list[str], dict[str, str]]] = []

    class Done:
        returncode = 0
        stdout = ""
        stderr = ""

    def record(argv: list[str], **kwargs: Any) -> Done:
        launched.append((list(argv), dict(kwargs["env"])))
        return Done()

    monkeypatch.setattr(stack.subprocess, "run", record)
    stack.migrate(local_stack)
    stack.seed_super_admin(local_stack)
    assert len(launched) == 7
    hidden = secret_values(local_stack)
    assert [arg for argv, _ in launched for arg in argv if any(value in arg for value in hidden)] == []
    assert launched[-1][1][stack.SUPER_ADMIN_PASSWORD_ENV] == DASHED_PASSWORD


def test_provisioning_sends_the_role_passwords_on_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], str | None]] = []

    def record(cmd: list[str], *, cwd: Path | None = None, stdin: str | None = None) -> str:
        calls.append((list(cmd), stdin))
        return ""

    monkeypatch.setattr(infra, "run", record)
    infra.pg_provision(infra.load_profile("test"), Path("/usr/lib/postgresql/bin"))
    assert len(calls) == 1
    argv, sql = calls[0]
    for password in (infra.APP_SECRET, infra.OWNER_SECRET):
        assert sql is not None and f"PASSWORD '{password}'" in sql
        assert not any(password in arg for arg in argv)
