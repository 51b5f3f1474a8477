"""The local Eva stack as processes: infrastructure (scripts/infra.py), topics, migrations, every deployable and
the WhatsApp simulator, readiness, and the demo tenant.

    uv run python scripts/stack.py {up,down,ps,logs,migrate,seed,reset,env,stop,start} [--profile dev|test]

`stop` and `start` stop and start the deployables only, the infrastructure staying up (e.g. around a database
restore, docs/backups.md).

Every deployable, its module, folder, database and ports per profile come from the registry
deploy/deployables.toml. The dev profile serves the public ports (gateway 3001, ingest 3002, n8n 3003, simulator
3010); the test profile uses the same layout shifted by 10,000 and its own data, so `make test` runs beside `make up`.
Secrets reach the processes through their environment, never their command line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import deployables  # noqa: E402  (scripts/deployables.py: the registry, deploy/deployables.toml)
import infra  # noqa: E402  (scripts/infra.py, stdlib only)
import n8n_server  # noqa: E402  (scripts/n8n_server.py: the pinned n8n from npm)

PROFILES = ("dev", "test")
REGISTRY = deployables.load()
SUPER_ADMIN_EMAIL = "super@eva.local"
DEMO_EMAIL = "demo@eva.local"
DEMO_PASSWORD = "eva-demo-password"  # noqa: S105 - documented demo credential of the local stack
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_WABA_ID = "102290129340398"
DEMO_DISPLAY_NUMBER = "15550783881"
SERVICE_CLIENTS = tuple(d.name for d in REGISTRY if not d.dev_only)  # each gets a credential from auth
SUPER_ADMIN_PASSWORD_ENV = "EVA_SUPER_ADMIN_PASSWORD"  # noqa: S105 - a variable name
MIGRATION_URL_ENV = "EVA_MIGRATION_DATABASE_URL"
LOG_LINES_ON_FAILURE = 30
N8N_PORTS = {"dev": 5678, "test": 15678}  # `up --n8n`: the hotel's own n8n, beside the stack
N8N_WORKFLOWS = (ROOT / "deploy" / "n8n" / "workflows" / "guest-welcome-handover.json",
                 ROOT / "deploy" / "n8n" / "workflows" / "booking-template.json")
N8N_SCOPES = ["conversations:read", "conversations:write", "messages:read", "messages:send"]


@dataclass(frozen=True, slots=True)
class Deployable:
    """One local process of a registry row (replica n of it) with the ports of the stack's profile."""

    name: str
    module: str
    directory: str
    http_port: int
    grpc_port: int | None = None
    database: str | None = None
    replica: int = 0

    def process_name(self) -> str:
        return self.name if self.replica == 0 else f"{self.name}-{self.replica + 1}"

    def ports(self) -> list[int]:
        return [self.http_port] + ([self.grpc_port] if self.grpc_port else [])


@dataclass(frozen=True, slots=True)
class Stack:
    profile: str
    gateway_replicas: int | None = None  # None: as the registry says for the profile
    local_root: Path = ROOT / ".local"  # where each profile keeps its secrets, pid files and logs

    @property
    def home(self) -> Path:
        return self.local_root / self.profile

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def deployables(self) -> list[Deployable]:
        processes: list[Deployable] = []
        for row in REGISTRY:
            replicas = row.replica_count(self.profile)
            if row.name == "gateway" and self.gateway_replicas:
                replicas = self.gateway_replicas
            for replica in range(replicas):
                processes.append(Deployable(
                    row.name, row.module, row.directory,
                    row.http_port(self.profile) + deployables.REPLICA_PORT_STEP * replica,
                    row.grpc_port(self.profile), row.database, replica,
                ))
        return processes

    def port(self, name: str) -> int:
        return next(d.http_port for d in self.deployables() if d.name == name and d.replica == 0)

    def grpc_target(self, name: str) -> str:
        grpc_port = next(d.grpc_port for d in self.deployables() if d.name == name)
        return f"127.0.0.1:{grpc_port}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"


