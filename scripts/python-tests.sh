#!/usr/bin/env bash
# Runs the Python package's tests (python/tests) in a virtualenv at <repo>/.venv-python,
# created on first use and reused afterwards. Exits with pytest's status.
#   scripts/python-tests.sh [pytest args...]
# The live-server tests use .build/{release,debug}/encore (or $ENCORE_BIN) and are skipped,
# with the reason, when no binary has been built.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv-python"
"$REPO/scripts/python-venv.sh"
cd "$REPO"
set +e
"$VENV/bin/python" -m pytest -q python/tests "$@"
status=$?
exit $status
