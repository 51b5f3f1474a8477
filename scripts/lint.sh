#!/usr/bin/env bash
# ruff over the tree, mypy (strict) over every package, the proto drift check and actionlint over the workflows.
set -euo pipefail
cd "$(dirname "$0")/.."
uv run --no-sync ruff check .
# the registry (deploy/deployables.toml) against the tree, then mypy over the shared libraries and every
# deployable's package the registry lists
python3 scripts/deployables.py check
packages=(eva_common eva_events eva_testing)
mapfile -t -O "${#packages[@]}" packages < <(python3 scripts/deployables.py modules)
args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
uv run --no-sync mypy "${args[@]}"
MYPYPATH=scripts uv run --no-sync mypy scripts/stack.py scripts/infra.py scripts/deployables.py scripts/validate_manifests.py scripts/n8n_server.py scripts/s3_server.py scripts/tools.py scripts/crd_schemas.py scripts/strimzi_topics.py scripts/images.py scripts/docker_engine.py scripts/workflows.py scripts/processes.py scripts/acme_server.py scripts/edge_server.py scripts/backup.py scripts/restore.py scripts/backup_sets.py scripts/pg_client.py scripts/monitoring_manifests.py
scripts/check_proto.sh
# the GitHub Actions workflows, with the pinned actionlint (and shellcheck on their run: scripts)
python3 scripts/workflows.py