# ---------------------------------------------------------------- secrets


def load_secrets(stack: Stack) -> dict[str, Any]:
    """Random secrets per profile, made once and kept in .local/<profile>/secrets.json (mode 600)."""
    path = stack.home / "secrets.json"
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text())
        if "super_admin_password" not in loaded:  # secrets files made before the platform's super admin existed
            loaded["super_admin_password"] = secrets.token_urlsafe(18)
            path.write_text(json.dumps(loaded, indent=2))
        if "n8n_encryption_keys" not in loaded:  # secrets files made before the outbound webhooks existed
            loaded["n8n_encryption_keys"] = {"k1": base64.b64encode(secrets.token_bytes(32)).decode()}
            path.write_text(json.dumps(loaded, indent=2))
        return loaded
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    made = {
        "service_clients": {name: secrets.token_urlsafe(32) for name in SERVICE_CLIENTS},
        "jwt_signing_keys": [{"kid": uuid.uuid4().hex[:12], "private_key_pem": pem}],
        "encryption_keys": {"k1": base64.b64encode(secrets.token_bytes(32)).decode()},
        "encryption_active_key": "k1",
        "lookup_hmac_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "n8n_encryption_keys": {"k1": base64.b64encode(secrets.token_bytes(32)).decode()},
        "platform_app_secret": secrets.token_hex(16),
        "platform_verify_token": secrets.token_urlsafe(18),
        "demo_access_token": "EAA" + secrets.token_urlsafe(40),
        "demo_app_secret": secrets.token_hex(16),
        "demo_verify_token": secrets.token_urlsafe(18),
        "super_admin_password": secrets.token_urlsafe(18),
    }
    stack.home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(made, indent=2))
    path.chmod(0o600)
    return made


# ---------------------------------------------------------------- environment


def infra_env(stack: Stack) -> dict[str, str]:
    return infra.profile_env(stack.profile)


def database_urls(stack: Stack, database: str) -> tuple[str, str]:
    env = infra_env(stack)
    host, port = env["EVA_PG_HOST"], env["EVA_PG_PORT"]
    app = f"postgresql+asyncpg://{env['EVA_PG_APP_USER']}:{env['EVA_PG_APP_PASSWORD']}@{host}:{port}/{database}"
    owner = (f"postgresql+asyncpg://{env['EVA_PG_OWNER_USER']}:{env['EVA_PG_OWNER_PASSWORD']}"
             f"@{host}:{port}/{database}")
    return app, owner


