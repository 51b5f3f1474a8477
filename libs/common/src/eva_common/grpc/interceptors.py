"""One server interceptor for every RPC: request id, trace span, caller verification, metrics, logs, and the
single mapping from DomainError to gRPC status (with the stable error code in trailing metadata).

It wraps the method handler (rather than only intercepting) so the context variables it sets are visible to the
handler on the grpc.aio server. Unary, server-streaming and client-streaming methods are served (the caller is
verified before the handler reads the first message); a bidirectional method gets UNIMPLEMENTED instead of an
unverified handler (fail closed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from eva_common.auth import TokenVerifier, bearer_token, principal_var
from eva_common.context import new_request_id, request_id_var
from eva_common.errors import (
    ERROR_CODE_METADATA_KEY,
    EXTRA_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    DomainError,
    Overloaded,
    Unauthenticated,
)
from eva_common.grpc.metadata import REQUEST_ID_KEY, metadata_of
from eva_common.metrics import GRPC_LATENCY, GRPC_REQUESTS
from eva_common.telemetry import extract_context

logger = logging.getLogger("eva.grpc")

UnaryHandler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamHandler = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class _Call:
    """What the finally-block needs to know about one call."""

    code: grpc.StatusCode = grpc.StatusCode.OK


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, *, verifier: TokenVerifier | None, public_methods: frozenset[str]) -> None:
        self._verifier = verifier
        self._public = public_methods

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        method: str = details.method
        public = method.rsplit("/", 1)[-1] in self._public
        if handler.unary_unary is not None:
            unary: UnaryHandler = handler.unary_unary

            async def unary_wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._scope(method, public, context):
                    return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_wrapper,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream: StreamHandler = handler.unary_stream

            async def stream_wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with self._scope(method, public, context):
                    async for item in stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream_wrapper,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.stream_unary is not None:
            upload: UnaryHandler = handler.stream_unary  # takes the request iterator instead of one request

            async def upload_wrapper(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                async with self._scope(method, public, context):
                    return await upload(requests, context)

            return grpc.stream_unary_rpc_method_handler(
                upload_wrapper,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming requests are not served")

        return grpc.unary_unary_rpc_method_handler(refuse)

    @asynccontextmanager
    async def _scope(self, method: str, public: bool, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        metadata = metadata_of(context)
        request_token = request_id_var.set(metadata.get(REQUEST_ID_KEY) or new_request_id())
        otel_token = otel_context.attach(extract_context(metadata))
        started = time.perf_counter()
        call = _Call()
        try:
            with trace.get_tracer("eva.grpc").start_as_current_span(method, kind=trace.SpanKind.SERVER) as span:
                try:
                    if not public:
                        if self._verifier is None:
                            raise Unauthenticated("no verifier configured")
                        principal = await self._verifier.verify(bearer_token(metadata.get("authorization")))
                        principal_var.set(principal)
                    yield
                except DomainError as error:
                    call.code = error.grpc_status
                    span.set_attribute("eva.error_code", error.code)
                    trailers = [(ERROR_CODE_METADATA_KEY, error.code)]
                    if error.retry_after is not None:
                        trailers.append((RETRY_AFTER_METADATA_KEY, str(error.retry_after)))
                    if error.extra:
                        trailers.append((EXTRA_METADATA_KEY, json.dumps(error.extra, separators=(",", ":"))))
                    context.set_trailing_metadata(tuple(trailers))
                    if error.http_status >= 500 and not isinstance(error, Overloaded):  # shedding is counted
                        logger.warning("rpc failed", extra={"method": method, "code": error.code})
                    await context.abort(error.grpc_status, error.detail)
                except Exception as error:
                    if isinstance(error, grpc.aio.AbortError):
                        raise
                    call.code = grpc.StatusCode.INTERNAL
                    logger.exception("rpc crashed", extra={"method": method})
                    context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, "INTERNAL"),))
                    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            elapsed = time.perf_counter() - started
            GRPC_REQUESTS.labels(method, call.code.name).inc()
            GRPC_LATENCY.labels(method).observe(elapsed)
            logger.debug("rpc", extra={"method": method, "code": call.code.name, "ms": round(elapsed * 1000, 2)})
            otel_context.detach(otel_token)
            request_id_var.reset(request_token)
