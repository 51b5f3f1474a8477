"""HTTPS receivers: the attempt connects to the checked (pinned) address and still sends the subscription's host name
as the TLS server name and verifies the certificate against that name, so pinning neither weakens TLS nor lets a
certificate for another name pass. A real TLS server on loopback, with a test CA the service is told to trust."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from n8n_service.signing import verify

pytestmark = pytest.mark.integration


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificates(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A test CA (its PEM) and a server certificate for `host` signed by it (cert and key PEMs)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Eva test CA")).issuer_name(_name("Eva test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class TlsReceiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, str | None]] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        server_name = getattr(ssl_object, "server_hostname", None) if ssl_object is not None else None
        self.requests.append((dict(request.headers), await request.read(), server_name))
        return web.Response(status=204)


@pytest_asyncio.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[TlsReceiver, Path, list[str]]]:
    """An HTTPS server on loopback with a certificate for hooks.hotel.test (only), and the CA that signed it."""
    ca_path, cert_path, key_path = _certificates(tmp_path, "hooks.hotel.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    names: list[str] = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)  # what the client asked for
    state = TlsReceiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    assert site._server is not None
    state.port = site._server.sockets[0].getsockname()[1]
    try:
        yield state, ca_path, names
    finally:
        await runner.cleanup()


async def test_https_to_a_pinned_address_sends_the_host_name_and_verifies_the_certificate(
    make_app, kit, app_db, tls_receiver,
) -> None:
    server, ca_path, names = tls_receiver
    app = make_app(webhook_allow_http=False, webhook_ca_bundle=str(ca_path),
                   resolver=kit.fixed_resolver({"hooks.hotel.test": ["127.0.0.1"]}))
    tenant = kit.new_tenant()
    created = await app.webhooks.create_subscription(
        actor=kit.admin(tenant), url=f"https://hooks.hotel.test:{server.port}/n8n", events=["message.received"])
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def delivered():
        rows = await kit.rows(app_db, tenant, "SELECT * FROM webhook_deliveries")
        return rows[0] if rows[0]["state"] == "delivered" else None

    row = await kit.pump(app, delivered)
    assert row["last_status_code"] == 204
    [(headers, body, _)] = server.requests
    assert headers["Host"] == f"hooks.hotel.test:{server.port}"
    assert names == ["hooks.hotel.test"]  # the TLS server name is the host's, not the pinned address
    assert verify(created.secret, body, headers["X-Eva-Signature"], now=int(time.time()))


async def test_a_certificate_for_another_name_is_refused(make_app, kit, app_db, tls_receiver) -> None:
    server, ca_path, names = tls_receiver
    # the attacker's name resolves to the same server, whose certificate names hooks.hotel.test only
    app = make_app(webhook_allow_http=False, webhook_ca_bundle=str(ca_path),
                   resolver=kit.fixed_resolver({"evil.hotel.test": ["127.0.0.1"]}))
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(
        actor=kit.admin(tenant), url=f"https://evil.hotel.test:{server.port}/n8n", events=["message.received"])
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def failed():
        rows = await kit.rows(app_db, tenant, "SELECT * FROM webhook_deliveries")
        return rows[0] if rows[0]["attempts"] >= 1 else None

    row = await kit.pump(app, failed)
    assert row["state"] == "pending" and row["last_status_code"] is None
    assert row["last_error"] == "connection failed (ConnectError)"
    assert server.requests == []
    assert names == ["evil.hotel.test"]
