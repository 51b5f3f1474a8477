"""The SSRF guard's rules, with a resolver that answers from a table (the one fake of these tests)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from eva_common.errors import InvalidArgument
from n8n_service.ssrf import UrlPolicy, check_url, redacted, why_refused

STRICT = UrlPolicy()
LOCAL = UrlPolicy.of(allow_http=True, allowed_networks=["127.0.0.0/8", "::1/128"])


def resolver(table: dict[str, Sequence[str]]):
    async def resolve(host: str, _port: int) -> Sequence[str]:
        if host not in table:
            raise OSError("NXDOMAIN")
        return table[host]

    return resolve


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "private"),  # reserved (Python files it as private too)
    ("100.64.0.1", "non-public"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"), ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
])
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    refused = why_refused(ipaddress.ip_address(address))
    assert refused is not None and refused.startswith(reason)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


async def test_every_answer_is_checked_and_the_first_is_pinned() -> None:
    table = {"ok.test": ["93.184.216.34", "2606:4700:4700::1111"], "mixed.test": ["93.184.216.34", "10.0.0.1"]}
    target = await check_url("https://ok.test/hook?x=1", STRICT, resolver(table))
    assert target.address == "93.184.216.34" and target.addresses == ("93.184.216.34", "2606:4700:4700::1111")
    assert target.pinned_url == "https://93.184.216.34/hook?x=1"
    assert target.host_header == "ok.test"
    with pytest.raises(InvalidArgument) as raised:
        await check_url("https://mixed.test/hook", STRICT, resolver(table))
    assert raised.value.code == "WEBHOOK_URL_NOT_ALLOWED"


async def test_a_port_and_an_ipv6_address_are_kept_in_the_pin_and_the_host_header() -> None:
    target = await check_url("https://v6.test:8443/h", STRICT, resolver({"v6.test": ["2606:4700:4700::1111"]}))
    assert target.pinned_url == "https://[2606:4700:4700::1111]:8443/h"
    assert target.host_header == "v6.test:8443"


@pytest.mark.parametrize(("url", "code"), [
    ("http://ok.test/h", "WEBHOOK_URL_NOT_ALLOWED"),  # https only
    ("ftp://ok.test/h", "WEBHOOK_URL_INVALID"),
    ("https://user:pw@ok.test/h", "WEBHOOK_URL_INVALID"),
    ("https:///nohost", "WEBHOOK_URL_INVALID"),
    ("not a url", "WEBHOOK_URL_INVALID"),
    ("https://ok.test/h#frag", "WEBHOOK_URL_INVALID"),
    ("https://" + "a" * 2100 + ".test/", "WEBHOOK_URL_INVALID"),
    ("https://missing.test/h", "WEBHOOK_URL_UNRESOLVABLE"),
    ("https://127.0.0.1/h", "WEBHOOK_URL_NOT_ALLOWED"),
    ("https://[::ffff:7f00:1]/h", "WEBHOOK_URL_NOT_ALLOWED"),
])
async def test_malformed_or_forbidden_urls_are_refused(url: str, code: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await check_url(url, STRICT, resolver({"ok.test": ["93.184.216.34"]}))
    assert raised.value.code == code


async def test_the_operator_may_allow_http_and_networks() -> None:
    target = await check_url("http://localhost:5678/webhook/x", LOCAL, resolver({"localhost": ["127.0.0.1", "::1"]}))
    assert target.pinned_url == "http://127.0.0.1:5678/webhook/x" and target.host_header == "localhost:5678"
    mapped = await check_url("http://[::ffff:127.0.0.1]:5678/", LOCAL, resolver({}))
    assert ipaddress.ip_address(mapped.address) == ipaddress.ip_address("::ffff:127.0.0.1")
    with pytest.raises(InvalidArgument):  # only what is allowed
        await check_url("http://10.0.0.1/", LOCAL, resolver({}))


def test_redacted_urls_lose_their_query() -> None:
    assert redacted("https://n8n.hotel.test/webhook/abc?token=s3cret") == "https://n8n.hotel.test/webhook/abc"
