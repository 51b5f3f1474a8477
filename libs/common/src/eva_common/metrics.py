"""Prometheus metrics shared by every entry point (HTTP, gRPC, Kafka)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("eva_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("eva_http_request_seconds", "HTTP request latency", ["method", "route"])
GRPC_REQUESTS = Counter("eva_grpc_requests_total", "gRPC requests served", ["method", "code"])
GRPC_LATENCY = Histogram("eva_grpc_request_seconds", "gRPC request latency", ["method"])
KAFKA_CONSUMED = Counter("eva_kafka_consumed_total", "Kafka records handled", ["topic", "outcome"])
KAFKA_PUBLISHED = Counter("eva_kafka_published_total", "Kafka records published", ["topic"])
KAFKA_HANDLE_LATENCY = Histogram("eva_kafka_handle_seconds", "Kafka record handling latency", ["topic"])
OUTBOX_RELAYED = Counter("eva_outbox_relayed_total", "Outbox rows published to Kafka", ["topic"])
HOUSEKEEPING_DELETED = Counter("eva_housekeeping_deleted_total",
                               "Rows past their retention deleted (published outbox rows, inbox claims)",
                               ["table"])
OUTBOX_UNSENT = Gauge("eva_outbox_unsent", "Outbox rows not yet published, sampled by the relay that leads")
OUTBOX_OLDEST_UNSENT = Gauge("eva_outbox_oldest_unsent_seconds",
                             "Age of the oldest outbox row not yet published (0 when none), sampled by the "
                             "leading relay")
KAFKA_CONSUMER_LAG = Gauge("eva_kafka_consumer_lag",
                           "Records after the consumer's position up to the partition's highwater, per assigned "
                           "partition, as of the consumer's last fetch", ["group", "topic", "partition"])
WORKER_RESTARTS = Counter("eva_worker_restarts_total", "Background workers restarted after a failure",
                          ["service", "worker"])
WORKER_UP = Gauge("eva_worker_up", "1 while a background worker runs, 0 while it is down or backing off",
                  ["service", "worker"])
