"""The Docker Engine as scripts/images.py uses it, through the Docker SDK for Python (`docker`).

* `connect()`: a client for the engine the Docker CLI would use (DOCKER_HOST, else the current docker context,
  else the default socket), or `EngineUnavailable` with one line saying what was tried and what to do.
* `context_archive()`: the build context (a directory) as a tar that honours its .dockerignore, made once and sent
  with every build.
* `build()`: POST /build with BuildKit (`version=2`: deploy/Dockerfile uses cache and bind mounts, which the classic
  builder refuses), streaming the build's progress as lines; returns the image id.
* `push()`: POST /images/<name>/push of one tag, with the credentials of the environment or the docker config.

The engine's failures (a failed RUN, a refused push) are `EngineError`s carrying the engine's message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests
from docker.constants import DEFAULT_UNIX_SOCKET
from docker.context import ContextAPI
from docker.utils import kwargs_from_env
from docker.utils.build import tar
from docker.utils.json_stream import json_stream

BUILDKIT_TRACE = "moby.buildkit.trace"
IMAGE_ID = "moby.image.id"
CONNECT_TIMEOUT_S = 10
Log = Callable[[str], None]


class EngineUnavailable(RuntimeError):
    """No Docker engine answers where the client looked."""


class EngineError(RuntimeError):
    """The engine refused or failed a build or a push."""


def engine_address(environment: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Where the Docker SDK will look for the engine, and why there: (address, how it was chosen)."""
    env = os.environ if environment is None else environment
    host = kwargs_from_env(environment=dict(env)).get("base_url")
    if host:
        return str(host), "DOCKER_HOST"
    try:
        context = ContextAPI.kwargs_from_context(environment=dict(env)).get("base_url")
    except docker.errors.DockerException:
        context = None
    default = DEFAULT_UNIX_SOCKET.replace("http+unix://", "unix://")
    if context and str(context).replace("http+unix://", "unix://") != default:
        return str(context), f"the docker context {env.get('DOCKER_CONTEXT') or 'in ~/.docker/config.json'}"
    return default, "the default socket; DOCKER_HOST is not set"


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection failure, on one line (e.g. 'No such file or directory')."""
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return " ".join(str(text).split())[:200]


def connect(timeout: int = CONNECT_TIMEOUT_S) -> docker.DockerClient:
    """A client for the engine, checked with a ping; `EngineUnavailable` when none answers."""
    address, how = engine_address()
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as error:
        raise EngineUnavailable(
            f"no Docker engine answers at {address} ({how}): {_reason(error)}. Start Docker, or set DOCKER_HOST to "
            "a running engine (e.g. unix:///run/user/1000/docker.sock, tcp://host:2376 with DOCKER_TLS_VERIFY=1), "
            "and run again"
        ) from None
    client.api.timeout = None  # builds and pushes take as long as they take
    return client


def dockerignore_patterns(root: Path) -> list[str]:
    """The patterns of root/.dockerignore (blank lines and comments dropped), as the engine reads them."""
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_archive(root: Path, dockerfile: str) -> IO[bytes]:
    """The build context as a gzipped tar in a temporary file, at offset 0. The Dockerfile is always in it.

    Gzipped because BuildKit, given a context in the request body, tells an archive from a lone Dockerfile by its
    first KiB: the gzip magic is recognised, while a plain tar that starts with a PAX header (Python writes them)
    does not parse in 1 KiB and would be read as the Dockerfile itself."""
    archive: IO[bytes] = tar(str(root), exclude=dockerignore_patterns(root), dockerfile=(dockerfile, None), gzip=True)
    return archive


# ------------------------------------------------------------------------------------------ BuildKit progress
# The engine streams BuildKit's progress as {"id": "moby.buildkit.trace", "aux": <base64 protobuf>}: a
# moby.buildkit.v1.StatusResponse (vertexes = 1, logs = 3; Vertex: digest = 1, name = 3, cached = 4, started = 5,
# error = 7; VertexLog: vertex = 1, msg = 4). The few fields shown are read with a minimal wire-format reader.


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def proto_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of one protobuf message: ints for varints, bytes for the rest."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ValueError("truncated field")
            yield number, data[at : at + size]
            at += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            yield number, data[at : at + width]
            at += width
        else:
            raise ValueError(f"unsupported wire type {wire}")


@dataclass
class BuildProgress:
    """Turns the engine's build messages into log lines: each step once when it starts, its output, errors."""

    log: Log
    seen: set[bytes] = field(default_factory=set)
    image_id: str | None = None

    def trace(self, payload: bytes) -> None:
        for number, value in proto_fields(payload):
            if number == 1 and isinstance(value, bytes):
                self._vertex(dict(proto_fields(value)))
            elif number == 3 and isinstance(value, bytes):
                self._log(dict(proto_fields(value)))

    def _vertex(self, vertex: Mapping[int, int | bytes]) -> None:
        digest, name = vertex.get(1, b""), vertex.get(3, b"")
        if not isinstance(digest, bytes) or not isinstance(name, bytes):
            return
        error = vertex.get(7)
        if isinstance(error, bytes) and error:
            self.log(f"{name.decode(errors='replace')}: ERROR {error.decode(errors='replace')}")
        if digest in self.seen or not (vertex.get(5) or vertex.get(4)):
            return
        self.seen.add(digest)
        self.log(name.decode(errors="replace") + (" (cached)" if vertex.get(4) else ""))

    def _log(self, entry: Mapping[int, int | bytes]) -> None:
        message = entry.get(4)
        if isinstance(message, bytes):
            for line in message.decode(errors="replace").splitlines():
                if line.strip():
                    self.log(f"  {line.rstrip()}")

    def message(self, message: Mapping[str, Any]) -> None:
        """One JSON message of the /build stream (BuildKit's, or the classic builder's `stream` lines)."""
        if "error" in message or "errorDetail" in message:
            detail = message.get("errorDetail") or {}
            raise EngineError(str(message.get("error") or detail.get("message") or message))
        aux = message.get("aux")
        if message.get("id") == BUILDKIT_TRACE and isinstance(aux, str):
            try:
                self.trace(base64.b64decode(aux))
            except (binascii.Error, ValueError):
                self.log("(an unreadable progress message)")
        elif isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
            self.image_id = str(aux["ID"])
        elif isinstance(message.get("stream"), str):
            for line in str(message["stream"]).splitlines():
                if line.strip():
                    self.log(line.rstrip())


