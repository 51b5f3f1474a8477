"""What the gateway tells a service about the caller, read from the gRPC metadata of the call in one place.

The gateway sets `x-client-ip` and `x-user-agent` (its view of the caller: for audit entries and throttling only)
and `x-request-id` (which the server interceptor makes the request id of the call, generating one when absent).
"""

from __future__ import annotations

import ipaddress

import grpc

from eva_common.audit import RequestMeta
from eva_common.context import current_request_id

CLIENT_IP_KEY = "x-client-ip"
USER_AGENT_KEY = "x-user-agent"
REQUEST_ID_KEY = "x-request-id"


def metadata_of(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call's text metadata (binary `-bin` values left out); a repeated key keeps its last value."""
    return {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}


def canonical_ip(value: str | None) -> str | None:
    """An IP address in its one canonical text (`2001:DB8::1` -> `2001:db8::1`); anything else stripped, as given."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def request_meta(context: grpc.aio.ServicerContext) -> RequestMeta:
    """The caller's address, user agent (both bounded) and this call's request id."""
    metadata = metadata_of(context)
    return RequestMeta.of(ip=canonical_ip(metadata.get(CLIENT_IP_KEY)), user_agent=metadata.get(USER_AGENT_KEY),
                          request_id=current_request_id())
