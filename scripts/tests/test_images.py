"""scripts/images.py (`make images`) against a fake Docker Engine: the Engine HTTP API on a unix socket, recording
the requests the Docker SDK really sends (/build with its query and context tar, /images/<name>/push), and answering
as the engine does (chunked JSON streams, BuildKit's progress as base64 protobuf). Plus the one line and exit code 2
when no engine answers, the versions from git tags, and the build context's .dockerignore."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from eva_testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "images.py"
API = "1.47"

images = load_script("images")
engine = load_script("docker_engine")
deployables = load_script("deployables")


# ---------------------------------------------------------------------------------------------- the fake engine


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def buildkit_trace(step: str, output: str) -> str:
    """A moby.buildkit.v1.StatusResponse with one started vertex and one log line, as the engine sends it."""
    vertex = _field(1, b"sha256:aaaa") + _field(3, step.encode()) + _field(5, _field(1, 1_700_000_000))
    log = _field(1, b"sha256:aaaa") + _field(3, 1) + _field(4, output.encode())
    return base64.b64encode(_field(1, vertex) + _field(3, log)).decode()


@dataclass
class Recorded:
    builds: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    fail_build: set[str] = field(default_factory=set)  # SERVICE build args whose build fails
    fail_push: set[str] = field(default_factory=set)  # repositories whose push is refused


def make_handler(recorded: Recorded) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

        def address_string(self) -> str:
            return "unix"

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, messages: list[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for message in messages:
                data = json.dumps(message).encode() + b"\r\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def _path(self) -> str:
            path = unquote(urlsplit(self.path).path)
            return path.split("/", 2)[2] if path.startswith("/v1.") else path.lstrip("/")

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self._path()
            if path == "_ping":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
            elif path == "version":
                self._json(200, {"ApiVersion": API, "MinAPIVersion": "1.24", "Version": "27.0.0-fake"})
            else:
                self._json(404, {"message": f"no {path}"})

        def do_POST(self) -> None:
            path, query = self._path(), parse_qs(urlsplit(self.path).query)
            body = self._body()
            if path == "build":
                args = json.loads(query["buildargs"][0])
                recorded.builds.append({"query": query, "tar": body, "content_type": self.headers["Content-Type"]})
                if args.get("SERVICE") in recorded.fail_build:
                    failure = 'process "/bin/sh -c uv sync" did not complete successfully: exit code: 1'
                    self._stream([{"id": "moby.buildkit.trace", "aux": buildkit_trace("[3/5] RUN uv sync", "boom\n")},
                                  {"error": failure, "errorDetail": {"message": "exit code: 1"}}])
                    return
                self._stream([
                    {"id": "moby.buildkit.trace", "aux": buildkit_trace("[1/5] FROM docker.io/library/python",
                                                                          "resolved python\n")},
                    {"id": "moby.image.id", "aux": {"ID": f"sha256:{args['SERVICE']}0123"}},
                ])
            elif path.startswith("images/") and path.endswith("/push"):
                repository = path[len("images/") : -len("/push")]
                recorded.pushes.append({"repository": repository, "tag": query.get("tag", [""])[0],
                                        "auth": self.headers.get("X-Registry-Auth")})
                if repository in recorded.fail_push:
                    self._stream([{"status": "The push refers to repository [x]"},
                                  {"errorDetail": {"message": "denied: permission_denied"},
                                   "error": "denied: permission_denied"}])
                    return
                self._stream([{"status": "Pushed", "id": "abc123"},
                              {"aux": {"Tag": query.get("tag", [""])[0], "Digest": "sha256:feed", "Size": 1}}])
            else:
                self._json(404, {"message": f"no {path}"})

    return Handler


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[tuple[str, Recorded]]:
    """DOCKER_HOST of a fake engine, and what it recorded."""
    path = Path(f"/tmp/eva-fake-docker-{os.getpid()}-{id(tmp_path)}.sock")  # a unix socket path stays short
    recorded = Recorded()
    server = _Server(str(path), make_handler(recorded))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}", recorded
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)


def run_images(docker_host: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("DOCKER_", "EVA_REGISTRY_", "GITHUB_"))}
    environment.update(DOCKER_HOST=docker_host, DOCKER_CONFIG=env.pop("DOCKER_CONFIG", "/nonexistent"), **env)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=300, check=False)


def head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


# ---------------------------------------------------------------------------------------------- no engine


def test_no_engine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # a socket file nobody serves (bound, never listening), and no socket at all
    served_by_nobody = tmp_path / "engine.sock"
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(served_by_nobody))
        for host in (f"unix://{served_by_nobody}", f"unix://{tmp_path / 'absent.sock'}"):
            result = run_images(host, "auth")
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert "Traceback" not in result.stderr
            assert f"no Docker engine answers at {host} (DOCKER_HOST)" in lines[0]
            assert "Start Docker" in lines[0]


def test_without_docker_host_names_the_default_socket() -> None:
    address, how = engine.engine_address({"DOCKER_CONFIG": "/nonexistent"})
    assert address == "unix:///var/run/docker.sock"
    assert "default socket" in how
    assert engine.engine_address({"DOCKER_HOST": "tcp://10.0.0.5:2375"}) == ("tcp://10.0.0.5:2375", "DOCKER_HOST")


# ---------------------------------------------------------------------------------------------- builds and pushes


def test_every_deployable_is_built_labelled_tagged_and_pushed(fake_engine: tuple[str, Recorded]) -> None:
    host, recorded = fake_engine
    registry = "registry.test:5000/hotel-org"
    result = run_images(host, "--registry", registry, "--version", "v1.2.3", "--push", "--latest", "--dev",
                        "--allow-dirty", EVA_REGISTRY_USERNAME="robot", EVA_REGISTRY_PASSWORD="s3cret",
                        SOURCE_DATE_EPOCH="1767225600", GITHUB_SERVER_URL="https://github.com",
                        GITHUB_REPOSITORY="hotel-org/eva")
    assert result.returncode == 0, result.stderr
    rows = deployables.load()
    assert [json.loads(b["query"]["buildargs"][0])["SERVICE"] for b in recorded.builds] == [r.name for r in rows]
    revision = head()
    for row, build in zip(rows, recorded.builds, strict=True):
        query = build["query"]
        repository = f"{registry}/eva/{row.name}"
        assert query["t"] == [f"{repository}:1.2.3", f"{repository}:latest"]
        assert query["dockerfile"] == ["deploy/Dockerfile"]
        assert query["version"] == ["2"]  # BuildKit: the Dockerfile's cache and bind mounts need it
        assert build["content_type"] == "application/x-tar"
        assert json.loads(query["buildargs"][0]) == row.docker_args()
        labels = json.loads(query["labels"][0])
        assert labels["org.opencontainers.image.title"] == f"eva/{row.name}"
        assert labels["org.opencontainers.image.version"] == "1.2.3"
        assert labels["org.opencontainers.image.revision"] == revision
        assert labels["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"
        assert labels["org.opencontainers.image.source"] == "https://github.com/hotel-org/eva"
        assert labels["org.opencontainers.image.base.name"] == "python:3.11-slim"
    pushed = [(p["repository"], p["tag"]) for p in recorded.pushes]
    assert pushed == [(f"{registry}/eva/{r.name}", tag) for r in rows for tag in ("1.2.3", "latest")]
    for push in recorded.pushes:
        auth = json.loads(base64.urlsafe_b64decode(push["auth"]))
        assert (auth["username"], auth["password"]) == ("robot", "s3cret")
    # BuildKit's progress reaches the log, decoded and prefixed with the image's name
    assert "[auth] [1/5] FROM docker.io/library/python" in result.stderr
    assert "[auth]   resolved python" in result.stderr
    assert f"pushed {registry}/eva/gateway:1.2.3 (sha256:feed)" in result.stderr


def test_the_build_context_honours_dockerignore(fake_engine: tuple[str, Recorded]) -> None:
    host, recorded = fake_engine
    assert (REPO / ".venv").is_dir() and (REPO / ".git").exists()  # else the exclusions below prove nothing
    result = run_images(host, "--version", "0.1.0", "webhook-ingest")
    assert result.returncode == 0, result.stderr
    (build,) = recorded.builds
    assert build["query"]["t"] == ["eva/webhook-ingest:0.1.0"]
    # gzipped: BuildKit reads a plain tar that starts with a PAX header as the Dockerfile itself (seen on a real
    # engine: "dockerfile parse error line 1: unknown instruction: ././@PAXHEADER")
    assert build["tar"][:2] == b"\x1f\x8b"
    names = tarfile.open(fileobj=io.BytesIO(build["tar"])).getnames()
    for needed in ("deploy/Dockerfile", "pyproject.toml", "uv.lock", "libs/common/pyproject.toml",
                   "services/webhook-ingest/alembic.ini", "gateway/pyproject.toml"):
        assert needed in names
    top = {name.split("/")[0] for name in names}
    assert not top & {".git", ".venv", ".local", "tests-e2e", "docs", ".github", ".mypy_cache"}, top
    assert not [n for n in names if "/tests/" in n or "node_modules" in n or n.endswith(".env")]
    assert [n for n in names if n.startswith("deploy/")] == ["deploy/Dockerfile"]  # not the manifests' secrets
    assert not recorded.pushes  # no --push: nothing leaves the machine


def test_dockerignore_patterns_on_a_tree(tmp_path: Path) -> None:
    shutil.copy(REPO / ".dockerignore", tmp_path / ".dockerignore")
    for name in ("deploy/Dockerfile", "pyproject.toml", "libs/common/src/x.py", ".venv/bin/python", ".local/a",
                 "tests-e2e/js/node_modules/m.js", "libs/common/tests/test_x.py", "deploy/compose/.env",
                 "deploy/k8s/overlays/dev/secrets/auth.env",
                 ".git/HEAD", "services/auth/src/auth_service/__pycache__/m.pyc", "docs/a.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    archive = engine.context_archive(tmp_path, "deploy/Dockerfile")
    files = {m.name for m in tarfile.open(fileobj=archive).getmembers() if m.isfile()}
    assert files == {".dockerignore", "deploy/Dockerfile", "pyproject.toml", "libs/common/src/x.py"}


def test_a_failed_build_names_the_image_and_the_rest_still_build(fake_engine: tuple[str, Recorded]) -> None:
    host, recorded = fake_engine
    recorded.fail_build.add("messaging")
    result = run_images(host, "--version", "2.0.0", "auth", "messaging", "gateway")
    assert result.returncode == 1
    assert [json.loads(b["query"]["buildargs"][0])["SERVICE"] for b in recorded.builds] == [
        "auth", "messaging", "gateway"]
    assert "images: messaging: build failed: process \"/bin/sh -c uv sync\" did not complete" in result.stderr
    assert "[messaging]   boom" in result.stderr  # the failing step's output is shown
    assert result.stderr.strip().endswith("images: failed: messaging")


def test_nothing_is_pushed_unless_every_image_built(fake_engine: tuple[str, Recorded]) -> None:
    host, recorded = fake_engine
    recorded.fail_build.add("gateway")
    result = run_images(host, "--registry", "ghcr.io/org", "--version", "3.0.0", "--push", "--allow-dirty",
                        "auth", "gateway", "realtime")
    assert result.returncode == 1
    assert len(recorded.builds) == 3
    assert recorded.pushes == []
    assert "images: nothing pushed, since not every image built" in result.stderr


def test_a_refused_push_fails_the_run(fake_engine: tuple[str, Recorded]) -> None:
    host, recorded = fake_engine
    recorded.fail_push.add("ghcr.io/org/eva/gateway")
    result = run_images(host, "--registry", "ghcr.io/org", "--version", "3.0.0", "--push", "--allow-dirty",
                        "auth", "gateway")
    assert result.returncode == 1
    assert "denied: permission_denied" in result.stderr
    assert [p["tag"] for p in recorded.pushes] == ["3.0.0", "3.0.0"]
    assert recorded.pushes[0]["auth"] is None or "robot" not in recorded.pushes[0]["auth"]
    assert result.stderr.strip().endswith("images: failed: gateway:3.0.0")


# ---------------------------------------------------------------------------------------------- versions


@pytest.mark.parametrize(("described", "version"), [
    ("v1.2.3", "1.2.3"),
    ("v1.2.3-4-gabc1234", "1.2.3-4-gabc1234"),
    ("v1.2.3-4-gabc1234-dirty", "1.2.3-4-gabc1234-dirty"),
    ("abc1234", "0.0.0-gabc1234"),
    ("abc1234-dirty", "0.0.0-gabc1234-dirty"),
])
def test_versions_from_git_describe(described: str, version: str) -> None:
    assert images.version_from_describe(described) == version


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@eva.test", "-c", "user.name=ci", *args], cwd=repo, check=True,
                   capture_output=True)


def test_version_from_the_tag_and_a_dirty_tree(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-qm", "one")
    _git(tmp_path, "tag", "v2.0.1")
    assert images.resolve_version(None, tmp_path) == "2.0.1"
    assert not images.is_dirty(tmp_path)
    (tmp_path / "f").write_text("2")
    assert images.resolve_version(None, tmp_path) == "2.0.1-dirty"
    assert images.is_dirty(tmp_path)
    assert images.resolve_version("v9.9.9", tmp_path) == "9.9.9"
    with pytest.raises(images.UsageError, match="not a valid image tag"):
        images.resolve_version("1.2.3+build.5", tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--push", "--version", "1.0.0"], "--push needs --registry"),
    (["--registry", "Not A Registry!", "--version", "1.0.0"], "is not a registry host"),
    (["--version", "1.0.0", "nosuch"], "no deployable nosuch"),
])
def test_bad_usage_exits_2_before_any_engine(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_images(f"unix://{tmp_path / 'absent.sock'}", *args)
    assert result.returncode == 2
    assert message in result.stderr and "no Docker engine" not in result.stderr


def test_the_default_set_leaves_the_simulator_to_dev() -> None:
    rows = deployables.load()
    assert "simulator" not in [r.name for r in images.select([], dev=False, items=rows)]
    assert [r.name for r in images.select([], dev=True, items=rows)] == [r.name for r in rows]
    assert [r.name for r in images.select(["simulator"], dev=False, items=rows)] == ["simulator"]
