#!/bin/sh
# Applies provision.sql (beside this file) as the PostgreSQL superuser. Idempotent, so it runs on every start.
# Needs PGHOST, PGUSER, PGPASSWORD (superuser) and EVA_PG_OWNER_PASSWORD, EVA_PG_APP_PASSWORD (the passwords it
# sets for eva_owner and eva_app; URL-safe characters only, they end up inside database URLs).
set -eu
: "${PGHOST:?PGHOST not set}" "${PGPASSWORD:?PGPASSWORD not set}"
: "${EVA_PG_OWNER_PASSWORD:?EVA_PG_OWNER_PASSWORD not set}" "${EVA_PG_APP_PASSWORD:?EVA_PG_APP_PASSWORD not set}"

attempt=0
until pg_isready -q -d postgres; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "postgres-init: PostgreSQL at $PGHOST not ready after 120 s" >&2
    exit 1
  fi
  sleep 2
done

exec psql -X -q -d postgres -v ON_ERROR_STOP=1 \
  -v owner_password="$EVA_PG_OWNER_PASSWORD" -v app_password="$EVA_PG_APP_PASSWORD" \
  -f "$(dirname "$0")/provision.sql"
