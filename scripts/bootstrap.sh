#!/usr/bin/env bash
# Prepare a machine for Eva's local infrastructure. Idempotent and fast when everything is there.
#   1. Debian packages postgresql + redis-server (and Java 17 / Maven when missing; shellcheck, which actionlint
#      runs on the workflows' scripts), uv
#   2. uv sync of the workspace (--locked when uv.lock exists)
#   3. the Kafka broker jars from Maven Central into .local/kafka/<version>/libs
#   4. the end-to-end tests' Socket.io client (npm socket.io-client@4): `npm ci --prefix tests-e2e/js` when its
#      node_modules is missing or package-lock.json changed since the last install (Node.js + npm when missing)
# Then: python3 scripts/infra.py up --profile dev|test   (see docs/infrastructure.md)
#
# Options: --no-sync (skip step 2), --no-kafka (skip step 3), --no-npm (skip step 4).
# KAFKA_VERSION overrides the pom default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DO_SYNC=1
DO_KAFKA=1
DO_NPM=1
for arg in "$@"; do
  case "$arg" in
    --no-sync) DO_SYNC=0 ;;
    --no-kafka) DO_KAFKA=0 ;;
    --no-npm) DO_NPM=0 ;;
    *) echo "usage: scripts/bootstrap.sh [--no-sync] [--no-kafka] [--no-npm]" >&2; exit 2 ;;
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
  command -v shellcheck >/dev/null || missing+=(shellcheck)
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

E2E_JS=tests-e2e/js
install_e2e_client() {
  if ! command -v npm >/dev/null; then
    log "installing nodejs npm with apt-get (the end-to-end tests' Socket.io client)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q nodejs npm
  fi
  local stamp="$E2E_JS/node_modules/.eva-lock.sha256" wanted
  wanted=$(sha256sum "$E2E_JS/package-lock.json" | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return
  fi
  log "npm ci --prefix $E2E_JS"
  npm ci --prefix "$E2E_JS" --no-audit --no-fund --loglevel=error >/dev/null
  printf '%s\n' "$wanted" >"$stamp"
}

install_system_packages
ensure_uv
if ((DO_SYNC)); then sync_workspace; fi
# infra.py runs `mvn -B -q dependency:copy-dependencies` for scripts/kafka/pom.xml, unless the jars are there.
if ((DO_KAFKA)); then python3 scripts/infra.py fetch-kafka; fi
if ((DO_NPM)); then install_e2e_client; fi
log "done"
