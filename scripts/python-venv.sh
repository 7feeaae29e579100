#!/usr/bin/env bash
# Creates (once) and updates <repo>/.venv-python with the Python package and its test extras
# (pip install -e python/[test]); prints nothing on success. Used by scripts/python-tests.sh and
# scripts/learning-loop.sh.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv-python"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || { echo "python-venv.sh: '$PY -m venv' failed (Debian: apt-get install -y python3-venv)" >&2; exit 1; }
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
if ! "$VENV/bin/python" -m pip install --quiet -e "$REPO/python[test]" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "python-venv.sh: pip install -e python/[test] failed" >&2
    exit 1
fi