def _url(client: docker.DockerClient, path: str) -> str:
    return f"{client.api.base_url}/v{client.api.api_version}{path}"


def build(client: docker.DockerClient, context: IO[bytes], *, dockerfile: str, tags: Sequence[str],
          buildargs: Mapping[str, str], labels: Mapping[str, str], log: Log) -> str:
    """Build one image from the context tar with BuildKit; its id. Every tag in `tags` names it."""
    context.seek(0)
    params: dict[str, Any] = {
        "dockerfile": dockerfile, "t": list(tags), "buildargs": json.dumps(dict(buildargs)),
        "labels": json.dumps(dict(labels)), "rm": "1", "forcerm": "1", "version": "2",
    }
    try:
        response = client.api.post(_url(client, "/build"), params=params, data=context, stream=True,
                                   headers={"Content-Type": "application/x-tar"})
    except requests.exceptions.RequestException as error:
        raise EngineError(f"the engine dropped the build: {_reason(error)}") from None
    if response.status_code >= 400:
        raise EngineError(f"the engine refused the build ({response.status_code}): {response.text.strip()[:500]}")
    progress = BuildProgress(log)
    for message in json_stream(response.iter_content(chunk_size=None, decode_unicode=True)):
        if isinstance(message, Mapping):
            progress.message(message)
    if progress.image_id is None:
        raise EngineError("the build ended without an image id")
    return progress.image_id


def registry_auth(environment: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """Explicit push credentials from EVA_REGISTRY_USERNAME / EVA_REGISTRY_PASSWORD; None: the docker config's."""
    env = os.environ if environment is None else environment
    username, password = env.get("EVA_REGISTRY_USERNAME"), env.get("EVA_REGISTRY_PASSWORD")
    if username and password:
        return {"username": username, "password": password}
    return None


def push(client: docker.DockerClient, repository: str, tag: str, *, log: Log,
         auth: Mapping[str, str] | None = None) -> str | None:
    """Push repository:tag; the digest the registry gave it (when the engine says)."""
    digest: str | None = None
    try:
        stream = client.api.push(repository, tag=tag, stream=True, decode=True,
                                 auth_config=dict(auth) if auth else None)
        for message in stream:
            if "error" in message or "errorDetail" in message:
                detail = message.get("errorDetail") or {}
                raise EngineError(str(message.get("error") or detail.get("message")))
            aux = message.get("aux")
            if isinstance(aux, Mapping) and aux.get("Digest"):
                digest = str(aux["Digest"])
            status = str(message.get("status") or "")
            if status.startswith(("Pushed", "Layer already exists", "Mounted from")):
                log(f"  {message.get('id', '')}: {status}")
    except docker.errors.APIError as error:
        raise EngineError(f"the engine refused the push of {repository}:{tag}: {error.explanation or error}") from None
    except requests.exceptions.RequestException as error:
        raise EngineError(f"the push of {repository}:{tag} failed: {_reason(error)}") from None
    return digest
