#!/usr/bin/env bash
# Installs what is missing, builds Encore in release mode and serves on 127.0.0.1:50051
# (arguments are passed to `encore serve`, e.g. --port 6000 or --tls-cert/--tls-key).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product encore
exec .build/release/encore serve "$@"