def deployable_env(stack: Stack, item: Deployable, secrets_: dict[str, Any]) -> dict[str, str]:
    infra_vars = infra_env(stack)
    env = child_env()
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "EVA_SERVICE_NAME": item.name,
            "EVA_ENVIRONMENT": stack.profile,
            "EVA_LOG_LEVEL": os.environ.get("EVA_LOG_LEVEL", "INFO"),
            "EVA_HTTP_HOST": "127.0.0.1",
            "EVA_HTTP_PORT": str(item.http_port),
            "EVA_REDIS_URL": infra_vars["EVA_REDIS_URL"],
            "EVA_KAFKA_BOOTSTRAP": infra_vars["EVA_KAFKA_BOOTSTRAP"],
            **{row.grpc_target_env: stack.grpc_target(row.name) for row in REGISTRY if row.grpc},
            "EVA_WHATSAPP_GRAPH_URL": stack.url("simulator"),
            "EVA_FRONTEND_URL": os.environ.get("EVA_FRONTEND_URL", "http://localhost:5173"),
            "EVA_SERVICE_CLIENT_SECRET": secrets_["service_clients"].get(item.name, "unused-" + "x" * 16),
        }
    )
    if item.grpc_port:
        env["EVA_GRPC_PORT"] = str(item.grpc_port)
    if item.database:
        env["EVA_DATABASE_URL"], env["EVA_MIGRATION_DATABASE_URL"] = database_urls(stack, item.database)
    if item.name == "messaging":
        env["EVA_MEDIA_ROOT"] = str(stack.home / "media")
    if item.name == "auth":
        env["EVA_SERVICE_CLIENTS"] = json.dumps(secrets_["service_clients"])
        env["EVA_JWT_SIGNING_KEYS"] = json.dumps(secrets_["jwt_signing_keys"])
    if item.name == "tenant":
        env["EVA_ENCRYPTION_KEYS"] = json.dumps(secrets_["encryption_keys"])
        env["EVA_ENCRYPTION_ACTIVE_KEY"] = secrets_["encryption_active_key"]
        env["EVA_LOOKUP_HMAC_KEY"] = secrets_["lookup_hmac_key"]
    if item.name == "n8n-integration":
        # webhook secrets sealed under the service's own keys; a local n8n (http, loopback) may be called
        env["EVA_ENCRYPTION_KEYS"] = json.dumps(secrets_["n8n_encryption_keys"])
        env["EVA_ENCRYPTION_ACTIVE_KEY"] = "k1"
        env["EVA_WEBHOOK_ALLOW_HTTP"] = "true"
        env["EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "127.0.0.0/8,::1/128"
    if item.name == "webhook-ingest":
        env["EVA_PLATFORM_APP_SECRET"] = secrets_["platform_app_secret"]
        env["EVA_PLATFORM_VERIFY_TOKEN"] = secrets_["platform_verify_token"]
    if item.name == "simulator":
        env["SIMULATOR_HOST"] = "127.0.0.1"
        env["SIMULATOR_PORT"] = str(item.http_port)
    return env


def command_for(item: Deployable) -> list[str]:
    if item.name == "simulator":
        return [sys.executable, "-m", item.module, "serve", "--host", "127.0.0.1", "--port", str(item.http_port)]
    return [sys.executable, "-m", item.module]


# ---------------------------------------------------------------- processes


def pid_file(stack: Stack, item: Deployable) -> Path:
    return stack.run_dir / f"{item.process_name()}.pid"


def running_pid(stack: Stack, item: Deployable) -> int | None:
    path = pid_file(stack, item)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and item.module.encode() not in cmdline.read_bytes():
        return None
    return pid


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def readyz(item: Deployable) -> bool:
    return http_ok(f"http://127.0.0.1:{item.http_port}/readyz")


@dataclass(slots=True)
class Launch:
    """A process this run started: its handle (for the exit code) and where its log of this start begins."""

    item: Deployable
    process: subprocess.Popen[bytes]
    log: Path
    log_offset: int


def start(stack: Stack, item: Deployable, secrets_: dict[str, Any],
          port_timeout: float = infra.PORT_RELEASE_TIMEOUT_S) -> Launch | None:
    """Start one process (None when it already runs). Its ports may still be held by the process that `down`
    just stopped: wait for them (bounded) rather than start a server that cannot bind."""
    if running_pid(stack, item) is not None:
        return None
    for port in item.ports():
        if not infra.wait_port_free(port, port_timeout):
            raise SystemExit(infra.port_busy_message(port, f"cannot start {item.process_name()}", port_timeout))
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = stack.log_dir / f"{item.process_name()}.log"
    with log_path.open("ab") as log:
        log.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} start of {item.process_name()} ===\n".encode())
        log.flush()
        offset = log.tell()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command_for(item), cwd=ROOT, env=deployable_env(stack, item, secrets_),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    pid_file(stack, item).write_text(str(process.pid))
    return Launch(item, process, log_path, offset)


def exit_report(launch: Launch, lines: int = LOG_LINES_ON_FAILURE) -> str:
    """Why a process this run started is gone: its exit status and the last lines it logged since it started."""
    code = launch.process.poll()
    if code is None:
        status = "is still running"
    elif code < 0:
        status = f"was killed by {signal.Signals(-code).name}"
    else:
        status = f"exited with code {code}"
    try:
        with launch.log.open("rb") as log:
            log.seek(launch.log_offset)
            written = log.read().decode(errors="replace").splitlines()
    except OSError:
        written = []
    shown = "\n".join(written[-lines:]) if written else "(it wrote nothing to its log)"
    return (f"{launch.item.process_name()} {status} during start-up; last {min(lines, len(written))} lines of "
            f"{launch.log}:\n{shown}")


