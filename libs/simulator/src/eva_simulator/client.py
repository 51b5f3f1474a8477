"""A small async client for the simulator's ``/_sim`` API, for tests of other services and the CLI."""

import asyncio
import time
from types import TracebackType
from typing import Any, Literal, Self

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
        coexistence: bool | None = None,
        throughput_mps: int | None = None,
    ) -> dict[str, Any]:
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "wabaId": waba_id,
                "displayPhoneNumber": display_phone_number,
                "accessToken": access_token,
                "appSecret": app_secret,
                "webhookUrl": webhook_url,
                "coexistence": coexistence,
                "throughputMps": throughput_mps,
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
        user_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A guest writes (``from_`` a phone number and/or ``user_id`` a BSUID); answers
        ``{wamid, delivered, attempts, deliveries, payload}``."""
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "from": from_,
                "userId": user_id,
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
        code: int | None = None,
        times: int = 1,
        phone_number_id: str = "*",
        details: str | None = None,
        http_status: int | None = None,
        kind: Literal["error", "slow_accept"] = "error",
        delay_seconds: float | None = None,
    ) -> dict[str, Any]:
        """The next ``times`` sends fail with Meta error ``code`` (``kind="error"``), or are accepted but
        answered only after ``delay_seconds`` (``kind="slow_accept"``: a send whose answer is lost)."""
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "kind": kind,
                "code": code,
                "times": times,
                "details": details,
                "httpStatus": http_status,
                "delaySeconds": delay_seconds,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/faults", json=body)
        return result

    async def clear_faults(self) -> None:
        await self._request("DELETE", "/_sim/faults")

    async def configure(self, **fields: Any) -> dict[str, Any]:
        """``POST /_sim/config`` with camelCase ``fields`` (autoStatuses, statusDelays, retry, ...)."""
        result: dict[str, Any] = await self._request("POST", "/_sim/config", json=_drop_none(fields))
        return result

    async def config(
        self,
        *,
        auto_statuses: bool | None = None,
        status_sequence: list[str] | None = None,
        status_delays: list[float] | None = None,
        window_enforcement: Literal["off", "async", "sync"] | None = None,
        throughput_enforcement: bool | None = None,
        pair_rate_enforcement: bool | None = None,
        pair_rate_burst: int | None = None,
        pair_rate_per_seconds: float | None = None,
        retry: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /_sim/config`` with typed switches; answers the whole configuration."""
        pair_rate = _drop_none({"burst": pair_rate_burst, "perSeconds": pair_rate_per_seconds})
        return await self.configure(
            autoStatuses=auto_statuses,
            statusSequence=status_sequence,
            statusDelays=status_delays,
            windowEnforcement=window_enforcement,
            throughputEnforcement=throughput_enforcement,
            pairRateEnforcement=pair_rate_enforcement,
            pairRate=pair_rate or None,
            retry=retry,
        )

    async def get_config(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/_sim/config")
        return result

    async def open_window(
        self,
        *,
        phone_number_id: str,
        wa_id: str | None = None,
        user_id: str | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """The guest (``wa_id`` or BSUID ``user_id``) last wrote at ``at`` (default now; in the past: a window
        that has closed)."""
        body = _drop_none({"phoneNumberId": phone_number_id, "waId": wa_id, "userId": user_id, "at": at})
        result: dict[str, Any] = await self._request("POST", "/_sim/windows", json=body)
        return result

    async def throughput(self, *, phone_number_id: str) -> dict[str, Any]:
        """``{phoneNumberId, limitMps, received, accepted, rejected, perSecond, maxReceivedInAnySecond,
        maxAcceptedInAnySecond}`` of the number's send endpoints."""
        result: dict[str, Any] = await self._request(
            "GET", "/_sim/throughput", params={"phoneNumberId": phone_number_id}
        )
        return result

    async def expire_token(self, *, phone_number_id: str) -> dict[str, Any]:
        """The number's access token expires now (190/463) until it is registered with a new one."""
        result: dict[str, Any] = await self._request("POST", f"/_sim/numbers/{phone_number_id}/expire-token")
        return result

    async def create_template(
        self,
        *,
        waba_id: str,
        name: str,
        language: str,
        category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"],
        components: list[dict[str, Any]],
        status: str | None = None,
        parameter_format: Literal["POSITIONAL", "NAMED"] | None = None,
        quality: str | None = None,
        rejected_reason: str | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """Upsert a template of a WABA (by name and language); answers it with its ``id``."""
        body = _drop_none(
            {
                "wabaId": waba_id,
                "name": name,
                "language": language,
                "category": category,
                "components": components,
                "status": status,
                "parameterFormat": parameter_format,
                "quality": quality,
                "rejectedReason": rejected_reason,
                "id": id,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/templates", json=body)
        return result

    async def list_templates(self, *, waba_id: str | None = None) -> list[Any]:
        params = _drop_none({"wabaId": waba_id})
        items: list[Any] = (await self._request("GET", "/_sim/templates", params=params))["items"]
        return items

    async def update_template(
        self,
        template_id: str,
        *,
        status: str | None = None,
        category: str | None = None,
        quality: str | None = None,
        rejected_reason: str | None = None,
        webhook: bool = True,
    ) -> dict[str, Any]:
        """Change a template; unless ``webhook=False`` Meta's template webhooks go to the WABA's numbers.
        Answers the template plus ``webhooks`` (one result per delivery)."""
        body = _drop_none(
            {
                "status": status,
                "category": category,
                "quality": quality,
                "rejectedReason": rejected_reason,
                "webhook": webhook,
            }
        )
        result: dict[str, Any] = await self._request("PATCH", f"/_sim/templates/{template_id}", json=body)
        return result

    async def add_status_rule(
        self,
        *,
        phone_number_id: str = "*",
        to: str | None = None,
        sequence: list[str] | None = None,
        fail_with: dict[str, Any] | None = None,
        skip: list[str] | None = None,
        duplicate: bool = False,
        reorder: bool = False,
        times: int = 1,
    ) -> dict[str, Any]:
        """The status webhooks of the next ``times`` sends (to ``to``): another ``sequence``, a ``failed``
        status after ``sent`` (``fail_with={"code": 131026, "title"?, "details"?}``), ``skip``ped statuses,
        each delivered twice (``duplicate``) or in reverse order (``reorder``)."""
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "to": to,
                "sequence": sequence,
                "failWith": fail_with,
                "skip": skip,
                "duplicate": duplicate,
                "reorder": reorder,
                "times": times,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/status-rules", json=body)
        return result

    async def status_rules(self) -> list[Any]:
        items: list[Any] = (await self._request("GET", "/_sim/status-rules"))["items"]
        return items

    async def clear_status_rules(self) -> None:
        await self._request("DELETE", "/_sim/status-rules")

    async def send_echo(
        self,
        *,
        phone_number_id: str,
        to: str,
        text: str | None = None,
        type: str = "text",
        content: dict[str, Any] | None = None,
        id: str | None = None,
        timestamp: int | str | None = None,
    ) -> dict[str, Any]:
        """A coexistence echo (``smb_message_echoes``): answers ``{wamid, delivered, attempts, payload}``."""
        body = _drop_none(
            {
                "phoneNumberId": phone_number_id,
                "to": to,
                "type": type,
                "text": text,
                "content": content,
                "id": id,
                "timestamp": timestamp,
            }
        )
        result: dict[str, Any] = await self._request("POST", "/_sim/echoes", json=body)
        return result

    async def reset(self, *, numbers: bool = False, templates: bool = False) -> None:
        params = {"numbers": str(numbers).lower(), "templates": str(templates).lower()}
        await self._request("POST", "/_sim/reset", params=params)

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
