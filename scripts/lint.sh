#!/usr/bin/env bash
# ruff over the tree, mypy (strict) over every package, and the proto drift check.
set -euo pipefail
cd "$(dirname "$0")/.."
uv run --no-sync ruff check .
packages=(eva_common eva_events eva_testing eva_simulator auth_service tenant_service conversation_service
          messaging_service webhook_ingest_service realtime_service n8n_service gateway)
args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
uv run --no-sync mypy "${args[@]}"
MYPYPATH=scripts uv run --no-sync mypy scripts/stack.py scripts/infra.py
scripts/check_proto.sh
