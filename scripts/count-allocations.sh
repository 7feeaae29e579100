#!/usr/bin/env bash
# Counts heap allocations per request on Encore's serving path: the release server runs with an
# LD_PRELOAD malloc counter (scripts/malloc-count/malloc_count.c), h2load sends Health/Check
# calls, and the counter is read before and after each load (SIGUSR2). Counts are exact and do
# not depend on machine load.
#   scripts/count-allocations.sh [--json] [-n REQUESTS] [--decide]
# Default: Health/Check. --decide: Decide on the embedded demo (2 slots, holdout off).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
json=0; n=60000; method=health
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    -n) n="$2"; shift ;;
    --decide) method=decide ;;
    *) echo "usage: $0 [--json] [-n REQUESTS]" >&2; exit 2 ;;
  esac
  shift
done
bin="${ENCORE_BIN:-$root/.build/release/encore}"
[ -x "$bin" ] || (cd "$root" && swift build -c release --product encore >&2)
command -v h2load >/dev/null || "$root/scripts/install-deps.sh" --test >&2
work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
gcc -O2 -shared -fPIC -o "$work/malloc_count.so" "$root/scripts/malloc-count/malloc_count.c"
if [ "$method" = decide ]; then
  python3 "$root/scripts/bench-decide.py" --write-body "$work/body.bin"
  path=/encore.v1.Decisions/Decide
  serve_args=(--holdout-share 0)
else
  # HealthCheckRequest{service: "encore.v1.Decisions"} in a gRPC frame.
  printf '\x00\x00\x00\x00\x15\x0a\x13encore.v1.Decisions' > "$work/body.bin"
  path=/grpc.health.v1.Health/Check
  serve_args=()
fi

LD_PRELOAD="$work/malloc_count.so" "$bin" serve --port 0 --admin-port 0 --threads 1 "${serve_args[@]}" 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 300); do grep -q "listening on" "$work/server.log" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$work/server.log")"
[ -n "$port" ] || { echo "server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
url="http://127.0.0.1:$port$path"
load() { h2load "$@" -d "$work/body.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$url" > "$work/h2load.out" 2>&1
         grep -q " 0 failed" "$work/h2load.out" || { cat "$work/h2load.out" >&2; exit 1; }; }
sample() { kill -USR2 "$server_pid"; sleep 0.3; grep "malloc-count" "$work/server.log" | tail -1 | sed 's/.*allocs=\([0-9]*\).*/\1/'; }

# Each h2load run opens 16 new connections. The marginal cost of a request is the difference
# between a run of 2n and a run of n requests (connection setup cancels out); the average over
# the n-request run, connection setup included, is reported too.
load -n 2000 -c 16 -m 8 -t 1            # warm-up: buffers and slots reach their working size
a0="$(sample)"
load -n "$n" -c 16 -m 8 -t 1
a1="$(sample)"
load -n "$((2 * n))" -c 16 -m 8 -t 1
a2="$(sample)"
load -n 16 -c 16 -m 1 -t 1              # 16 fresh connections, one call each
a3="$(sample)"
marginal="$(python3 -c "print(round((($a2 - $a1) - ($a1 - $a0)) / $n, 4))")"
average="$(python3 -c "print(round(($a1 - $a0) / $n, 4))")"
per_connection="$(python3 -c "print(round(($a3 - $a2) / 16, 1))")"
if [ "$json" = 1 ]; then
  echo "{\"requests\": $n, \"allocs_per_request\": $marginal, \"allocs_per_request_incl_connection_setup\": $average, \"allocs_per_new_connection_with_one_call\": $per_connection}"
else
  echo "$path over 16 connections (h2load -c 16 -m 8), runs of $n and $((2 * n)) requests"
  echo "heap allocations per request (marginal: (run 2n - run n) / n):   $marginal"
  echo "heap allocations per request (run of n, connection setup incl.): $average"
  echo "heap allocations per new connection with one call:               $per_connection"
fi
