"""Times leave Eva in one format, in events as in REST: UTC, milliseconds, `Z`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from eva_events.envelope import EventEnvelope
from eva_events.times import rfc3339


def test_rfc3339_is_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 12, 6, 12, 51, 21, 123987, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-12-06T10:51:21.123Z"  # converted to UTC, truncated, never rounded up
    assert rfc3339(datetime(2026, 12, 6, 10, 51, 21)) == "2026-12-06T10:51:21.000Z"  # naive is UTC
    assert rfc3339(None) == ""


def test_event_times_serialize_like_the_rest_api_and_read_back() -> None:
    moment = datetime(2026, 12, 6, 10, 51, 21, 123456, tzinfo=UTC)
    envelope = EventEnvelope(type="probe.happened", version=1, tenant_id="t1", occurred_at=moment, data={})
    wire = json.loads(envelope.to_bytes())
    assert wire["occurredAt"] == "2026-12-06T10:51:21.123Z" == rfc3339(moment)
    again = EventEnvelope.model_validate_json(envelope.to_bytes())
    assert again.occurred_at == moment.replace(microsecond=123000)
