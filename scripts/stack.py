"""The local Eva stack as processes: infrastructure (scripts/infra.py), topics, migrations, every deployable and
the WhatsApp simulator, readiness, and the demo tenant.

    uv run python scripts/stack.py {up,down,ps,logs,migrate,seed,reset,env} [--profile dev|test]

The dev profile serves the public ports (gateway 3001, ingest 3002, n8n 3003, simulator 3010); the test profile
uses the same layout shifted by 10,000 and its own data, so `make test` runs beside `make up`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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

import infra  # noqa: E402  (scripts/infra.py, stdlib only)

PROFILE_OFFSET = {"dev": 0, "test": 10_000}
SUPER_ADMIN_EMAIL = "super@eva.local"
DEMO_EMAIL = "demo@eva.local"
DEMO_PASSWORD = "eva-demo-password"  # noqa: S105 - documented demo credential of the local stack
DEMO_PHONE_NUMBER_ID = "106540352242922"
DEMO_WABA_ID = "102290129340398"
DEMO_DISPLAY_NUMBER = "15550783881"
SERVICE_CLIENTS = ("auth", "tenant", "conversation", "messaging", "webhook-ingest", "realtime", "n8n-integration",
                   "gateway")


@dataclass(frozen=True, slots=True)
class Deployable:
    name: str
    module: str
    directory: str
    http_port: int
    grpc_port: int | None = None
    database: str | None = None
    replica: int = 0

    def process_name(self) -> str:
        return self.name if self.replica == 0 else f"{self.name}-{self.replica + 1}"


BASE_DEPLOYABLES = (
    Deployable("auth", "auth_service", "services/auth", 8101, 9051, "eva_auth"),
    Deployable("tenant", "tenant_service", "services/tenant", 8102, 9052, "eva_tenant"),
    Deployable("conversation", "conversation_service", "services/conversation", 8103, 9053, "eva_conversation"),
    Deployable("messaging", "messaging_service", "services/messaging", 8104, 9054, "eva_messaging"),
    Deployable("webhook-ingest", "webhook_ingest_service", "services/webhook-ingest", 3002, None, "eva_ingest"),
    Deployable("realtime", "realtime_service", "services/realtime", 8105),
    Deployable("n8n-integration", "n8n_service", "services/n8n-integration", 3003, None, "eva_n8n"),
    Deployable("gateway", "gateway", "gateway", 3001),
    Deployable("simulator", "eva_simulator", "libs/simulator", 3010),
)


@dataclass(frozen=True, slots=True)
class Stack:
    profile: str
    gateway_replicas: int

    @property
    def offset(self) -> int:
        return PROFILE_OFFSET[self.profile]

    @property
    def home(self) -> Path:
        return ROOT / ".local" / self.profile

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def deployables(self) -> list[Deployable]:
        shifted: list[Deployable] = []
        for item in BASE_DEPLOYABLES:
            replicas = self.gateway_replicas if item.name == "gateway" else 1
            for replica in range(replicas):
                shifted.append(
                    Deployable(
                        item.name, item.module, item.directory, item.http_port + self.offset + 10 * replica,
                        item.grpc_port + self.offset if item.grpc_port else None, item.database, replica,
                    )
                )
        return shifted

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
    env = {key: value for key, value in os.environ.items() if not key.startswith(("EVA_", "SIMULATOR_"))}
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
            "EVA_AUTH_GRPC_TARGET": stack.grpc_target("auth"),
            "EVA_TENANT_GRPC_TARGET": stack.grpc_target("tenant"),
            "EVA_CONVERSATION_GRPC_TARGET": stack.grpc_target("conversation"),
            "EVA_MESSAGING_GRPC_TARGET": stack.grpc_target("messaging"),
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


def start(stack: Stack, item: Deployable, secrets_: dict[str, Any]) -> None:
    if running_pid(stack, item) is not None:
        return
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    log = (stack.log_dir / f"{item.process_name()}.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command_for(item), cwd=ROOT, env=deployable_env(stack, item, secrets_),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    pid_file(stack, item).write_text(str(process.pid))


def wait_ready(stack: Stack, items: list[Deployable], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(items)
    while pending:
        for item in list(pending):
            if running_pid(stack, item) is None:
                raise SystemExit(f"{item.process_name()} exited during start-up:\n{tail(stack, item)}")
            if readyz(item):
                pending.remove(item)
        if pending and time.monotonic() > deadline:
            names = ", ".join(i.process_name() for i in pending)
            details = "\n".join(tail(stack, i, 15) for i in pending)
            raise SystemExit(f"not ready after {timeout:.0f}s: {names}\n{details}")
        if pending:
            time.sleep(0.3)


def tail(stack: Stack, item: Deployable, lines: int = 30) -> str:
    path = stack.log_dir / f"{item.process_name()}.log"
    if not path.exists():
        return f"({path} missing)"
    return f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(stack: Stack, item: Deployable, timeout: float = 20.0) -> None:
    pid = running_pid(stack, item)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and running_pid(stack, item) is not None:
            time.sleep(0.2)
        if running_pid(stack, item) is not None:
            os.killpg(pid, signal.SIGKILL)
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


def migrate(stack: Stack) -> None:
    for item in stack.deployables():
        if item.database is None or item.replica:
            continue
        _, owner_url = database_urls(stack, item.database)
        code = ("import sys; from pathlib import Path; from eva_common.migrations import upgrade; "
                "upgrade(Path(sys.argv[1]), sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(ROOT / item.directory), owner_url],  # noqa: S603
                       check=True, cwd=ROOT)
        say(f"migrated {item.database}")


def request_json(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback only
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
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


def seed_super_admin(stack: Stack) -> None:
    """The platform tenant and its super admin (idempotent), made by auth's own seeding command."""
    secrets_ = load_secrets(stack)
    auth = next(item for item in stack.deployables() if item.name == "auth")
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "auth_service.seed_super_admin", "--email", SUPER_ADMIN_EMAIL,
         "--password", secrets_["super_admin_password"]],
        cwd=ROOT, env=deployable_env(stack, auth, secrets_), capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"could not seed the super admin:\n{result.stdout}\n{result.stderr[-2000:]}")


