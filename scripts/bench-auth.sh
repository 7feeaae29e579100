#!/usr/bin/env bash
# Data-plane authentication cost: Decide throughput of a server with `admin.data_plane_auth`
# on (every call carries `authorization: Bearer <token>`, verified once per connection and then
# one compare per request) vs the same server with it off, measured in one run with h2load in
# interleaved rounds. Both servers are pinned to core 0 (one reactor thread each, only one under
# load at a time), h2load to core 1; both get the same request, header included.
#
#   scripts/bench-auth.sh [--rounds R] [-n N] [--json]
#   scripts/bench-auth.sh --instructions [-n N]
#
#   --rounds R   interleaved rounds (default 5); odd rounds measure "off" first
#   -n N         Decide calls per h2load run (default 100000)
#   --json       print one JSON line at the end: {"off_rps":..,"on_rps":..,"ratio":..,"rounds":[..]}
#   --instructions  instead of timing, count the whole server's instructions per Decide under
#                valgrind's callgrind (a stripped copy of the binary; instrumentation on only while
#                h2load sends N calls, default 4000): exact and independent of machine noise
#
# Environment: ENCORE_BIN (default <repo>/.build/release/encore, built when missing).
# The bar (issue 14): on >= 0.97x off.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=5
n=100000
json=0
instructions=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    -n) n="$2"; shift 2 ;;
    --json) json=1; shift ;;
    --instructions) instructions=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-auth.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "bench-auth: $*" >&2; }
die() { echo "bench-auth: error: $*" >&2; exit 2; }
for t in h2load nghttp taskset; do command -v "$t" >/dev/null || die "$t not available (scripts/install-deps.sh --test)"; done
if [ -z "${ENCORE_BIN:-}" ]; then
  ENCORE_BIN="$root/.build/release/encore"
  [ -x "$ENCORE_BIN" ] || { log "building the release binary"; (cd "$root" && swift build -c release --product encore >&2); }
fi
[ -x "$ENCORE_BIN" ] || die "no encore binary at $ENCORE_BIN"
"$root/scripts/python-venv.sh"
py="$root/.venv-python/bin/python"

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

token="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sha="$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
printf '{"admin": {"data_plane_auth": true, "tokens": [{"name": "frontend", "sha256": "%s", "roles": ["decide", "report"]}]}}\n' \
  "$sha" >"$work/auth.json"
# The demo Decide request (cart, two slots) as a gRPC frame.
"$py" - "$work/body.bin" <<'EOF'
import struct, sys
from encore._proto.encore.v1 import decisions_pb2 as d
req = d.DecideRequest(surface="cart", customer_id="c000042", slots=2,
                      order=d.Order(order_id="o-1", total_cents=5400, currency="USD", channel="web", device="mobile",
                                    country="US", items=[d.LineItem(sku="sku-1", category="apparel", price_cents=5400,
                                                                    quantity=1)]))
b = req.SerializeToString()
open(sys.argv[1], "wb").write(struct.pack(">BI", 0, len(b)) + b)
EOF