def wait_ready(stack: Stack, items: list[Deployable], launches: dict[str, Launch] | None = None,
               timeout: float = 120.0) -> None:
    launched = launches or {}
    deadline = time.monotonic() + timeout
    pending = list(items)
    while pending:
        for item in list(pending):
            launch = launched.get(item.process_name())
            if launch is not None and launch.process.poll() is not None:
                pid_file(stack, item).unlink(missing_ok=True)
                raise SystemExit(exit_report(launch))
            if launch is None and running_pid(stack, item) is None:
                raise SystemExit(f"{item.process_name()} is not running:\n{tail(stack, item)}")
            if readyz(item):
                pending.remove(item)
        if pending and time.monotonic() > deadline:
            names = ", ".join(i.process_name() for i in pending)
            details = "\n".join(tail(stack, i, 15) for i in pending)
            raise SystemExit(f"not ready after {timeout:.0f}s: {names}\n{details}")
        if pending:
            time.sleep(0.3)


def tail(stack: Stack, item: Deployable, lines: int = LOG_LINES_ON_FAILURE) -> str:
    path = stack.log_dir / f"{item.process_name()}.log"
    if not path.exists():
        return f"({path} missing)"
    return f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def group_alive(pgid: int) -> bool:
    """True while a process of the group (the session `start` made) runs; zombies do not count."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop(stack: Stack, item: Deployable, timeout: float = 20.0) -> None:
    """SIGTERM to the process group, wait until every member is gone (SIGKILL after ``timeout``)."""
    pid = running_pid(stack, item)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.1)
        if group_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while group_alive(pid):
                time.sleep(0.1)
    pid_file(stack, item).unlink(missing_ok=True)


# ---------------------------------------------------------------- steps


def infra_cmd(stack: Stack, action: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "infra.py"), action, "--profile", stack.profile],  # noqa: S603
                   check=True, cwd=ROOT)


def create_topics(stack: Stack) -> None:
    from eva_common.kafka.admin import ensure_topics
    from eva_events.topics import ALL_TOPICS

    created = asyncio.run(ensure_topics(infra_env(stack)["EVA_KAFKA_BOOTSTRAP"], ALL_TOPICS))
    if created:
        say(f"created topics: {', '.join(created)}")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a helper process: ours without EVA_* settings, plus ``extra`` (where secrets go: never
    on a command line, which every local user can read in `ps`)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("EVA_", "SIMULATOR_"))}
    env.update(extra)
    return env


MIGRATE_CODE = ("import os, sys; from pathlib import Path; from eva_common.migrations import upgrade; "
                f"upgrade(Path(sys.argv[1]), os.environ[{MIGRATION_URL_ENV!r}])")


def migrate_command(stack: Stack, item: Deployable) -> tuple[list[str], dict[str, str]]:
    """argv and environment of one database's migrations (the owner's URL, with its password, in the env)."""
    assert item.database is not None
    _, owner_url = database_urls(stack, item.database)
    return [sys.executable, "-c", MIGRATE_CODE, str(ROOT / item.directory)], child_env(**{MIGRATION_URL_ENV: owner_url})


def migrate(stack: Stack) -> None:
    for item in stack.deployables():
        if item.database is None or item.replica:
            continue
        argv, env = migrate_command(stack, item)
        subprocess.run(argv, check=True, cwd=ROOT, env=env)  # noqa: S603
        say(f"migrated {item.database}")


def request_json(method: str, url: str, body: Any = None, token: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback only
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def seed(stack: Stack) -> dict[str, str]:
    """The demo hotel: a tenant with its admin, its WhatsApp number registered in the simulator and in Eva."""
    secrets_ = load_secrets(stack)
    number = {
        "phoneNumberId": DEMO_PHONE_NUMBER_ID, "wabaId": DEMO_WABA_ID, "displayPhoneNumber": DEMO_DISPLAY_NUMBER,
        "accessToken": secrets_["demo_access_token"], "appSecret": secrets_["demo_app_secret"],
        "webhookUrl": f"{stack.url('webhook-ingest')}/webhooks/whatsapp",
    }
    status, body = request_json("POST", f"{stack.url('simulator')}/_sim/numbers", number)
    if status >= 300:
        raise SystemExit(f"simulator refused the demo number: {status} {body}")
    gateway = stack.url("gateway")
    status, session = request_json("POST", f"{gateway}/auth/login", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    if status != 200:
        status, session = request_json("POST", f"{gateway}/auth/register", {
            "tenantName": "Hotel Demo", "name": "Demo Admin", "email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        if status not in (200, 201):
            raise SystemExit(f"could not register the demo tenant: {status} {session}")
    token = session["accessToken"]
    status, body = request_json("PUT", f"{gateway}/api/tenant/whatsapp", {
        "phoneNumberId": DEMO_PHONE_NUMBER_ID, "wabaId": DEMO_WABA_ID, "displayPhoneNumber": DEMO_DISPLAY_NUMBER,
        "accessToken": secrets_["demo_access_token"], "appSecret": secrets_["demo_app_secret"],
        "verifyToken": secrets_["demo_verify_token"]}, token)
    if status != 200:
        raise SystemExit(f"could not store the demo WhatsApp credentials: {status} {body}")
    return {"tenant": session["tenant"]["slug"], "email": DEMO_EMAIL, "password": DEMO_PASSWORD,
            "super_admin_password": secrets_["super_admin_password"]}


def seed_super_admin_command(stack: Stack, secrets_: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """argv and environment of auth's seeding command; the password goes in the environment (a password that
    begins with '-' would otherwise be read as an option, and argv is public)."""
    auth = next(item for item in stack.deployables() if item.name == "auth")
    env = deployable_env(stack, auth, secrets_)
    env[SUPER_ADMIN_PASSWORD_ENV] = secrets_["super_admin_password"]
    return [sys.executable, "-m", "auth_service.seed_super_admin", "--email", SUPER_ADMIN_EMAIL], env


def seed_super_admin(stack: Stack) -> None:
    """The platform tenant and its super admin (idempotent), made by auth's own seeding command."""
    argv, env = seed_super_admin_command(stack, load_secrets(stack))
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"could not seed the super admin:\n{result.stdout}\n{result.stderr[-2000:]}")


