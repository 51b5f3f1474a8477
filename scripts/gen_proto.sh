#!/usr/bin/env bash
# Regenerates the committed gRPC stubs under libs/protos/src from proto/eva/**.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
out=libs/protos/src
find "$out/eva" -name '*_pb2*.py*' -delete 2>/dev/null || true
mapfile -t protos < <(find proto/eva -name '*.proto' | sort)
uv run --no-sync python -m grpc_tools.protoc -Iproto \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" "${protos[@]}"
# package markers so the generated modules import as eva.<domain>.v1.*
find "$out/eva" -type d -exec sh -c 'touch "$1/__init__.py"' _ {} \;
touch "$out/eva/py.typed"
