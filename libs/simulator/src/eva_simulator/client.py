"""A small async client for the simulator's ``/_sim`` API, for tests of other services and the CLI."""

import asyncio
import time
from types import TracebackType
from typing import Any, Self

import httpx


class SimulatorClientError(RuntimeError):
    """The simulator answered with a non-2xx status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"simulator answered {status}: {body}")
        self.status = status
        self.body = body


def _drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class SimulatorClient:
    """``async with SimulatorClient("http://127.0.0.1:3010") as sim: await sim.guest_message(...)``."""

    def __init__(self, base_url: str, *, client: httpx.AsyncClient | None = None, timeout: float = 60.0) -> None:
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._client.request(method, f"{self.base_url}{path}", **kwargs)
        if response.status_code >= 300:
            raise SimulatorClientError(response.status_code, response.text)
        return response.json()

    async def register_number(
        self,
        *,
        phone_number_id: str,
        waba_id: str | None = None,
        display_phone_number: str | None = None,
        access_token: str | None = None,
        app_secret: str | None = None,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "wabaId": waba_id,
                "displayPhoneNumber": display_phone_number,
                "accessToken": access_token,
                "appSecret": app_secret,
                "webhookUrl": webhook_url,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/numbers", json=body)
        return result

    async def guest_message(
        self,
        *,
        phone_number_id: str,
        from_: str,
        name: str | None = None,
        text: str | None = None,
        type: str | None = None,
        content: dict[str, Any] | None = None,
        timestamp: int | str | None = None,
        deliveries: int = 1,
        **extra: Any,
    ) -> dict[str, Any]:
        """A guest writes; answers ``{wamid, delivered, attempts, deliveries, payload}``."""
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "from": from_,
                "name": name,
                "text": text,
                "type": type,
                "content": content,
                "timestamp": timestamp,
                "deliveries": deliveries,
                **extra,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/guest-messages", json=body)
        return result

    async def deliver(self, **fields: Any) -> dict[str, Any]:
        """``POST /_sim/deliveries`` with camelCase ``fields`` (payload, rawBody, signature, ...)."""
        result: dict[str, Any] = await self._request("POST", "/_sim/deliveries", json=_drop_none(fields))
        return result

    async def sent_messages(self, *, phone_number_id: str | None = None, to: str | None = None) -> list[Any]:
        params = _drop_none({"phoneNumberId": phone_number_id, "to": to})
        result = await self._request("GET", "/_sim/sent-messages", params=params)
        items: list[Any] = result["items"]
        return items

    async def read_receipts(self, *, phone_number_id: str | None = None) -> list[Any]:
        params = _drop_none({"phoneNumberId": phone_number_id})
        items: list[Any] = (await self._request("GET", "/_sim/read-receipts", params=params))["items"]
        return items

    async def webhook_attempts(
        self, *, phone_number_id: str | None = None, delivery_id: str | None = None, kind: str | None = None
    ) -> list[Any]:
        params = _drop_none({"phoneNumberId": phone_number_id, "deliveryId": delivery_id, "kind": kind})
        items: list[Any] = (await self._request("GET", "/_sim/webhook-attempts", params=params))["items"]
        return items

    async def add_fault(
        self,
        *,
        code: int,
        times: int = 1,
        phone_number_id: str = "*",
        details: str | None = None,
        http_status: int | None = None,
    ) -> dict[str, Any]:
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "code": code,
                "times": times,
                "details": details,
                "httpStatus": http_status,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/faults", json=body)
        return result

    async def configure(self, **fields: Any) -> dict[str, Any]:
        """``POST /_sim/config`` with camelCase ``fields`` (autoStatuses, statusDelays, retry, ...)."""
        result: dict[str, Any] = await self._request("POST", "/_sim/config", json=_drop_none(fields))
        return result

    async def reset(self, *, numbers: bool = False) -> None:
        await self._request("POST", "/_sim/reset", params={"numbers": str(numbers).lower()})

    async def wait_for_statuses(
        self, wamid: str, statuses: list[str], *, timeout: float = 10.0, interval: float = 0.05
    ) -> dict[str, Any]:
        """Poll ``sent-messages`` until ``wamid`` has emitted at least ``statuses``, in that order."""
        deadline = time.monotonic() + timeout
        while True:
            for message in await self.sent_messages():
                seen = [record["status"] for record in message["statuses"]]
                if message["wamid"] == wamid and seen[: len(statuses)] == statuses:
                    found: dict[str, Any] = message
                    return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{wamid} did not reach statuses {statuses} within {timeout}s")
            await asyncio.sleep(interval)
