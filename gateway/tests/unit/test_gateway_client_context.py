"""The caller's address and user agent: X-Forwarded-For believed only from trusted proxies, metadata always valid."""

from __future__ import annotations

import pytest
from gateway.client_context import ClientInfo, TrustedProxies, parse_networks
from gateway.settings import Settings
from pydantic import ValidationError

PROXIES = TrustedProxies(parse_networks("10.0.0.0/8, 192.168.1.7, fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # an untrusted peer's header is ignored
        ("10.1.1.1", None, "10.1.1.1"),
        ("10.1.1.1", "198.51.100.1", "198.51.100.1"),
        ("10.1.1.1", "6.6.6.6, 198.51.100.1, 192.168.1.7", "198.51.100.1"),  # first untrusted hop from the right
        ("10.1.1.1", "10.2.2.2, 10.3.3.3", "10.2.2.2"),  # every hop trusted: the leftmost
        ("10.1.1.1", "198.51.100.1:4711", "198.51.100.1"),
        ("10.1.1.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.1.1.1", "not-an-ip, 198.51.100.1", "198.51.100.1"),
        ("10.1.1.1", "198.51.100.1, garbage", "10.1.1.1"),  # garbage from the nearest hop: keep the proxy
        ("fd00::1", "2001:db8::2", "2001:db8::2"),
        (None, "198.51.100.1", "unknown"),
    ],
)
def test_the_client_ip(peer: str | None, forwarded: str | None, client: str) -> None:
    assert PROXIES.client_ip(peer, forwarded) == client


def test_no_trusted_proxies_by_default() -> None:
    assert TrustedProxies().client_ip("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_the_client_of_an_asgi_scope() -> None:
    scope = {"type": "http", "client": ("10.0.0.9", 5555), "headers": [
        (b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"198.51.100.2"),
        (b"user-agent", "Mozilla/5.0 (caf\u00e9)\r\n".encode() + b"\x00" + b"x" * 400)]}
    client = PROXIES.client_of(scope)
    assert client.ip == "198.51.100.2"
    assert client.user_agent.startswith("Mozilla/5.0 (caf") and len(client.user_agent) == 256
    assert all(" " <= char <= "~" for char in client.user_agent)


def test_metadata_names() -> None:
    assert ClientInfo("198.51.100.1", "UA/1").metadata() == (("x-client-ip", "198.51.100.1"),
                                                             ("x-user-agent", "UA/1"))
    assert ClientInfo("198.51.100.1", "").metadata() == (("x-client-ip", "198.51.100.1"),)


def test_settings_refuse_a_malformed_proxy_list() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(service_client_secret="unit-test-client-secret", redis_url="redis://redis:6379/0",
                 trusted_proxies="10.0.0.0/8, proxy.local")
    assert caught.value.errors()[0]["loc"] == ("trusted_proxies",)
    settings = Settings(service_client_secret="unit-test-client-secret", redis_url="redis://redis:6379/0",
                 trusted_proxies="10.0.0.0/8,::1")
    assert [str(network) for network in settings.trusted_proxy_networks] == ["10.0.0.0/8", "::1/128"]
