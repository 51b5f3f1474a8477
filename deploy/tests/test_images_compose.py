"""Smoke test of the images with a real Docker engine: `scripts/images.py` builds every deployed image, Docker
Compose runs deploy/compose/compose.yml (production-like) from them with freshly generated secrets, every public
service answers /readyz through its published port, and a hotel registers and logs in through the gateway.

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
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The compose stack from freshly built images: {public deployable: its published base URL}."""
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
        urls: dict[str, str] = {}
        for row in deployables.load():
            if row.public and not row.dev_only:
                url = compose.published(row.name, row.http_port("container"))
                if url is None:
                    pytest.fail(f"{row.name} publishes no port {row.http_port('container')}:\n{compose.diagnostics()}",
                                pytrace=False)
                urls[row.name] = url
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = dict(urls)
        while waiting and time.monotonic() < deadline:
            for name, url in list(waiting.items()):
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        del waiting[name]
                except httpx.HTTPError:
                    pass
            time.sleep(2)
        if waiting:
            pytest.fail(f"not ready after {READY_TIMEOUT_S} s: {', '.join(waiting)}\n{compose.diagnostics()}",
                        pytrace=False)
        yield urls
    finally:
        compose.run("down", "-v", "--remove-orphans", timeout=300)


def test_every_public_service_is_ready_through_its_published_port(compose_stack: dict[str, str]) -> None:
    assert set(compose_stack) == {"gateway", "webhook-ingest", "n8n-integration"}
    for url in compose_stack.values():
        response = httpx.get(f"{url}/readyz", timeout=10)
        assert response.status_code == 200, response.text


def test_a_hotel_registers_and_logs_in_through_the_gateway(compose_stack: dict[str, str]) -> None:
    gateway = compose_stack["gateway"]
    email, password = f"smoke-{uuid.uuid4().hex[:8]}@hotel.test", "correct horse battery staple"
    registered = httpx.post(f"{gateway}/auth/register", timeout=30, json={
        "tenantName": f"Smoke {uuid.uuid4().hex[:6]}", "name": "Front Desk", "email": email, "password": password})
    assert registered.status_code in (200, 201), registered.text
    login = httpx.post(f"{gateway}/auth/login", json={"email": email, "password": password}, timeout=30)
    assert login.status_code == 200, login.text
    me = httpx.get(f"{gateway}/auth/me", headers={"Authorization": f"Bearer {login.json()['accessToken']}"},
                   timeout=30)
    assert me.status_code == 200, me.text
    assert email in me.text


def test_the_running_images_carry_their_labels(compose_stack: dict[str, str]) -> None:
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