def up(stack: Stack, *, with_seed: bool) -> None:
    started = time.monotonic()
    infra_cmd(stack, "up")
    secrets_ = load_secrets(stack)
    create_topics(stack)
    migrate(stack)
    items = stack.deployables()
    for item in items:
        start(stack, item, secrets_)
    wait_ready(stack, items)
    say(f"all {len(items)} processes ready in {time.monotonic() - started:.1f}s")
    seed_super_admin(stack)
    if with_seed:
        demo = seed(stack)
        print_welcome(stack, demo)


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
    say(f"  logs: make logs   status: make ps   stop: make down   ({stack.home})")


def down(stack: Stack) -> None:
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
    yield f"EVA_SIMULATOR_URL={stack.url('simulator')}"
    yield f"EVA_PLATFORM_VERIFY_TOKEN={secrets_['platform_verify_token']}"
    yield f"EVA_SUPER_ADMIN_EMAIL={SUPER_ADMIN_EMAIL}"
    yield f"EVA_SUPER_ADMIN_PASSWORD={secrets_['super_admin_password']}"
    yield f"EVA_AUTH_HTTP_URL=http://127.0.0.1:{stack.port('auth')}"
    for key, value in infra_env(stack).items():
        yield f"{key}={value}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "ps", "logs", "migrate", "seed", "reset", "env", "stop"])
    parser.add_argument("--profile", choices=sorted(PROFILE_OFFSET), default="dev")
    parser.add_argument("--gateway-replicas", type=int, default=None)
    parser.add_argument("--no-seed", action="store_true")
    args = parser.parse_args()
    replicas = args.gateway_replicas or (2 if args.profile == "test" else 1)
    stack = Stack(args.profile, replicas)
    if args.action == "up":
        up(stack, with_seed=not args.no_seed)
    elif args.action == "down":
        down(stack)
    elif args.action == "stop":  # the deployables only, infrastructure stays up
        for item in reversed(stack.deployables()):
            stop(stack, item)
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
