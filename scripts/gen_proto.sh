#!/usr/bin/env bash
# Regenerates the committed gRPC stubs from proto/eva/**.proto into libs/protos/src (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-libs/protos/src}
mkdir -p "$out"
find "$out" -path '*/eva/*' \( -name '*_pb2*.py' -o -name '*_pb2*.pyi' \) -delete 2>/dev/null || true
mapfile -t protos < <(find proto/eva -name '*.proto' | sort)
uv run --no-sync python -m grpc_tools.protoc -Iproto \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" "${protos[@]}" 2> >(grep -v "^Writing mypy" >&2)
# package markers so the generated modules import as eva.<domain>.v1.*
find "$out/eva" -type d -exec sh -c 'touch "$1/__init__.py"' _ {} \;
touch "$out/eva/py.typed"
