#!/usr/bin/env bash
# Peer table: builds and starts the peers of ../shared/peers (nghttpd, Python grpcio + Vowpal
# Wabbit, grpc-swift-2) and Encore (release), runs the same h2load command against each in one
# run, and writes a Markdown table (req/s, ratio to nghttpd, server CPU per request, p50/p99) with
# the date and the machine to docs/peers.md, which README.md's Performance section links to.
#
#   scripts/bench-peers.sh [--rounds R] [--duration S] [--only a,b] [--out FILE] [--json] [--no-build-peers]
#
#   --rounds R         interleaved rounds (default 3); the table shows medians
#   --duration S       seconds per h2load run (default 10; each run also has a 3 s warm-up run first)
#   --only a,b         subset: encore-health, encore-decide, grpc-swift-2, python-vw-sync, python-vw-aio
#                      (nghttpd, the reference, always runs)
#   --out FILE         where the table goes (default docs/peers.md)
#   --no-build-peers   never run ../shared/peers/build.sh; peers that are not built are left out
#
# Environment:
#   PEERS_BUILD  peer build output (default /tmp/peers-build; reused when present, never deleted)
#   PEERS_VENV   the peers' Python venv (default /tmp/peers-venv)
#   PEERS_DIR    the peer harness (default ../shared/peers next to this repository)
#   ENCORE_BIN   Encore binary (default .build/release/encore, built with swift build -c release)
#
# Building the peers from nothing takes ~35 min on 2 cores (grpc-swift-2's release build); a
# finished build in $PEERS_BUILD is reused. The measuring itself takes about
# (targets x (rounds x duration + 3)) seconds: ~3 min with the defaults. Load goes to 127.0.0.1 only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PEERS_BUILD="${PEERS_BUILD:-/tmp/peers-build}"
export PEERS_VENV="${PEERS_VENV:-/tmp/peers-venv}"
export PEERS_DIR="${PEERS_DIR:-$root/../shared/peers}"
build_peers=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build-peers) build_peers=0; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
log() { echo "bench-peers: $*" >&2; }

"$root/scripts/install-deps.sh" --test >&2

if [ -z "${ENCORE_BIN:-}" ]; then
  log "swift build -c release --product encore"
  (cd "$root" && swift build -c release --product encore >&2)
  export ENCORE_BIN="$root/.build/release/encore"
fi

peer_c="$PEERS_BUILD/swiftgrpc/.build/release/DecideServer"
if [ ! -x "$peer_c" ] || [ ! -f "$PEERS_BUILD/py/decide_pb2.py" ] || [ ! -x "$PEERS_VENV/bin/python" ]; then
  if [ "$build_peers" = 1 ]; then
    [ -x "$PEERS_DIR/build.sh" ] || { log "no peer harness at $PEERS_DIR"; exit 2; }
    log "building the peers into $PEERS_BUILD ($PEERS_DIR/build.sh; ~35 min cold for grpc-swift-2)"
    PEERS_BUILD="$PEERS_BUILD" PEERS_VENV="$PEERS_VENV" "$PEERS_DIR/build.sh" >&2
  else
    log "some peers are not built in $PEERS_BUILD; they are left out (--no-build-peers)"
  fi
else
  log "reusing the peer build in $PEERS_BUILD"
fi

exec python3 "$root/scripts/bench-peers.py" ${args[@]+"${args[@]}"}