start() {  # start NAME ARGS... -> the port in $work/NAME.port
  local name="$1"; shift
  taskset -c 0 "$ENCORE_BIN" serve --host 127.0.0.1 --port 0 --admin-port 0 --threads 1 --holdout-share 0 "$@" \
    >"$work/$name.out" 2>"$work/$name.err" </dev/null &
  pids+=($!)
  local i
  for i in $(seq 1 300); do
    if grep -q "listening on" "$work/$name.err"; then break; fi
    sleep 0.1
  done
  grep -q "listening on" "$work/$name.err" || { cat "$work/$name.err" >&2; die "$name server did not start"; }
  sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/$name.err" | head -1 >"$work/$name.port"
}
if [ "$instructions" = 1 ]; then
  command -v valgrind >/dev/null || die "valgrind not available (scripts/install-deps.sh --test)"
  [ "$n" = 100000 ] && n=4000
  # Valgrind 3.19 cannot read the DWARF 5 debug info Swift writes: measure a stripped copy.
  strip -o "$work/encore" "$ENCORE_BIN"
  headers=(-H "content-type: application/grpc" -H "te: trailers" -H "authorization: Bearer $token")
  declare -A per
  for mode in off on; do
    extra=(); [ "$mode" = on ] && extra=(--config "$work/auth.json")
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.$mode" "$work/encore" serve \
      --host 127.0.0.1 --port 0 --admin-port 0 --threads 1 --holdout-share 0 "${extra[@]}" \
      >"$work/$mode.out" 2>"$work/$mode.err" </dev/null &
    pid=$!
    pids+=($pid)
    for i in $(seq 1 1800); do grep -q "listening on" "$work/$mode.err" && break; sleep 0.5; done
    port="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/$mode.err" | head -1)"
    [ -n "$port" ] || { cat "$work/$mode.err" >&2; die "$mode server did not start under valgrind"; }
    url="http://127.0.0.1:$port/encore.v1.Decisions/Decide"
    h2load -n 200 -c 4 -m 8 -t 1 -d "$work/body.bin" "${headers[@]}" "$url" >/dev/null 2>&1  # warm-up
    callgrind_control -i on "$pid" >/dev/null
    h2load -n "$n" -c 4 -m 8 -t 1 -d "$work/body.bin" "${headers[@]}" "$url" >"$work/h2.$mode" 2>&1
    callgrind_control -i off "$pid" >/dev/null
    grep -q "$n succeeded, 0 failed" "$work/h2.$mode" || { cat "$work/h2.$mode" >&2; die "h2load saw failed requests"; }
    kill -TERM "$pid"; wait "$pid" || true
    total="$(cat "$work"/cg."$mode"* | awk '/^totals:/ { t += $2 } END { print t }')"
    per[$mode]=$((total / n))
    log "$mode: $total instructions for $n Decide calls, ${per[$mode]} per call"
  done
  ratio="$(awk -v a="${per[off]}" -v b="${per[on]}" 'BEGIN { printf "%.4f", b / a }')"
  log "instructions per Decide, auth on / off: $ratio (bar: at most 1.03)"
  [ "$json" = 1 ] && printf '{"off_instructions":%s,"on_instructions":%s,"ratio":%s}\n' "${per[off]}" "${per[on]}" "$ratio"
  exit 0
fi

start off
start on --config "$work/auth.json"
port_off="$(cat "$work/off.port")"
port_on="$(cat "$work/on.port")"
headers=(-H "content-type: application/grpc" -H "te: trailers" -H "authorization: Bearer $token")
path="/encore.v1.Decisions/Decide"

# Both answer grpc-status 0 to this request; without the token the "on" server refuses it.
for port in "$port_off" "$port_on"; do
  out="$(nghttp -v -d "$work/body.bin" "${headers[@]}" "http://127.0.0.1:$port$path" 2>&1 | tr -d '\000' || true)"
  grep -q "grpc-status: 0" <<<"$out" || { echo "$out" >&2; die "Decide on port $port did not answer grpc-status 0"; }
done
out="$(nghttp -v -d "$work/body.bin" -H "content-type: application/grpc" -H "te: trailers" \
  "http://127.0.0.1:$port_on$path" 2>&1 | tr -d '\000' || true)"
grep -q "grpc-status: 16" <<<"$out" || { echo "$out" >&2; die "the auth server answered a call without a token"; }

run() {  # run PORT COUNT -> req/s
  local file="$work/h2load.$RANDOM"
  taskset -c 1 h2load -n "$2" -c 16 -m 8 -t 1 -d "$work/body.bin" "${headers[@]}" "http://127.0.0.1:$1$path" >"$file" 2>&1 \
    || { cat "$file" >&2; die "h2load failed"; }
  grep -q "succeeded, 0 errored" "$file" || grep -q " 0 failed" "$file" || { cat "$file" >&2; die "h2load saw failed requests"; }
  awk '/finished in/ { for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) { v = $(i-1); gsub(/,/, "", v); print v } }' "$file"
}
log "warm-up"
run "$port_off" 20000 >/dev/null
run "$port_on" 20000 >/dev/null
offs=(); ons=(); ratios=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then a="$(run "$port_off" "$n")"; b="$(run "$port_on" "$n")"
  else b="$(run "$port_on" "$n")"; a="$(run "$port_off" "$n")"; fi
  ratio="$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"
  log "round $r: off $a req/s, on $b req/s, on/off $ratio"
  offs+=("$a"); ons+=("$b"); ratios+=("$ratio")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m_off="$(median "${offs[@]}")"; m_on="$(median "${ons[@]}")"; m_ratio="$(median "${ratios[@]}")"
lo="$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)"; hi="$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)"
log "median: off $m_off req/s, on $m_on req/s; on/off ratio median $m_ratio (rounds $lo..$hi); bar 0.97"
if [ "$json" = 1 ]; then
  printf '{"off_rps":%s,"on_rps":%s,"ratio":%s,"ratio_min":%s,"ratio_max":%s,"rounds":[%s]}\n' "$m_off" "$m_on" \
    "$m_ratio" "$lo" "$hi" "$(IFS=,; echo "${ratios[*]}")"
fi
