"""The compose edge for real: the pinned Caddy runs deploy/compose/edge/Caddyfile (the same file, set from the
environment only) in front of local stand-ins for the gateway (two replicas), webhook-ingest and n8n-integration,
and gets its certificate over ACME from Pebble, Let's Encrypt's test CA, which validates the challenge against the
edge's own ports (scripts/acme_server.py). Pebble's certificates last 45 s here, so the edge renews while the
tests watch.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import acme_server
import edge_server
import httpx
import processes
import pytest
import uvicorn
from cryptography import x509
from gateway.middleware import HSTS, MEDIA_UPLOAD_BODY_BYTES
from gateway.settings import Settings as GatewaySettings
from webhook_ingest_service.settings import MAX_DELIVERY_BYTES
from websockets.sync.client import connect

DOMAIN = "eva.example.com"
GATEWAY_HOST = "gateway.eva.test"  # the stand-in DNS answers it with both gateway replicas
GATEWAY_REPLICAS = ("127.0.0.1", "127.0.0.2")
VALIDITY_S = 45
RENEW_WITHIN_S = 60.0
MIB = 1024 * 1024
# The edge refuses exactly what the services behind it refuse: their own limits, read from their code.
WEBHOOK_LIMIT = MAX_DELIVERY_BYTES  # webhook-ingest's cap on Meta's deliveries (3 MiB)
API_LIMIT = GatewaySettings.model_fields["max_body_bytes"].default  # the gateway's EVA_MAX_BODY_BYTES default
MEDIA_UPLOAD_LIMIT = MEDIA_UPLOAD_BODY_BYTES  # POST /api/media: 100 MiB + the multipart envelope


# ------------------------------------------------------------------------------------------------ upstreams


def upstream_app(name: str) -> Any:
    """An ASGI app that answers every HTTP request with what it saw, and echoes WebSocket messages, naming itself."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            while (message := await receive())["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": f"{name}:{message.get('text')}"})
            return
        if scope["type"] != "http":
            return
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        body = json.dumps({"upstream": name, "path": scope["path"], "body_bytes": size, "headers": headers}).encode()
        # the headers the gateway sets on its own answers, some with other values than the edge's
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"server", b"eva-stand-in"),
                                (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]})
        await send({"type": "http.response.body", "body": body})

    return app


