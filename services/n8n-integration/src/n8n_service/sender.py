"""One attempt of one webhook delivery: the URL checked again (SSRF guard, fresh DNS answers) and pinned to a
checked address, the body signed, POSTed once, no redirect followed; the outcome classified. Never raises for the
receiver's behaviour, never puts the secret anywhere but the signature, never logs or records the URL's path or
query (they may hold a token)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass

import httpx
from eva_common.errors import DomainError

from n8n_service.metrics import ATTEMPT_LATENCY
from n8n_service.signing import SIGNATURE_HEADER, signature_header
from n8n_service.ssrf import Resolver, Target, UrlPolicy, check_url, system_resolver

logger = logging.getLogger(__name__)
USER_AGENT = "Eva-Webhooks/1"
MAX_CLIENTS = 256


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    delivered: bool
    status_code: int | None
    error: str | None
    latency_ms: int


class WebhookSender:
    """POSTs signed envelopes. Connections are pooled per (host, checked address, port), so a connection opened for
    one host name is never reused for another that resolves to the same address."""

    def __init__(self, *, policy: UrlPolicy, timeout_seconds: float, resolver: Resolver = system_resolver,
                 ca_bundle: str | None = None) -> None:
        self._policy = policy
        # the certificate is verified against the subscription's host name (sent as the TLS server name), never
        # against the pinned address
        self._tls = ssl.create_default_context()
        if ca_bundle:
            self._tls.load_verify_locations(cafile=ca_bundle)
        self._resolver = resolver
        self._timeout = timeout_seconds
        self._clients: OrderedDict[tuple[str, str, str, int], httpx.AsyncClient] = OrderedDict()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()

    async def _client(self, target: Target) -> httpx.AsyncClient:
        key = (target.scheme, target.host, target.address, target.port)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        # trust_env=False: no proxy from the environment (a proxy would connect wherever it likes, past the pin)
        client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=httpx.Timeout(self._timeout),
                                   verify=self._tls,
                                   limits=httpx.Limits(max_connections=20, max_keepalive_connections=5))
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            _, evicted = self._clients.popitem(last=False)
            await evicted.aclose()
        return client

    async def send(self, *, url: str, secret: str, body: bytes, event_id: str, event_type: str,
                   delivery_id: str) -> AttemptOutcome:
        started = time.perf_counter()

        def outcome(delivered: bool, status: int | None, error: str | None) -> AttemptOutcome:
            elapsed = time.perf_counter() - started
            ATTEMPT_LATENCY.observe(elapsed)
            return AttemptOutcome(delivered=delivered, status_code=status, error=error,
                                  latency_ms=int(round(elapsed * 1000)))

        try:
            async with asyncio.timeout(self._timeout):  # a resolver that never answers must not hold the attempt
                target = await check_url(url, self._policy, self._resolver)
        except DomainError as refused:  # not allowed (now), invalid, or not resolvable
            return outcome(False, None, f"{refused.code}: {refused.detail}")
        except TimeoutError:
            return outcome(False, None, f"DNS timeout after {self._timeout:g}s")
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret, body, int(time.time())),
            "X-Eva-Event-Id": event_id,
            "X-Eva-Event-Type": event_type,
            "X-Eva-Delivery-Id": delivery_id,
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        client = await self._client(target)
        try:
            async with asyncio.timeout(self._timeout):
                async with client.stream("POST", target.pinned_url, content=body, headers=headers,
                                         extensions=extensions) as response:
                    status = response.status_code  # the body is not read: only the status counts
        except (TimeoutError, httpx.TimeoutException):
            return outcome(False, None, f"timeout after {self._timeout:g}s")
        except httpx.HTTPError as error:
            return outcome(False, None, f"connection failed ({type(error).__name__})")
        except OSError as error:
            return outcome(False, None, f"connection failed ({type(error).__name__})")
        if 200 <= status < 300:
            return outcome(True, status, None)
        if 300 <= status < 400:
            return outcome(False, status, f"redirect not followed (HTTP {status})")
        return outcome(False, status, f"HTTP {status}")