def up(stack: Stack, *, with_seed: bool, with_n8n: bool = False) -> None:
    infra_cmd(stack, "up")
    start_deployables(stack)
    if with_seed:
        demo = seed(stack)
        if with_n8n:
            demo["n8n"] = start_n8n(stack)
        print_welcome(stack, demo)


def start_deployables(stack: Stack) -> None:
    """Topics, migrations, every deployable (those not running yet) until ready, the platform's super admin: `up`
    without the infrastructure, which must be running (`start`, e.g. after `stop` and a database restore)."""
    started = time.monotonic()
    secrets_ = load_secrets(stack)
    create_topics(stack)
    migrate(stack)
    items = stack.deployables()
    launches = {}
    for item in items:
        launch = start(stack, item, secrets_)
        if launch is not None:
            launches[item.process_name()] = launch
    wait_ready(stack, items, launches)
    say(f"all {len(items)} processes ready in {time.monotonic() - started:.1f}s")
    seed_super_admin(stack)


def n8n_pid_file(stack: Stack) -> Path:
    return stack.run_dir / "n8n.pid"


def start_n8n(stack: Stack) -> str:
    """The demo hotel's n8n (`up --n8n`, `make up N8N=1`), as docs/n8n.md wires one: an API key of the hotel for it
    (made once, kept in .local/<profile>/n8n.json with the webhook secret), the demo admin as the attendant guests
    are handed to, its `eva-guest` webhook subscribed to guests' messages, the example workflows active, its user
    folder kept (.local/<profile>/n8n). Returns its URL."""
    port = N8N_PORTS[stack.profile]
    url = f"http://127.0.0.1:{port}"
    if http_ok(f"{url}/healthz"):
        return url
    n8n_server.install()
    gateway, n8n_api = stack.url("gateway"), stack.url("n8n-integration")
    status, session = request_json("POST", f"{gateway}/auth/login", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    if status != 200:
        raise SystemExit(f"n8n: cannot log in as the demo admin: {status} {session}")
    token = session["accessToken"]
    state_path = stack.home / "n8n.json"
    state: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    key = state.get("api_key", "")
    if not key or request_json("GET", f"{n8n_api}/n8n/events?limit=1", None, None, {"X-Api-Key": key})[0] != 200:
        status, created = request_json("POST", f"{gateway}/api/tenant/api-keys",
                                       {"name": "n8n (local stack)", "scopes": N8N_SCOPES}, token)
        if status != 201:
            raise SystemExit(f"n8n: cannot make its API key: {status} {created}")
        key = created["key"]
    state = {"api_key": key, "webhook_secret": state.get("webhook_secret") or secrets.token_hex(32)}
    state_path.write_text(json.dumps(state))
    state_path.chmod(0o600)
    hook = f"{url}/webhook/eva-guest"
    status, listed = request_json("GET", f"{gateway}/api/webhooks", None, token)
    for item in listed.get("items", []) if status == 200 else []:
        if item["url"] == hook:  # made with another secret, maybe: made again with the kept one
            request_json("DELETE", f"{gateway}/api/webhooks/{item['id']}", None, token)
    status, body = request_json("POST", f"{gateway}/api/webhooks", {
        "url": hook, "events": ["message.received"], "secret": state["webhook_secret"]}, token)
    if status != 201:
        raise SystemExit(f"n8n: cannot subscribe its webhook: {status} {body}")
    env = child_env(EVA_N8N_URL=n8n_api, EVA_API_KEY=key, EVA_WEBHOOK_SECRET=state["webhook_secret"],
                    EVA_HANDOVER_ATTENDANT_ID=session["user"]["id"])
    command = [sys.executable, str(ROOT / "scripts" / "n8n_server.py"), "run", "--port", str(port),
               "--folder", str(stack.home / "n8n")]
    for workflow in N8N_WORKFLOWS:
        command += ["--workflow", str(workflow)]
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    with (stack.log_dir / "n8n.log").open("a") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                   start_new_session=True)
    n8n_pid_file(stack).write_text(str(process.pid))
    deadline = time.monotonic() + 180
    while not http_ok(f"{url}/healthz"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"n8n did not start; see {stack.log_dir / 'n8n.log'}")
        time.sleep(0.5)
    return url


