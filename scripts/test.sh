#!/usr/bin/env bash
# `make test`: installs what is missing, starts the test profile's PostgreSQL, Redis and Kafka (own ports and
# data, so it runs beside `make up`), runs lint, unit, integration and end-to-end tests, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
scripts/bootstrap.sh
# the pinned tools the tests run (MinIO, kustomize, ...: built once from the Go module proxy, scripts/tools.py)
python3 scripts/tools.py install >/dev/null
# real n8n for the end-to-end test of the example workflows (npm, pinned; installed once under .local/tools)
python3 scripts/n8n_server.py install >/dev/null
cleanup() { uv run --no-sync python scripts/stack.py down --profile test >/dev/null 2>&1 || true; }
trap cleanup EXIT
# the test profile is disposable: every run starts from empty data (each run creates thousands of uniquely named
# topics; kept from run to run, they made the broker's restart in the fault tests outlast its 90 s readiness wait)
python3 scripts/infra.py reset --profile test
python3 scripts/infra.py up --profile test
eval "$(python3 scripts/infra.py env --profile test | sed 's/^/export /')"
scripts/lint.sh
# the platform's standard topics exist in every real deployment; create them as the stack does
uv run --no-sync python -c "import asyncio, os; from eva_common.kafka.admin import ensure_topics; \
from eva_events.topics import ALL_TOPICS; asyncio.run(ensure_topics(os.environ['EVA_KAFKA_BOOTSTRAP'], ALL_TOPICS))"
suites=(libs/*/tests services/*/tests gateway/tests deploy/tests scripts/tests)
existing=()
for s in "${suites[@]}"; do [ -d "$s" ] && existing+=("$s"); done
# -rs: every skipped test says why (the images' smoke test runs only where a Docker engine answers)
uv run --no-sync pytest -q -rs -p no:randomly "${existing[@]}" tests-e2e "$@"
echo "make test took $(( $(date +%s) - started ))s"
