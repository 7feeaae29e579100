#!/usr/bin/env bash
# Regenerates the protobuf/grpcio stubs shipped in python/encore/_proto/ from Protocol/**/*.proto.
# Needs grpcio-tools (pip install grpcio-tools). Run from anywhere:  python/generate_stubs.sh
#
# The .proto files are compiled with -I Protocol, so each generated module registers the same
# file name the other Encore tools use (encore/v1/decisions.proto, ...). grpcio-tools writes
# absolute imports (`from encore.v1 import decisions_pb2`); they are rewritten to point into
# this package (`from encore._proto.encore.v1 import ...`).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PROTO="$REPO/Protocol"
OUT="$HERE/encore/_proto"
PY="${PYTHON:-python3}"

rm -rf "$OUT/encore" "$OUT/grpc"
mkdir -p "$OUT"
WELL_KNOWN="$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
cd "$PROTO"
# grpc/reflection/**: descriptors compiled into the server only (no client code needed here).
mapfile -t FILES < <(find . -name '*.proto' -not -path './grpc/reflection/*' | sed 's|^\./||' | sort)
"$PY" -m grpc_tools.protoc -I. -I"$WELL_KNOWN" --python_out="$OUT" --pyi_out="$OUT" \
    --grpc_python_out="$OUT" "${FILES[@]}"

# Package markers and import rewrite.
find "$OUT" -type d -exec sh -c 'test -f "$1/__init__.py" || : > "$1/__init__.py"' _ {} \;
find "$OUT" -name '*_pb2_grpc.py' -print0 | xargs -0 sed -i -E \
    -e 's/^from (encore|grpc\.health)\.v1 import /from encore._proto.\1.v1 import /'
"$PY" - "$OUT" <<'PY'
import pathlib, sys
out = pathlib.Path(sys.argv[1])
(out / "__init__.py").write_text(
    '"""Generated protobuf and grpcio stubs (python/generate_stubs.sh; do not edit)."""\n')
PY
echo "stubs written to $OUT"
