"""Backups of the whole stack (scripts/backup, scripts/restore; docs/backups.md): a hotel's traffic through the public
API fills every service's database; the deployables stop, everything is backed up, the databases are dropped and
restored, and every table's rows (and every owner, grant and policy) are as before; the stack serves again. Then a
set restored into a second, empty PostgreSQL cluster, provisioned as a new install, lets a user log in at an auth
and a tenant service started against it with the same secrets."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from e2e_support import StackUrls, bearer, create_api_key, create_user, eventually, login, restore_stack
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva_testing.pg_admin import admin_env, databases, fingerprint, row_counts, scratch_cluster, sql_as
from eva_testing.scripts import load_script
from outbound_support import Desk, opened_desk

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session"), pytest.mark.disruptive]

ROOT = Path(__file__).resolve().parent.parent
DATABASES = [row.database for row in load_script("deployables").load() if row.database]
# a table of each service's database that the traffic below must have written to
FILLED = {"eva_auth": "users", "eva_tenant": "api_keys", "eva_conversation": "escalations",
          "eva_messaging": "messages", "eva_ingest": "webhook_events", "eva_n8n": "webhook_subscriptions"}


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> tuple[str, float]:
    """Runs a project script; returns its output and how long it took."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                            capture_output=True, check=False, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout, time.monotonic() - started


def stack_command(action: str) -> float:
    return run(["scripts/stack.py", action, "--profile", "test"], timeout=300)[1]


async def stop_database_services() -> float:
    """Stops the deployables that have a database (together), as an operator does before a restore; the gateway,
    realtime and the simulator keep running."""
    started = time.monotonic()
    stack_script = load_script("stack")
    stack = stack_script.Stack("test")
    await asyncio.gather(*(asyncio.to_thread(stack_script.stop, stack, item)
                           for item in stack.deployables() if item.database))
    return time.monotonic() - started


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


async def fill(desk: Desk) -> dict[str, Any]:
    """A guest writes, an attendant answers, an automation tags and escalates, a webhook subscription gets a
    delivery: rows in every service's database."""
    attendant = await create_user(desk.http, desk.stack, desk.hotel.access_token)
    key = (await create_api_key(desk.http, desk.stack, desk.hotel.access_token))["key"]
    subscribed = await desk.http.post(f"{desk.stack.gateway}/api/webhooks", headers=desk.auth, json={
        "url": "http://127.0.0.1:9/eva-backup-drill", "events": ["escalation.raised"]})
    assert subscribed.status_code == 201, subscribed.text
    guest = await desk.guest_writes("Could I have a late check-out tomorrow?")
    answer = await desk.accepted(guest.conversation_id, "text", {"body": "Of course, until 14:00."},
                                 headers=attendant.auth)
    await desk.sent_once(answer["id"])
    n8n = {"X-Api-Key": key}
    tagged = await desk.http.post(f"{desk.stack.n8n}/n8n/conversation/{guest.conversation_id}/tags/late-checkout",
                                  headers={**n8n, "Idempotency-Key": str(uuid.uuid4())})
    assert tagged.status_code == 200, tagged.text
    raised = await desk.http.post(f"{desk.stack.n8n}/n8n/conversation/{guest.conversation_id}/escalations",
                                  headers=n8n, json={"reason": "VIP guest", "priority": "high"})
    assert raised.status_code == 201, raised.text

    async def delivered_or_tried() -> Any:
        response = await desk.http.get(f"{desk.stack.gateway}/api/webhooks/deliveries", headers=desk.auth,
                                       params={"subscriptionId": subscribed.json()["id"]})
        return response.status_code == 200 and response.json()["items"]

    await eventually(delivered_or_tried, timeout=30.0)
    return {"attendant": attendant, "conversation_id": guest.conversation_id, "answer": answer["id"]}


def fingerprints(env: dict[str, str]) -> dict[str, list[str]]:
    return {database: fingerprint(env, database) for database in DATABASES}


async def test_backup_wipe_restore_gives_back_every_row_and_the_stack_serves_again(
        desk: Desk, stack: StackUrls, tmp_path: Path) -> None:
    filled = await fill(desk)
    admin = admin_env()
    timings: dict[str, float] = {}
    restored = False
    try:
        timings["stop"] = await stop_database_services()  # a restore runs with them stopped (docs/backups.md)
        before = fingerprints(admin)
        for database, table in FILLED.items():
            assert row_counts(before[database])[table] > 0, (database, table)
        out, timings["backup"] = run(["scripts/backup", "--to", str(tmp_path / "sets")], env=admin)
        assert f"{len(DATABASES)} databases" in out

        for database in DATABASES:  # the wipe: every database gone
            sql_as(admin, "postgres", f"DROP DATABASE {database} WITH (FORCE)")
        assert not set(DATABASES) & databases(admin)

        out, timings["restore"] = run(["scripts/restore", "--from", str(tmp_path / "sets")], env=admin)
        restored = True
        after = fingerprints(admin)
        for database in DATABASES:
            assert after[database] == before[database], database
    finally:
        if not restored:  # put the data back however far the test got, then the stack
            sets = tmp_path / "sets"
            if sets.is_dir() and any(sets.iterdir()):
                run(["scripts/restore", "--from", str(sets)], env=admin)
        timings["start"] = await asyncio.to_thread(stack_command, "start")
    sys.stderr.write(f"backup drill timings (s): {timings}\n")

    attendant = filled["attendant"]
    response = await login(desk.http, stack, attendant.email, attendant.password)
    assert response.status_code == 200, response.text
    token = response.json()["accessToken"]
    conversation = await desk.http.get(f"{stack.gateway}/api/conversations/{filled['conversation_id']}",
                                       headers=bearer(token))
    assert conversation.status_code == 200, conversation.text
    assert [t["name"] for t in conversation.json()["tags"]] == ["late-checkout"]
    messages = await desk.http.get(f"{stack.gateway}/api/conversations/{filled['conversation_id']}/messages",
                                   headers=bearer(token))
    assert messages.status_code == 200, messages.text
    assert filled["answer"] in [m["id"] for m in messages.json()["items"]]
    # and it still takes traffic: a guest's new message reaches the restored conversation
    await desk.guest_writes("Thank you!", wa_id=conversation.json()["contact"]["waId"])


