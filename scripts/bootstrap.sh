#!/usr/bin/env bash
# Prepare a machine for Eva's local infrastructure. Idempotent and fast when everything is there.
#   1. Debian packages postgresql + redis-server (and Java 17 / Maven when missing), uv
#   2. uv sync of the workspace (--locked when uv.lock exists)
#   3. the Kafka broker jars from Maven Central into .local/kafka/<version>/libs
# Then: python3 scripts/infra.py up --profile dev|test   (see docs/infrastructure.md)
#
# Options: --no-sync (skip step 2), --no-kafka (skip step 3). KAFKA_VERSION overrides the pom default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DO_SYNC=1
DO_KAFKA=1
for arg in "$@"; do
  case "$arg" in
    --no-sync) DO_SYNC=0 ;;
    --no-kafka) DO_KAFKA=0 ;;
    *) echo "usage: scripts/bootstrap.sh [--no-sync] [--no-kafka]" >&2; exit 2 ;;
  esac
done

log() { printf 'bootstrap: %s\n' "$*"; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

have_pg_binaries() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null &&
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

install_system_packages() {
  local missing=()
  have_pg_binaries || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if ((${#missing[@]} == 0)); then
    return
  fi
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q "${missing[@]}"
  have_pg_binaries || { echo "bootstrap: initdb/pg_ctl still missing under /usr/lib/postgresql/*/bin" >&2; exit 1; }
}

UV=(uv)
ensure_uv() {
  if command -v uv >/dev/null; then
    return
  fi
  log "installing uv with pip"
  python3 -m pip install -q uv || python3 -m pip install -q --break-system-packages uv
  command -v pyenv >/dev/null && pyenv rehash || true
  command -v uv >/dev/null || UV=(python3 -m uv)
}

sync_workspace() {
  if [[ -f uv.lock ]]; then
    log "uv sync --all-packages --locked"
    "${UV[@]}" sync --all-packages --locked
  else
    log "uv sync --all-packages (no uv.lock yet: this creates it)"
    "${UV[@]}" sync --all-packages
  fi
}

install_system_packages
ensure_uv
if ((DO_SYNC)); then sync_workspace; fi
# infra.py runs `mvn -B -q dependency:copy-dependencies` for scripts/kafka/pom.xml, unless the jars are there.
if ((DO_KAFKA)); then python3 scripts/infra.py fetch-kafka; fi
log "done"