def stop_n8n(stack: Stack) -> None:
    path = n8n_pid_file(stack)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and group_alive(pid):
        time.sleep(0.1)
    path.unlink(missing_ok=True)


def print_welcome(stack: Stack, demo: dict[str, str]) -> None:
    say("")
    say(f"  REST + Socket.io  {stack.url('gateway')}   (OpenAPI: {stack.url('gateway')}/docs)")
    say(f"  Meta webhooks     {stack.url('webhook-ingest')}/webhooks/whatsapp")
    say(f"  n8n API           {stack.url('n8n-integration')}")
    say(f"  WhatsApp sim      {stack.url('simulator')}")
    say(f"  demo login        {demo['email']} / {demo['password']}  (tenant {demo['tenant']})")
    say(f"  super admin       {SUPER_ADMIN_EMAIL} / {demo['super_admin_password']}  (tenant platform)")
    say(f"  demo number       phoneNumberId {DEMO_PHONE_NUMBER_ID}")
    say(f"  a guest writes:   uv run eva-simulator guest-message --sim-url {stack.url('simulator')} "
        f"--phone-number-id {DEMO_PHONE_NUMBER_ID} --from 16505551234 --name 'Ana' --text 'Hola!'")
    if "n8n" in demo:
        say(f"  n8n               {demo['n8n']}  (the example workflows active; a guest's first message is "
            "welcomed and handed to the demo admin)")
    say(f"  logs: make logs   status: make ps   stop: make down   ({stack.home})")


