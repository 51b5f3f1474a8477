"""OpenTelemetry tracing: OTLP when an endpoint is configured, in-process only otherwise.

Context travels as W3C `traceparent` through HTTP headers, gRPC metadata and Kafka headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def setup_telemetry(service_name: str, otlp_endpoint: str | None) -> None:
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    _configured = True


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_carrier() -> dict[str, str]:
    """The current trace context as text headers (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(carrier: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(dict(carrier))


def kafka_headers_to_carrier(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {key: value.decode("latin-1") for key, value in headers or () if value is not None}


def current_traceparent() -> str | None:
    return inject_carrier().get("traceparent")
