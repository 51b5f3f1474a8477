"""The Graph API's send endpoints (reference §5): `POST /{version}/{phone-number-id}/messages` for every message,
read receipt and typing indicator, and `/marketing_messages` for MARKETING templates (reference §12).

A call that got no answer (a timeout, a connection lost after the request left) is *uncertain*: Meta may have sent
the message. It raises `UncertainSend`, never a GraphError, so the sender looks for the send's statuses before it
sends again. A connection that could not be opened is certain: nothing left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from messaging_service.graph_errors import GraphError, graph_answer
from messaging_service.metrics import SEND_LATENCY


class UncertainSend(Exception):
    """The request may have reached Meta, but no answer came back."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """Meta accepted the message: its wamid, and for templates the pacing status (accepted, held_for_…, paused)."""

    wamid: str
    wa_id: str | None
    message_status: str | None


class GraphSendClient:
    def __init__(self, *, http: httpx.AsyncClient, graph_url: str, api_version: str, timeout: float) -> None:
        self._http = http
        self._graph_url = graph_url.rstrip("/")
        self._version = api_version
        self._timeout = timeout

    async def _post(self, path: str, *, access_token: str, body: Mapping[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            response = await self._http.post(
                f"{self._graph_url}/{self._version}/{path}", json=dict(body), timeout=self._timeout,
                headers={"Authorization": f"Bearer {access_token}"})
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise GraphError(code=None, subcode=None, message=f"could not reach the Graph API: {error!r}",
                             details=None, http_status=503) from error
        except httpx.TransportError as error:  # the request may have left: a read timeout, a dropped connection
            raise UncertainSend(f"no answer from the Graph API: {error!r}") from error
        finally:
            SEND_LATENCY.observe(time.perf_counter() - started)
        return graph_answer(response)

    async def send(
        self, *, phone_number_id: str, access_token: str, body: Mapping[str, Any], marketing: bool = False
    ) -> Accepted:
        endpoint = "marketing_messages" if marketing else "messages"
        payload = await self._post(f"{phone_number_id}/{endpoint}", access_token=access_token, body=body)
        messages = payload.get("messages") if isinstance(payload, Mapping) else None
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], Mapping) else {}
        wamid = first.get("id")
        if not isinstance(wamid, str) or not wamid:
            raise GraphError(code=None, subcode=None, message="the Graph API accepted the send without a message id",
                             details=None, http_status=502)
        contacts = payload.get("contacts") if isinstance(payload, Mapping) else None
        contact = contacts[0] if isinstance(contacts, list) and contacts and isinstance(contacts[0], Mapping) else {}
        wa_id = contact.get("wa_id")
        status = first.get("message_status")
        return Accepted(wamid=wamid, wa_id=wa_id if isinstance(wa_id, str) else None,
                        message_status=status if isinstance(status, str) else None)

    async def mark_read(self, *, phone_number_id: str, access_token: str, wamid: str, typing: bool = False) -> None:
        """Meta's read receipt for a guest's message (and the earlier ones); with `typing`, also the typing
        indicator, which shows until the business answers or for 25 s (reference §12)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        await self._post(f"{phone_number_id}/messages", access_token=access_token, body=body)