def down(stack: Stack) -> None:
    stop_n8n(stack)
    for item in reversed(stack.deployables()):
        stop(stack, item)
    infra_cmd(stack, "down")


def rss_mib(pid: int | None) -> float:
    """Resident memory of a process, in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0.0


def ps(stack: Stack) -> int:
    healthy = True
    total = 0.0
    for item in stack.deployables():
        pid = running_pid(stack, item)
        ready = pid is not None and readyz(item)
        healthy &= ready
        state = "ready" if ready else ("running, not ready" if pid else "stopped")
        memory = rss_mib(pid) if pid else 0.0
        total += memory
        say(f"{item.process_name():18} pid={pid or '-':<8} http=:{item.http_port:<6} rss={memory:6.1f}MiB  {state}")
    say(f"{'services total':18} rss={total:.1f}MiB")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "infra.py"), "status",  # noqa: S603
                             "--profile", stack.profile], cwd=ROOT, check=False)
    return 0 if healthy and result.returncode == 0 else 1


def logs(stack: Stack) -> None:
    files = sorted(str(path) for path in stack.log_dir.glob("*.log"))
    if not files:
        raise SystemExit("no logs yet: run make up")
    os.execvp("tail", ["tail", "-n", "20", "-F", *files])  # noqa: S606, S607


def reset(stack: Stack) -> None:
    for item in reversed(stack.deployables()):
        stop(stack, item)
    infra_cmd(stack, "reset")
    for path in (stack.home / "secrets.json",):
        path.unlink(missing_ok=True)
    for folder in (stack.log_dir, stack.run_dir):
        for path in folder.glob("*"):
            path.unlink()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def env_lines(stack: Stack) -> Iterator[str]:
    secrets_ = load_secrets(stack)
    yield f"EVA_GATEWAY_URL={stack.url('gateway')}"
    yield f"EVA_INGEST_URL={stack.url('webhook-ingest')}"
    yield f"EVA_N8N_URL={stack.url('n8n-integration')}"
    yield f"EVA_SIMULATOR_URL={stack.url('simulator')}"
    yield f"EVA_PLATFORM_VERIFY_TOKEN={secrets_['platform_verify_token']}"
    yield f"EVA_SUPER_ADMIN_EMAIL={SUPER_ADMIN_EMAIL}"
    yield f"EVA_SUPER_ADMIN_PASSWORD={secrets_['super_admin_password']}"
    yield f"EVA_AUTH_HTTP_URL=http://127.0.0.1:{stack.port('auth')}"
    for key, value in infra_env(stack).items():
        yield f"{key}={value}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "ps", "logs", "migrate", "seed", "reset", "env", "stop",
                                           "start"])
    parser.add_argument("--profile", choices=PROFILES, default="dev")
    parser.add_argument("--gateway-replicas", type=int, default=None)
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--n8n", action="store_true", help="up: also the demo hotel's n8n (docs/n8n.md)")
    args = parser.parse_args()
    stack = Stack(args.profile, args.gateway_replicas)
    if args.action == "up":
        up(stack, with_seed=not args.no_seed, with_n8n=args.n8n)
    elif args.action == "down":
        down(stack)
    elif args.action == "stop":  # the deployables only, infrastructure stays up
        for item in reversed(stack.deployables()):
            stop(stack, item)
    elif args.action == "start":  # the deployables only, against infrastructure that runs
        start_deployables(stack)
    elif args.action == "ps":
        raise SystemExit(ps(stack))
    elif args.action == "logs":
        logs(stack)
    elif args.action == "migrate":
        infra_cmd(stack, "up")
        migrate(stack)
    elif args.action == "seed":
        seed_super_admin(stack)
        print_welcome(stack, seed(stack))
    elif args.action == "reset":
        reset(stack)
    elif args.action == "env":
        for line in env_lines(stack):
            say(line)


if __name__ == "__main__":
    main()
