#!/usr/bin/env bash
# Runs the Python package's tests (python/tests) in a virtualenv at <repo>/.venv-python,
# created on first use and reused afterwards. Exits with pytest's status.
#   scripts/python-tests.sh [pytest args...]
# The live-server tests use .build/{release,debug}/encore (or $ENCORE_BIN) and are skipped,
# with the reason, when no binary has been built.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv-python"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
if ! "$VENV/bin/python" -m pip install --quiet -e "$REPO/python[test]" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "python-tests.sh: pip install -e python/[test] failed" >&2
    exit 1
fi
cd "$REPO"
set +e
"$VENV/bin/python" -m pytest -q python/tests "$@"
status=$?
exit $status
