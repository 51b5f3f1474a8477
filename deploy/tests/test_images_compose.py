"""Smoke test of the images with a real Docker engine: `scripts/images.py` builds every deployed image, Docker
Compose runs deploy/compose/compose.yml (production-like) from them with freshly generated secrets, every public
service answers /readyz through its published port (from inside its container when an edge proxy alone publishes
ports), and a hotel registers and logs in through the gateway.

It runs only where a Docker engine and the compose plugin answer (GitHub's runners: the ci and release workflows);
elsewhere it is skipped and says why. Its images are tagged `smoke` (eva/<name>:smoke) and kept, so a later run
reuses their layers; the compose project and its volumes are removed afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva_testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
VERSION = "smoke"
READY_TIMEOUT_S = 600
BUILD_TIMEOUT_S = 3600

engine = load_script("docker_engine")
deployables = load_script("deployables")
validate_manifests = load_script("validate_manifests")

# the module's first test also builds every image and brings the stack up (the fixture's time counts)
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + READY_TIMEOUT_S + 1800)


def _ed25519_keys() -> str:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return json.dumps([{"kid": "smoke", "private_key_pem": pem}])


def _aes_keys() -> str:
    return json.dumps({"k1": base64.b64encode(secrets.token_bytes(32)).decode()})


GENERATED = {  # what .env.example's header says to generate, by variable
    "EVA_JWT_SIGNING_KEYS": _ed25519_keys,
    "EVA_ENCRYPTION_KEYS": _aes_keys,
    "EVA_N8N_ENCRYPTION_KEYS": _aes_keys,
    "EVA_LOOKUP_HMAC_KEY": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
}


def compose_env() -> dict[str, str]:
    """.env.example with every required (`${VAR:?}`) empty value generated: hex for passwords, keys as documented."""
    example = validate_manifests.parse_env_file(COMPOSE_DIR / ".env.example")
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", (COMPOSE_DIR / "compose.yml").read_text()))
    env = dict(example)
    for key in sorted(required | set(example)):
        if not env.get(key) and key in required:
            env[key] = GENERATED.get(key, lambda: secrets.token_hex(24))()
    env["EVA_IMAGE_TAG"] = VERSION
    return env


def write_env(path: Path, env: dict[str, str]) -> None:
    path.write_text("".join(f"{key}='{value}'\n" for key, value in env.items()))


@dataclass
class Compose:
    project: str
    env_file: Path

    def command(self, *args: str) -> list[str]:
        return ["docker", "compose", "-p", self.project, "-f", str(COMPOSE_DIR / "compose.yml"),
                "--env-file", str(self.env_file), *args]

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=COMPOSE_DIR, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def diagnostics(self) -> str:
        ps = self.run("ps", "-a", timeout=60)
        logs = self.run("logs", "--no-color", "--tail", "40", timeout=120)
        return f"{ps.stdout}{ps.stderr}\n{logs.stdout[-20000:]}{logs.stderr[-2000:]}"

    def published(self, service: str, port: int) -> str | None:
        result = self.run("port", service, str(port), timeout=60)
        address = result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else ""
        if not address:
            return None
        host, _, published = address.rpartition(":")
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '[::]') else host}:{published}"


# A request from inside a service's own container (python is in every image), for a service that publishes no port
# because an edge proxy alone does: argv = method, url, JSON body or "", bearer token or "".
IN_CONTAINER = """
import sys, urllib.error, urllib.request
method, url, body, token = sys.argv[1:5]
headers = {"Content-Type": "application/json"} if body else {}
if token:
    headers["Authorization"] = "Bearer " + token
request = urllib.request.Request(url, data=body.encode() if body else None, headers=headers, method=method)
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        status, text = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read().decode()
print(status)
print(text)
"""


@dataclass
class Endpoint:
    """A public service of the stack: reached through its published port, else from inside its own container."""

    compose: Compose
    service: str
    port: int
    url: str | None

    def request(self, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, str]:
        if self.url is not None:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                response = httpx.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=30)
            except httpx.HTTPError as error:
                return 0, str(error)
            return response.status_code, response.text
        result = self.compose.run("exec", "-T", self.service, "python", "-c", IN_CONTAINER, method,
                                  f"http://127.0.0.1:{self.port}{path}", json.dumps(body) if body is not None else "",
                                  token or "", timeout=90)
        return in_container_answer(result)


def in_container_answer(result: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    """(status, body) from IN_CONTAINER's output; (0, the error) when it did not run."""
    status, _, text = result.stdout.partition("\n")
    return (int(status), text.removesuffix("\n")) if result.returncode == 0 and status.isdigit() else (0, result.stderr)


