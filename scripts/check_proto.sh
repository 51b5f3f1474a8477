#!/usr/bin/env bash
# Fails when the committed stubs under libs/protos/src are not what proto/ generates.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
scripts/gen_proto.sh "$fresh"
if ! diff -r -q -x '__pycache__' "$fresh/eva" libs/protos/src/eva; then
  echo "libs/protos is stale: run 'make proto' and commit the result" >&2
  exit 1
fi
echo "proto stubs up to date"