@contextlib.contextmanager
def serving(name: str, host: str, port: int) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(upstream_app(name), host=host, port=port, lifespan="off",
                                           log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, name=f"upstream-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, f"the {name} stand-in did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def port_free_on_every(hosts: tuple[str, ...]) -> int:
    for _ in range(50):
        port = processes.free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError(f"no port free on every one of {hosts}")


# ------------------------------------------------------------------------------------------------ the edge


@dataclass(frozen=True, slots=True)
class Edge:
    env: edge_server.EdgeEnv
    root_pem: str  # the root Pebble issues from (new at each start of Pebble)
    log: Path

    def context(self) -> ssl.SSLContext:
        """Trusts only Pebble's issuing root."""
        return ssl.create_default_context(cadata=self.root_pem)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.env.https_port}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request over TLS to the edge as `DOMAIN` (SNI and Host), verified against Pebble's root, no cookie
        kept from earlier requests."""
        headers = {"Host": DOMAIN, **kwargs.pop("headers", {})}
        with httpx.Client(verify=self.context(), timeout=60, cookies=kwargs.pop("cookies", None)) as client:
            return client.request(method, self.url(path), headers=headers, extensions={"sni_hostname": DOMAIN},
                                  **kwargs)

    def handshake(self) -> tuple[x509.Certificate, str | None]:
        """The certificate the edge serves for DOMAIN (verified) and the protocol it picked among h2 and HTTP/1.1."""
        context = self.context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", self.env.https_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der, protocol = tls.getpeercert(binary_form=True), tls.selected_alpn_protocol()
        assert der is not None
        return x509.load_der_x509_certificate(der), protocol

    def served_certificate(self) -> x509.Certificate:
        return self.handshake()[0]


def wait_for_certificate(edge: Edge, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            edge.served_certificate()
            return
        except (ssl.SSLError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(f"no certificate from Pebble within {timeout:.0f} s; see {edge.log}") from None
            time.sleep(0.5)


@pytest.fixture(scope="module")
def caddy() -> Path:
    return edge_server.install(log=False)


@pytest.fixture(scope="module")
def edge(caddy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    folder = tmp_path_factory.mktemp("edge")
    binaries = acme_server.install(log=False)
    http_port, https_port = processes.free_port(""), processes.free_port("", udp_too=True)
    ingest_port, n8n_port, grafana_port = processes.free_port(), processes.free_port(), processes.free_port()
    gateway_port = port_free_on_every(GATEWAY_REPLICAS)
    with contextlib.ExitStack() as stack:
        stack.enter_context(serving("webhook-ingest", "127.0.0.1", ingest_port))
        stack.enter_context(serving("n8n-integration", "127.0.0.1", n8n_port))
        stack.enter_context(serving("grafana", "127.0.0.1", grafana_port))
        for index, host in enumerate(GATEWAY_REPLICAS):
            stack.enter_context(serving(f"gateway-{index}", host, gateway_port))
        acme = stack.enter_context(acme_server.running(binaries, folder / "acme", http_port=http_port,
                                                       tls_port=https_port, validity_s=VALIDITY_S))
        acme.add_a(GATEWAY_HOST, GATEWAY_REPLICAS)
        env = edge_server.EdgeEnv(
            domain=DOMAIN, acme_email="ops@example.com", acme_ca=acme.directory_url, http_port=http_port,
            https_port=https_port, admin_port=processes.free_port(), health_port=processes.free_port(),
            ingest=f"127.0.0.1:{ingest_port}", n8n=f"127.0.0.1:{n8n_port}", grafana=f"127.0.0.1:{grafana_port}",
            gateway_host=GATEWAY_HOST,
            gateway_port=gateway_port, resolver=acme.dns_address, renew_interval="2s",
        )
        # SSL_CERT_FILE: Caddy's ACME client trusts Pebble's own HTTPS (the test CA in Pebble's source).
        log = stack.enter_context(edge_server.running(caddy, folder / "edge", env,
                                                      extra_env={"SSL_CERT_FILE": str(acme.ca_bundle)}))
        running = Edge(env=env, root_pem=acme.root_pem(), log=log)
        wait_for_certificate(running)
        yield running


# ------------------------------------------------------------------------------------------------ the file


def test_the_caddyfile_is_valid_and_formatted(caddy: Path, tmp_path: Path) -> None:
    assert edge_server.validate(caddy, edge_server.EXAMPLE_ENV) == []
    broken = tmp_path / "Caddyfile"
    shutil.copy(edge_server.CADDYFILE, broken)
    broken.write_text(broken.read_text().replace("max_size 3MiB", "max_size three-megabytes"))
    problems = edge_server.validate(caddy, edge_server.EXAMPLE_ENV, broken)
    assert problems and "caddy validate" in problems[0], problems


def test_the_caddyfile_needs_the_domain(caddy: Path) -> None:
    problems = edge_server.validate(caddy, {"EVA_ACME_EMAIL": "ops@example.com"})
    assert problems and "caddy validate" in problems[0], problems


# ------------------------------------------------------------------------------------------------ TLS


def test_the_certificate_comes_from_pebble_over_acme(edge: Edge) -> None:
    certificate = edge.served_certificate()  # verified against Pebble's issuing root, for DOMAIN
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [DOMAIN]
    issuer = certificate.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert str(issuer).startswith("Pebble Intermediate CA")
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert abs(lifetime.total_seconds() - VALIDITY_S) <= 2  # the validity this Pebble was configured with
    with pytest.raises(ssl.SSLCertVerificationError), \
            socket.create_connection(("127.0.0.1", edge.env.https_port), timeout=10) as raw, \
            ssl.create_default_context().wrap_socket(raw, server_hostname=DOMAIN):
        pass  # no public CA vouches for it: it is Pebble's


def test_https_speaks_http2(edge: Edge) -> None:
    assert edge.handshake()[1] == "h2"


def test_plain_http_redirects_to_https(edge: Edge) -> None:
    answer = httpx.get(f"http://127.0.0.1:{edge.env.http_port}/api/conversations?status=open",
                       headers={"Host": DOMAIN}, follow_redirects=False)
    assert answer.status_code == 308
    location = httpx.URL(answer.headers["location"])  # (the port is 443 in production; Caddy names no other)
    assert (location.scheme, location.host) == ("https", DOMAIN)
    assert location.raw_path == b"/api/conversations?status=open"


# ------------------------------------------------------------------------------------------------ routing


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/webhooks/whatsapp", "webhook-ingest"),
        ("/n8n/v1/messages", "n8n-integration"),
        ("/n8n/docs", "n8n-integration"),
        ("/grafana/d/eva/eva", "grafana"),
        ("/api/conversations", "gateway-"),
        ("/auth/login", "gateway-"),
        ("/socket.io/?EIO=4&transport=polling", "gateway-"),
        ("/webhooksx", "gateway-"),
    ],
)
def test_each_path_reaches_its_upstream(edge: Edge, path: str, upstream: str) -> None:
    answer = edge.request("POST" if "webhooks" in path else "GET", path)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["upstream"].startswith(upstream)
    assert seen["path"] == path.partition("?")[0]


def test_upstreams_get_the_client_address_scheme_and_host_from_the_edge_only(edge: Edge) -> None:
    answer = edge.request("GET", "/api/me", headers={"X-Forwarded-For": "203.0.113.9",
                                                     "X-Forwarded-Proto": "http"})
    headers = answer.json()["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the client's own header is dropped, not believed
    assert headers["x-forwarded-proto"] == "https"
    assert headers["host"] == DOMAIN
    assert headers["x-forwarded-host"] == DOMAIN


def test_security_headers_replace_the_upstreams(edge: Edge) -> None:
    answer = edge.request("GET", "/api/me")
    assert answer.headers["strict-transport-security"] == HSTS  # the gateway's own value
    assert answer.headers.get_list("x-content-type-options") == ["nosniff"]  # set once, not twice
    assert answer.headers.get_list("referrer-policy") == ["no-referrer"]  # the edge's value wins
    assert "server" not in answer.headers  # the stand-in's own Server header is removed


def test_a_websocket_upgrade_reaches_the_gateway(edge: Edge) -> None:
    raw = socket.create_connection(("127.0.0.1", edge.env.https_port), timeout=10)
    with connect(f"wss://{DOMAIN}:{edge.env.https_port}/socket.io/?EIO=4&transport=websocket", sock=raw,
                 ssl=edge.context(), server_hostname=DOMAIN, open_timeout=10) as websocket:
        websocket.send("2probe")
        echoed = websocket.recv(timeout=10)
        assert isinstance(echoed, str) and echoed.startswith("gateway-") and echoed.endswith(":2probe")
        websocket.send("again")
        assert websocket.recv(timeout=10) == echoed.replace("2probe", "again")  # the same replica, same socket


def test_long_polling_sticks_to_one_gateway_replica(edge: Edge) -> None:
    path = "/socket.io/?EIO=4&transport=polling"
    first = edge.request("GET", path)
    replica, cookie = first.json()["upstream"], first.cookies.get("eva_lb")
    assert cookie, first.headers
    for _ in range(10):
        again = edge.request("GET", path, cookies={"eva_lb": cookie})
        assert again.json()["upstream"] == replica
    without = {edge.request("GET", path).json()["upstream"] for _ in range(30)}
    assert without == {"gateway-0", "gateway-1"}  # both replicas are in rotation (30 random picks)


# ------------------------------------------------------------------------------------------------ body limits


@pytest.mark.parametrize(
    ("path", "limit", "upstream"),
    [
        ("/webhooks/whatsapp", WEBHOOK_LIMIT, "webhook-ingest"),
        ("/n8n/v1/messages", API_LIMIT, "n8n-integration"),
        ("/api/messages", API_LIMIT, "gateway-"),
        ("/api/media", MEDIA_UPLOAD_LIMIT, "gateway-"),
    ],
)
def test_bodies_up_to_the_route_limit_pass_and_bigger_ones_get_413(edge: Edge, path: str, limit: int,
                                                                    upstream: str) -> None:
    passed = edge.request("POST", path, content=b"x" * limit)
    assert passed.status_code == 200, passed.text
    assert passed.json()["upstream"].startswith(upstream)
    assert passed.json()["body_bytes"] == limit
    refused = edge.request("POST", path, content=b"x" * (limit + 1))
    assert refused.status_code == 413
    started = time.monotonic()
    after = edge.request("POST", path, content=b"{}")  # a refused body is the client's fault, not the upstream's
    assert after.status_code == 200 and time.monotonic() - started < 2


def test_a_streamed_webhook_over_3_mib_gets_413(edge: Edge) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, the limit applies while reading
        for _ in range(4):
            yield b"x" * MIB

    refused = edge.request("POST", "/webhooks/whatsapp", content=chunks())
    assert refused.status_code == 413
    assert edge.request("POST", "/webhooks/whatsapp", content=b"{}").status_code == 200


def test_media_uploads_get_more_than_the_api(edge: Edge) -> None:
    body = b"x" * (2 * MIB)
    assert edge.request("POST", "/api/media", content=body).status_code == 200
    assert edge.request("POST", "/api/messages", content=body).status_code == 413


# ------------------------------------------------------------------------------------------------ logs, renewal


def test_access_log_is_json_with_each_request(edge: Edge) -> None:
    edge.request("POST", "/webhooks/whatsapp?marker=access-log", content=b"{}")
    deadline = time.monotonic() + 10
    while True:
        entries = [json.loads(line) for line in edge.log.read_text().splitlines() if line.startswith("{")]
        access = [e for e in entries if str(e.get("logger", "")).startswith("http.log.access")]
        if any(e["request"]["uri"] == "/webhooks/whatsapp?marker=access-log" and e["status"] == 200 for e in access):
            break
        assert time.monotonic() < deadline, "no JSON access-log line for the request"
        time.sleep(0.2)


def test_the_certificate_is_renewed_before_it_expires(edge: Edge) -> None:
    before = edge.served_certificate()
    deadline = time.monotonic() + RENEW_WITHIN_S
    while (after := edge.served_certificate()).serial_number == before.serial_number:
        assert time.monotonic() < deadline, f"not renewed within {RENEW_WITHIN_S:.0f} s; see {edge.log}"
        time.sleep(1)
    assert after.not_valid_after_utc > before.not_valid_after_utc
    assert after.not_valid_before_utc <= before.not_valid_after_utc  # renewed while the old one was still valid
    assert edge.request("GET", "/api/me").status_code == 200  # served with the new certificate
