"""Who is on the other end of a request, as the gateway sees it: the client's IP address (the socket peer, or what
trusted reverse proxies say in X-Forwarded-For) and its User-Agent.

They travel to the services as `x-client-ip` and `x-user-agent` gRPC metadata, for audit entries and throttling
only; a service never trusts them for anything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from eva_common.grpc.metadata import CLIENT_IP_KEY, USER_AGENT_KEY
from starlette.datastructures import Headers
from starlette.types import Scope

Network = IPv4Network | IPv6Network

MAX_USER_AGENT_LENGTH = 256
UNKNOWN_IP = "unknown"


def parse_networks(value: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.7` → networks; ValueError on an entry that is neither an address nor a network."""
    return tuple(ip_network(entry.strip(), strict=False) for entry in value.split(",") if entry.strip())


def _address(value: str) -> str | None:
    """A normalised IP address from an X-Forwarded-For hop (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`), else None."""
    hop = value.strip().strip('"')
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ip_address(hop))
    except ValueError:
        return None


def _printable(value: str, limit: int) -> str:
    """gRPC metadata values must be printable ASCII: everything else is dropped, and the result is bounded."""
    return "".join(char for char in value if " " <= char <= "~").strip()[:limit]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str
    user_agent: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        entries = [(CLIENT_IP_KEY, self.ip)]
        if self.user_agent:
            entries.append((USER_AGENT_KEY, self.user_agent))
        return tuple(entries)


class TrustedProxies:
    """Believes X-Forwarded-For only as far as it was written by trusted proxies (none by default)."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self._networks = tuple(networks)

    def trusts(self, address: str) -> bool:
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str:
        """The socket peer, unless it is a trusted proxy: then X-Forwarded-For is read from the right, and the
        first hop that is not a trusted proxy is the client (the leftmost one if every hop is trusted)."""
        if not peer:
            return UNKNOWN_IP
        current = _address(peer) or _printable(peer, 64) or UNKNOWN_IP
        if not forwarded_for or not self.trusts(current):
            return current
        for hop in reversed(forwarded_for.split(",")):
            address = _address(hop)
            if address is None:  # garbage: keep what the last trusted hop told us
                return current
            current = address
            if not self.trusts(address):
                return address
        return current

    def client_of(self, scope: Scope) -> ClientInfo:
        """The client of an ASGI HTTP or websocket connection."""
        headers = Headers(scope=scope)
        client = scope.get("client")
        forwarded = ",".join(headers.getlist("x-forwarded-for")) or None
        return ClientInfo(
            ip=self.client_ip(client[0] if client else None, forwarded),
            user_agent=_printable(headers.get("user-agent", ""), MAX_USER_AGENT_LENGTH),
        )


client_var: ContextVar[ClientInfo | None] = ContextVar("gateway_client", default=None)


def current_client() -> ClientInfo | None:
    return client_var.get()