def _skip_without_engine() -> None:
    try:
        client = engine.connect()
    except engine.EngineUnavailable as error:
        pytest.skip(f"the images' smoke test did not run: {error}")
    client.close()
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the images' smoke test did not run: an engine answers, but there is no docker CLI for compose")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        pytest.skip("the images' smoke test did not run: the docker compose plugin is missing "
                    f"({(version.stderr or version.stdout).strip().splitlines()[0][:200]})")


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Endpoint]]:
    """The compose stack from freshly built images, ready: its public deployables by name."""
    _skip_without_engine()
    build = subprocess.run([sys.executable, str(REPO / "scripts" / "images.py"), "--version", VERSION],
                           cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if build.returncode != 0:
        pytest.fail(f"make images failed:\n{build.stderr[-20000:]}", pytrace=False)
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    write_env(env_file, compose_env())
    compose = Compose(project=f"eva-smoke-{os.getpid()}", env_file=env_file)
    try:
        up = compose.run("up", "-d", "--no-build", "--pull", "missing", timeout=1800)
        if up.returncode != 0:
            pytest.fail(f"docker compose up failed:\n{up.stderr[-5000:]}\n{compose.diagnostics()}", pytrace=False)
        endpoints = {
            row.name: Endpoint(compose, row.name, row.http_port("container"),
                               compose.published(row.name, row.http_port("container")))
            for row in deployables.load() if row.public and not row.dev_only
        }
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = dict(endpoints)
        while waiting and time.monotonic() < deadline:
            for name, endpoint in list(waiting.items()):
                if endpoint.request("GET", "/readyz")[0] == 200:
                    del waiting[name]
            time.sleep(2)
        if waiting:
            pytest.fail(f"not ready after {READY_TIMEOUT_S} s: {', '.join(waiting)}\n{compose.diagnostics()}",
                        pytrace=False)
        yield endpoints
    finally:
        compose.run("down", "-v", "--remove-orphans", timeout=300)


def test_every_public_service_is_ready(compose_stack: dict[str, Endpoint]) -> None:
    assert set(compose_stack) == {"gateway", "webhook-ingest", "n8n-integration"}
    for name, endpoint in compose_stack.items():
        status, text = endpoint.request("GET", "/readyz")
        assert status == 200, f"{name} ({endpoint.url or 'from inside its container'}): {text}"


def test_a_hotel_registers_and_logs_in_through_the_gateway(compose_stack: dict[str, Endpoint]) -> None:
    gateway = compose_stack["gateway"]
    email, password = f"smoke-{uuid.uuid4().hex[:8]}@hotel.test", "correct horse battery staple"
    status, text = gateway.request("POST", "/auth/register", {
        "tenantName": f"Smoke {uuid.uuid4().hex[:6]}", "name": "Front Desk", "email": email, "password": password})
    assert status in (200, 201), text
    status, text = gateway.request("POST", "/auth/login", {"email": email, "password": password})
    assert status == 200, text
    status, text = gateway.request("GET", "/auth/me", token=json.loads(text)["accessToken"])
    assert status == 200, text
    assert email in text


def test_the_running_images_carry_their_labels(compose_stack: dict[str, Endpoint]) -> None:
    client = engine.connect()
    try:
        for row in deployables.load():
            if row.dev_only:
                continue
            labels = client.images.get(f"eva/{row.name}:{VERSION}").labels
            assert labels["org.opencontainers.image.title"] == f"eva/{row.name}"
            assert labels["org.opencontainers.image.version"] == VERSION
            assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])
    finally:
        client.close()


def test_the_generated_env_fills_every_required_variable(tmp_path: Path) -> None:
    """Runs without an engine: the .env the smoke test gives compose has every `${VAR:?}` set, keys as documented."""
    env = compose_env()
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", (COMPOSE_DIR / "compose.yml").read_text()))
    assert required and all(env.get(key) for key in required), sorted(k for k in required if not env.get(k))
    write_env(tmp_path / ".env", env)
    assert validate_manifests.parse_env_file(tmp_path / ".env") == env  # compose reads back what was written
    (key,) = json.loads(env["EVA_JWT_SIGNING_KEYS"])
    private = serialization.load_pem_private_key(key["private_key_pem"].encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    for name in ("EVA_ENCRYPTION_KEYS", "EVA_N8N_ENCRYPTION_KEYS"):
        assert len(base64.b64decode(json.loads(env[name])["k1"])) == 32
    assert re.fullmatch(r"[0-9a-f]{48}", env["EVA_REDIS_PASSWORD"])  # URL-safe: it goes into EVA_REDIS_URL
    assert env["EVA_IMAGE_TAG"] == VERSION


def test_the_in_container_request_speaks_http(tmp_path: Path) -> None:
    """Runs without an engine: the request script the smoke test runs inside a container, against a local server."""
    seen: list[tuple[str, str, str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(("POST", self.path, self.headers.get("Authorization"), body))
            self.send_response(201 if self.path == "/auth/register" else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}\n{"line": 2}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        for path, token, expected in (("/auth/register", "t0k", 201), ("/nope", "", 401)):
            result = subprocess.run([sys.executable, "-c", IN_CONTAINER, "POST", f"{url}{path}", '{"a": 1}', token],
                                    capture_output=True, text=True, timeout=30, check=False)
            assert in_container_answer(result) == (expected, '{"ok": true}\n{"line": 2}')
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("POST", "/auth/register", "Bearer t0k", b'{"a": 1}'), ("POST", "/nope", None, b'{"a": 1}')]
    broken = subprocess.run([sys.executable, "-c", IN_CONTAINER], capture_output=True, text=True, check=False)
    assert in_container_answer(broken)[0] == 0
