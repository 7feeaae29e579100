#!/usr/bin/env bash
# The closed learning loop against a real `encore serve` (docs/learning.md):
#   scripts/learning-loop.sh --seed S [--json] [--quick] [--rounds N] [--orders N] [--gamma auto|G]
#                            [--weighting none|ips] [--interaction A*B] [--work-dir D]
#                            [--slots 1|2] [--slot1 pool|ignore|auto] [--pair-scale X] [--autopilot]
# Sets up what it needs: <repo>/.venv-python (scripts/python-venv.sh) and, when $ENCORE_BIN is not
# set and no build exists, a release build of encore (.build/release/encore, else an existing
# .build/debug/encore is used). The server listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/python-venv.sh"
py="$root/.venv-python/bin/python"
if [[ -z "${ENCORE_BIN:-}" ]]; then
    if [[ -x "$root/.build/release/encore" ]]; then ENCORE_BIN="$root/.build/release/encore"
    elif [[ -x "$root/.build/debug/encore" ]]; then ENCORE_BIN="$root/.build/debug/encore"
    else
        echo "learning-loop: building encore (release; swift build -c release --product encore)" >&2
        "$root/scripts/install-deps.sh" >&2
        (cd "$root" && swift build -c release --product encore >&2)
        ENCORE_BIN="$root/.build/release/encore"
    fi
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
