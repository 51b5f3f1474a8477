"""The server-side request forgery guard of outbound webhooks: which URLs Eva may call, and at which address.

A subscription URL must be `https` (`http` only when the operator allows it), carry no credentials, and its host
must resolve only to public addresses: private, loopback, link-local, multicast, reserved, unspecified, shared
(CGNAT) and any other non-global address is refused — also written as an IPv4-mapped (or -compatible) IPv6
address — unless it lies in a network the operator allows (`EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS`; the local stack
allows loopback so a local n8n works).

The check runs when a subscription is created or changed and again before every attempt: the host is resolved,
every answer is checked (one bad answer refuses the URL), and the attempt connects to a checked address (`Target`
pins it; the request carries the original Host header and TLS server name), so a DNS answer that changes between the
check and the connection (rebinding) cannot lead anywhere the check did not allow. Redirects are never followed
(the delivery worker records a 3xx as a failure).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from eva_common.errors import InvalidArgument

URL_NOT_ALLOWED = "WEBHOOK_URL_NOT_ALLOWED"
URL_INVALID = "WEBHOOK_URL_INVALID"
URL_UNRESOLVABLE = "WEBHOOK_URL_UNRESOLVABLE"
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""(host, port) -> the addresses the host resolves to (raises OSError when it does not resolve)."""


class UrlNotAllowed(InvalidArgument):
    default_code = URL_NOT_ALLOWED


class UrlUnresolvable(InvalidArgument):
    default_code = URL_UNRESOLVABLE


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for `host` (every family), in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, *, allow_http: bool, allowed_networks: Sequence[str]) -> UrlPolicy:
        return cls(allow_http=allow_http,
                   allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks))


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (`address`, one the check allowed) and what to tell the server (`host_header`,
    `server_name` for TLS), and the URL to request with the address pinned in place of the host."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address as its host: the connection goes there and nowhere else."""
        return str(httpx.URL(self.url).copy_with(host=self.address, port=self.port))


def why_refused(address: IPAddress) -> str | None:
    """Why an address may not be called without the operator's leave (None: it is a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or _ipv4_compatible(address)
        if embedded is not None:
            reason = why_refused(embedded)
            return f"IPv4-mapped {reason}" if reason else None
    for reason, refused in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if refused:
            return f"{reason} address"
    if not address.is_global:
        return "non-public address"
    return None


def _ipv4_compatible(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address of a deprecated IPv4-compatible IPv6 address (`::a.b.c.d`), whose routing some stacks still
    do; `::` and `::1` are not."""
    value = int(address)
    if value >> 32 == 0 and value > 1:
        return ipaddress.IPv4Address(value)
    return None


def _operator_allows(address: IPAddress, policy: UrlPolicy) -> bool:
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in policy.allowed_networks
               if candidate.version == network.version)


def check_address(text: str, policy: UrlPolicy) -> IPAddress:
    """The address, when it may be called; UrlNotAllowed otherwise."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # a zone id (fe80::1%eth0) names a link-local address
    except ValueError:
        raise UrlNotAllowed("the webhook host resolved to something that is not an address") from None
    reason = why_refused(address)
    if reason is not None and not _operator_allows(address, policy):
        raise UrlNotAllowed(f"the webhook URL reaches a {reason} ({address})")
    return address


def parse_url(url: str, policy: UrlPolicy) -> tuple[httpx.URL, str, int]:
    """The URL, its host (IDNA, lower case, no trailing dot) and port, when its form is acceptable."""
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_LENGTH:
        raise InvalidArgument("the webhook URL must be an absolute https URL", code=URL_INVALID)
    try:
        parsed = httpx.URL(url.strip())
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        port = parsed.port
    except (httpx.InvalidURL, UnicodeError, ValueError, TypeError):
        raise InvalidArgument("the webhook URL is not a valid URL", code=URL_INVALID) from None
    if parsed.scheme not in ("https", "http") or not host:
        raise InvalidArgument("the webhook URL must be an absolute https URL", code=URL_INVALID)
    if parsed.scheme == "http" and not policy.allow_http:
        raise UrlNotAllowed("the webhook URL must use https")
    if parsed.userinfo:
        raise InvalidArgument("the webhook URL must not carry credentials", code=URL_INVALID)
    if parsed.fragment:
        raise InvalidArgument("the webhook URL must not have a fragment", code=URL_INVALID)
    return parsed, host, port or (443 if parsed.scheme == "https" else 80)


async def check_url(url: str, policy: UrlPolicy, resolver: Resolver) -> Target:
    """The URL checked and pinned to one of its host's addresses, every one of which was checked."""
    parsed, host, port = parse_url(url, policy)
    literal = _literal_address(host)
    if literal is not None:
        answers: Sequence[str] = [literal]
    else:
        try:
            answers = await resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise UrlUnresolvable(f"the webhook host does not resolve ({type(error).__name__})") from None
        if not answers:
            raise UrlUnresolvable("the webhook host does not resolve")
    checked = [check_address(answer, policy) for answer in answers]
    return Target(url=str(parsed), scheme=parsed.scheme, host=host, port=port, address=str(checked[0]),
                  addresses=tuple(str(address) for address in checked))


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def redacted(url: str) -> str:
    """The URL without its query (which may hold a token), for events and audit entries."""
    try:
        return str(httpx.URL(url).copy_with(query=None, fragment=None))
    except (httpx.InvalidURL, ValueError, TypeError):
        return ""
