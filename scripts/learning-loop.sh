#!/usr/bin/env bash
# The closed learning loop against a real `encore serve` (docs/learning.md):
#   scripts/learning-loop.sh --seed S [--json] [--quick] [--rounds N] [--orders N] [--gamma auto|G]
#                            [--weighting none|ips] [--interaction A*B] [--work-dir D]
# Uses <repo>/.venv-python (scripts/python-tests.sh) and $ENCORE_BIN, default .build/release/encore,
# else .build/debug/encore. The server listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/.venv-python/bin/python"
[[ -x "$py" ]] || { echo "learning-loop: $py missing; run scripts/python-tests.sh first" >&2; exit 1; }
if [[ -z "${ENCORE_BIN:-}" ]]; then
    if [[ -x "$root/.build/release/encore" ]]; then ENCORE_BIN="$root/.build/release/encore"
    else ENCORE_BIN="$root/.build/debug/encore"; fi
fi
export ENCORE_BIN
child=""
cleanup() { if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
cd "$root/python"
"$py" -m encore.sim.loop "$@" &
child=$!
wait "$child"
