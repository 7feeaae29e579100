#!/usr/bin/env bash
# Runs the fleet tests (Tests/fleet): the load-balancer configs checked by `haproxy -c` and
# `nginx -t`, and three replicas in network namespaces behind haproxy under load through a
# rollout, a refused rollout, a SIGKILL and a SIGTERM drain (needs root for `ip netns`; skips
# with the reason otherwise). pytest's summary shows the run's figures (.build/fleet-report.json).
#
#   scripts/fleet-tests.sh [extra pytest args...]
#
# Environment: ENCORE_BIN (default <repo>/.build/debug/encore), FLEET_REPORT (report path).
# Uses the interop suite's venv (<repo>/.venv, Tests/interop/requirements.txt) and stubs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
export ENCORE_BIN="${ENCORE_BIN:-$root/.build/debug/encore}"
case "$ENCORE_BIN" in
  /*) ;;
  *) ENCORE_BIN="$(pwd)/$ENCORE_BIN" ;;
esac
export FLEET_REPORT="${FLEET_REPORT:-$root/.build/fleet-report.json}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
req="$root/Tests/interop/requirements.txt"
stamp="$venv/.interop-requirements"
if [ ! -f "$stamp" ] || ! cmp -s "$req" "$stamp"; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
"$venv/bin/python" "$root/Tests/interop/gen_stubs.py" >/dev/null
rm -f "$FLEET_REPORT"
cd "$root"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider Tests/fleet "$@"
