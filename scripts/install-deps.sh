#!/usr/bin/env bash
# Installs the Debian packages Encore builds, serves and tests with. Idempotent.
#   scripts/install-deps.sh          build + serve needs (libnghttp2-dev, libssl-dev, pkg-config)
#   scripts/install-deps.sh --test   also the test tools (nghttp2-client, nghttp2-server, python3-venv, protobuf-compiler,
#                                    valgrind and gcc for the quick allocation/instruction gate, scripts/bench-quick.sh;
#                                    haproxy, nginx-light and iproute2 for the fleet tests, scripts/fleet-tests.sh;
#                                    prometheus (with promtool) and chromium for the /metrics and /status tests)
set -euo pipefail
packages=(libnghttp2-dev libssl-dev pkg-config)
if [ "${1:-}" = "--test" ]; then
  packages+=(nghttp2-client nghttp2-server python3-venv python3-pip protobuf-compiler openssl valgrind gcc haproxy nginx-light iproute2 prometheus chromium fonts-dejavu-core)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present (${packages[*]})"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