def _free_port() -> int:
    infra = load_script("infra")
    for _ in range(200):
        port = random.randint(20000, 32767)
        if infra.port_free(port):
            return port
    raise AssertionError("no free port below 32768")


@pytest.fixture
def fresh_cluster() -> Iterator[tuple[Any, dict[str, str]]]:
    with scratch_cluster("backup-drill") as profile:
        yield profile, admin_env(profile=profile)


def _login_services(cluster: Any, log_dir: Path) -> tuple[list[subprocess.Popen[bytes]], int]:
    """auth and tenant of the test profile's secrets, on ports of their own, against the fresh cluster (Kafka away:
    what they publish waits in their outbox, the test stack's consumers never see it). Returns auth's gRPC port."""
    stack_script = load_script("stack")
    stack = stack_script.Stack("test")
    secrets = stack_script.load_secrets(stack)
    ports = {name: (_free_port(), _free_port()) for name in ("auth", "tenant")}
    processes = []
    for item in stack.deployables():
        if item.name not in ports:
            continue
        env = stack_script.deployable_env(stack, item, secrets)
        http_port, grpc_port = ports[item.name]
        app, owner = (f"postgresql+asyncpg://{role}:{role}@127.0.0.1:{cluster.pg_port}/{item.database}"
                      for role in ("eva_app", "eva_owner"))  # a new install's roles (scripts/infra.py)
        env.update({"EVA_HTTP_PORT": str(http_port), "EVA_GRPC_PORT": str(grpc_port), "EVA_DATABASE_URL": app,
                    "EVA_MIGRATION_DATABASE_URL": owner, "EVA_KAFKA_BOOTSTRAP": f"127.0.0.1:{_free_port()}",
                    "EVA_AUTH_GRPC_TARGET": f"127.0.0.1:{ports['auth'][1]}",
                    "EVA_TENANT_GRPC_TARGET": f"127.0.0.1:{ports['tenant'][1]}"})
        with (log_dir / f"{item.name}.log").open("wb") as log:
            processes.append(subprocess.Popen(stack_script.command_for(item), cwd=ROOT, env=env, stdout=log,
                                              stderr=subprocess.STDOUT))
    return processes, ports["auth"][1]


async def test_a_set_restored_into_a_fresh_cluster_lets_users_log_in(
        desk: Desk, stack: StackUrls, fresh_cluster: tuple[Any, dict[str, str]], tmp_path: Path) -> None:
    cluster, fresh_admin = fresh_cluster
    member = await create_user(desk.http, stack, desk.hotel.access_token, log_in=False)
    run(["scripts/backup", "--to", str(tmp_path / "sets"), "--database", "eva_auth", "--database", "eva_tenant"],
        env=admin_env())
    later = await create_user(desk.http, stack, desk.hotel.access_token, log_in=False)  # not in the set

    run(["scripts/restore", "--from", str(tmp_path / "sets")], env=fresh_admin)
    assert row_counts(fingerprint(fresh_admin, "eva_auth"))["users"] > 0

    processes, auth_grpc = _login_services(cluster, tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_grpc}") as channel:
            auth = auth_pb2_grpc.AuthServiceStub(channel)

            async def logged_in() -> Any:
                try:
                    return await auth.Login(auth_pb2.LoginRequest(email=member.email, password=member.password),
                                            timeout=5)
                except grpc.aio.AioRpcError as error:
                    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        return None  # still starting
                    raise

            session = await eventually(logged_in, timeout=60.0, interval=0.5)
            assert session.access_token and session.user.email == member.email
            assert session.tenant.id == desk.hotel.tenant["id"]
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # created after the backup: not in the copy
                await auth.Login(auth_pb2.LoginRequest(email=later.email, password=later.password), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    # the test stack was not touched: its own auth still logs the same user in
    response = await login(desk.http, stack, member.email, member.password)
    assert response.status_code == 200, response.text


@pytest_asyncio.fixture(loop_scope="session", autouse=True, scope="module")
async def _stack_back_up_afterwards() -> AsyncIterator[None]:
    """Should a test stop the stack and fail before it started it again."""
    yield
    await asyncio.to_thread(_start_if_stopped)


def _start_if_stopped() -> None:
    stack_script = load_script("stack")
    stack = stack_script.Stack("test")
    if any(stack_script.running_pid(stack, item) is None for item in stack.deployables()):
        try:
            stack_command("start")
        except AssertionError:
            restore_stack()
