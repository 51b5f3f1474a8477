"""Operator command: replay stored deliveries through processing (recover from a bug without asking Meta).

    uv run python -m webhook_ingest_service.replay --from 2026-11-29T08:00:00Z --to 2026-11-29T09:00:00Z \\
        [--tenant <id>] [--state failed|processed|received|all] [--dry-run]

Configuration comes from the service's EVA_* variables (EVA_DATABASE_URL, the app role; EVA_KAFKA_BOOTSTRAP;
EVA_WEBHOOKS_TOPIC). Stored rows are read through the `webhook_replay_page` SECURITY DEFINER function (row-level
security stays on for everything else). Prints a JSON summary `{"matched": n, "published": n}` on stdout; logs go
to stderr. Exit status 0 on success, 2 on bad arguments, 1 when the replay failed part-way (re-running is safe).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from eva_common.db import create_engine, session_factory
from eva_common.errors import InvalidArgument
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.runtime import bootstrap_process
from eva_common.timefmt import parse_rfc3339

from webhook_ingest_service.replaying import DeliveryReplayer, ReplayRequest, ReplayState, ReplaySummary
from webhook_ingest_service.repository import WebhookEventRepository
from webhook_ingest_service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def _timestamp(value: str) -> datetime:
    try:
        parsed = parse_rfc3339(value, field="the time")
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(f"{error.detail}: {value!r}") from error
    if parsed is None:
        raise argparse.ArgumentTypeError("a time is required")
    return parsed


def parse_args(argv: Sequence[str] | None = None) -> ReplayRequest:
    parser = argparse.ArgumentParser(
        prog="python -m webhook_ingest_service.replay",
        description="Republish stored webhook deliveries of a time range to wa.webhooks.v1 (header replayed: true).",
    )
    parser.add_argument("--from", dest="received_from", type=_timestamp, required=True,
                        help="first received time included (RFC 3339)")
    parser.add_argument("--to", dest="received_to", type=_timestamp, required=True,
                        help="received time excluded (RFC 3339)")
    parser.add_argument("--tenant", dest="tenant_id", default=None, help="only this tenant's deliveries")
    parser.add_argument("--state", choices=[state.value for state in ReplayState], default=ReplayState.ALL.value,
                        help="only deliveries in this processing state (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="count the matches, publish nothing")
    args = parser.parse_args(argv)
    try:
        return ReplayRequest(received_from=args.received_from, received_to=args.received_to,
                             tenant_id=args.tenant_id or None, state=ReplayState(args.state), dry_run=args.dry_run)
    except InvalidArgument as error:
        parser.error(error.detail)


async def run_replay(settings: Settings, request: ReplayRequest) -> ReplaySummary:
    """Composition of the command: database (app role) + Kafka producer -> replayer."""
    engine = create_engine(settings.database_url, pool_size=1)
    publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=f"{settings.service_name}-replay")
    try:
        if not request.dry_run:
            await publisher.start()
        replayer = DeliveryReplayer(source=WebhookEventRepository(sessions=session_factory(engine)),
                                    publisher=publisher, topic=settings.webhooks_topic)
        return await replayer.replay(request)
    finally:
        await publisher.stop()
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    request = parse_args(argv)
    settings = get_settings()
    bootstrap_process(settings)  # JSON logs on stderr, like the service
    try:
        summary = asyncio.run(run_replay(settings, request))
    except Exception as error:
        logger.error("replay failed", extra={"error": type(error).__name__})
        sys.stderr.write(f"replay failed: {type(error).__name__}\n")
        return 1
    sys.stdout.write(json.dumps({"matched": summary.matched, "published": summary.published}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
