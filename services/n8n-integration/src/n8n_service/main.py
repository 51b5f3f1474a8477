"""Composition root of the n8n-integration service (on eva_common.runtime's skeleton).

It will serve the `/n8n/*` API for n8n automations on its own port (3003) and deliver the tenants' signed outbound
webhooks; today it runs with its database and Kafka producer wired and its health endpoints telling the truth about
them.
"""

from __future__ import annotations

from eva_common.db import database_ready
from eva_common.http.app import create_http_app
from eva_common.runtime import ServiceApp, run_service
from eva_events.topics import MESSAGING_EVENTS

from n8n_service.settings import Settings, get_settings


class N8nApp(ServiceApp):
    """Everything the process runs, built but not started."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        engine = self.postgres(settings)
        publisher = self.kafka_publisher(settings)
        self.http_app = create_http_app(
            title="Eva n8n integration",
            readiness=self.readiness(postgres=lambda: database_ready(engine),
                                     kafka=lambda: publisher.ready(MESSAGING_EVENTS)),
        )


def run() -> None:
    run_service(get_settings, N8nApp, name="n8n-integration")
