#!/usr/bin/env bash
# Runs the Encore interop suite (Tests/interop) against a built encore binary with real,
# independent clients: grpcio, hyper-h2 over raw sockets, nghttp and h2load.
#
#   scripts/interop-tests.sh [extra pytest args...]
#
# Environment:
#   ENCORE_BIN   encore binary to test (default: <repo>/.build/debug/encore; build it first)
#   PYTHON       interpreter used to create the venv (default: python3; needs the venv module:
#                apt-get install -y python3-venv)
#
# Creates or reuses <repo>/.venv, installs Tests/interop/requirements.txt into it, generates the
# Python stubs from Protocol/*.proto into Tests/interop/_gen/ (git-ignored) and runs pytest.
# Needs nghttp / h2load on PATH (Debian: apt-get install -y nghttp2-client).
# Exits with pytest's exit code.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
export ENCORE_BIN="${ENCORE_BIN:-$root/.build/debug/encore}"

case "$ENCORE_BIN" in
  /*) ;;
  *) ENCORE_BIN="$(pwd)/$ENCORE_BIN" ;;
esac

if [ ! -x "$ENCORE_BIN" ]; then
  echo "interop-tests.sh: encore binary not found at $ENCORE_BIN" >&2
  echo "  build it with 'swift build' (or set ENCORE_BIN); the suite will fail without it" >&2
fi
for tool in nghttp h2load; do
  command -v "$tool" >/dev/null || echo "interop-tests.sh: $tool missing (apt-get install -y nghttp2-client); its tests will fail" >&2
done

if [ ! -x "$venv/bin/python" ]; then
  echo "interop-tests.sh: creating $venv" >&2
  "$python" -m venv "$venv"
fi

req="$root/Tests/interop/requirements.txt"
stamp="$venv/.interop-requirements"
if [ ! -f "$stamp" ] || ! cmp -s "$req" "$stamp"; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

"$venv/bin/python" "$root/Tests/interop/gen_stubs.py" >/dev/null

cd "$root"
set +e
"$venv/bin/python" -m pytest -q Tests/interop "$@"
rc=$?
set -e
exit "$rc"
