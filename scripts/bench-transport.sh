#!/usr/bin/env bash
# Transport benchmark: Encore vs nghttpd (the HTTP/2 ceiling of this machine) with the same
# gRPC-shaped request, measured with h2load in interleaved rounds.
#
#   scripts/bench-transport.sh [--rounds R] [--json] [--check] [-n N] [--encore-arg ARG]... [--keep DIR]
#
#   --rounds R        interleaved rounds (default 3); odd rounds run Encore first, even rounds nghttpd
#   --json            print one JSON line at the end:
#                     {"encore_rps":..,"nghttpd_rps":..,"ratio":..,"bar":0.8,"pass":..,"rounds":[..]}
#   --check           exit 1 when the median ratio is below the bar (default: report only)
#   -n N              requests per h2load run (default 60000)
#   --encore-arg ARG  extra argument for `encore serve` (repeatable), e.g. --encore-arg --threads --encore-arg 1
#   --keep DIR        keep the raw h2load outputs and server logs in DIR
#
# Environment: ENCORE_BIN (default <repo>/.build/release/encore; built with `swift build -c release`
# when missing and ENCORE_BIN is not set).
#
# Both servers get the same request: POST /grpc.health.v1.Health/Check with a Health/Check frame
# (5-byte prefix + HealthCheckRequest{service:"encore.v1.Decisions"}) and the headers
# content-type: application/grpc, te: trailers, at h2load -n 60000 -c 16 -m 8 -t 1. nghttpd
# (`--no-tls`, one worker) answers the POST with a static file holding a gRPC response frame, the
# same way ../shared/peers/bench.py measures its "A-post" row. The bar is encore >= 0.80x nghttpd.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=3
json=0
check=0
n=60000
conc=16
streams=8
bar=0.80
keep=""
encore_args=()

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --rounds=*) rounds="${1#*=}"; shift ;;
    --json) json=1; shift ;;
    --check) check=1; shift ;;
    -n) n="$2"; shift 2 ;;
    --encore-arg) encore_args+=("$2"); shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-transport.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "bench-transport.sh: --rounds needs a positive integer" >&2; exit 2 ;; esac
case "$n" in ''|*[!0-9]*|0) echo "bench-transport.sh: -n needs a positive integer" >&2; exit 2 ;; esac

log() { echo "bench-transport: $*" >&2; }
die() { echo "bench-transport: error: $*" >&2; exit 2; }

# --- tools ---------------------------------------------------------------------------------------
need_pkgs=()
command -v nghttpd >/dev/null || need_pkgs+=(nghttp2-server)
{ command -v h2load >/dev/null && command -v nghttp >/dev/null; } || need_pkgs+=(nghttp2-client)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y "${need_pkgs[@]}" >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y "${need_pkgs[@]}" >&2; }
fi
for t in nghttpd h2load nghttp; do command -v "$t" >/dev/null || die "$t not available"; done

# --- encore binary -------------------------------------------------------------------------------
if [ -n "${ENCORE_BIN:-}" ]; then
  [ -x "$ENCORE_BIN" ] || die "ENCORE_BIN=$ENCORE_BIN is not an executable file"
else
  ENCORE_BIN="$root/.build/release/encore"
  if [ ! -x "$ENCORE_BIN" ]; then
    log "building $ENCORE_BIN (swift build -c release)"
    (cd "$root" && swift build -c release --product encore >&2)
    [ -x "$ENCORE_BIN" ] || die "release build did not produce $ENCORE_BIN"
  fi
fi

# --- scratch space and cleanup -------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/encore-bench.XXXXXX")"
pids=()
cleanup() {
  local pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$work"/. "$keep"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- request body and nghttpd docroot ------------------------------------------------------------
grpc_path="/grpc.health.v1.Health/Check"
body="$work/body.bin"
# flag 0, length 21, then HealthCheckRequest{service (field 1, 19 bytes): "encore.v1.Decisions"}
printf '\000\000\000\000\025\012\023encore.v1.Decisions' >"$body"
[ "$(wc -c <"$body")" -eq 26 ] || die "body.bin has the wrong size"
mkdir -p "$work/www/grpc.health.v1.Health"
# nghttpd's answer: a gRPC frame holding HealthCheckResponse{status: SERVING}
printf '\000\000\000\000\002\010\001' >"$work/www/grpc.health.v1.Health/Check"

free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
wait_port() {  # port timeout_s
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# --- start nghttpd -------------------------------------------------------------------------------
ng_port="$(free_port)" || die "no free port"
nghttpd --no-tls -a 127.0.0.1 -d "$work/www" "$ng_port" >"$work/nghttpd.log" 2>&1 &
pids+=($!)
wait_port "$ng_port" 10 || die "nghttpd did not start (see log: $(tail -5 "$work/nghttpd.log"))"

# --- start encore --------------------------------------------------------------------------------
"$ENCORE_BIN" serve --host 127.0.0.1 --port 0 --admin-port 0 ${encore_args[@]+"${encore_args[@]}"} \
  >"$work/encore.out" 2>"$work/encore.err" &
encore_pid=$!
pids+=("$encore_pid")
en_port=""
for i in $(seq 1 300); do
  en_port="$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/encore.err" | head -1)"
  [ -n "$en_port" ] && break
  kill -0 "$encore_pid" 2>/dev/null || die "encore exited: $(tail -5 "$work/encore.err")"
  sleep 0.1
done
[ -n "$en_port" ] || die "encore did not print 'listening on' within 30 s"
listen_line="$(grep -m1 'listening on' "$work/encore.err")"
log "$listen_line"
log "nghttpd $(nghttpd --version | awk '{print $2}') on 127.0.0.1:$ng_port"

encore_url="http://127.0.0.1:$en_port$grpc_path"
nghttpd_url="http://127.0.0.1:$ng_port$grpc_path"
headers=(-H 'content-type: application/grpc' -H 'te: trailers')

# --- sanity: both answer the request; Encore with grpc-status 0 ----------------------------------
out="$(nghttp -v -d "$body" "${headers[@]}" "$encore_url" 2>&1 | tr -d '\000' || true)"
grep -q 'grpc-status: 0' <<<"$out" || die "encore did not answer grpc-status: 0:
$out"
out="$(nghttp -v -d "$body" "${headers[@]}" "$nghttpd_url" 2>&1 | tr -d '\000' || true)"
grep -q ':status: 200' <<<"$out" || die "nghttpd did not answer the POST with 200:
$out"

# --- load ----------------------------------------------------------------------------------------
# run_h2load NAME URL N TAG -> prints req/s; fails when a request failed
run_h2load() {
  local name="$1" url="$2" count="$3" tag="$4" file line rps succeeded
  file="$work/h2load-$tag-$name.txt"
  if ! timeout 600 h2load -n "$count" -c "$conc" -m "$streams" -t 1 -d "$body" "${headers[@]}" "$url" >"$file" 2>&1; then
    log "h2load against $name failed:"; tail -20 "$file" >&2; return 1
  fi
  line="$(grep -m1 '^requests:' "$file")"
  succeeded="$(sed -n 's/.* \([0-9][0-9]*\) succeeded.*/\1/p' <<<"$line")"
  if [ "$succeeded" != "$count" ]; then
    log "$name: only ${succeeded:-?} of $count requests succeeded ($line)"; return 1
  fi
  rps="$(sed -n 's/^finished in [^,]*, \([0-9.][0-9.]*\) req\/s.*/\1/p' "$file" | head -1)"
  [ -n "$rps" ] || { log "cannot parse h2load output for $name"; cat "$file" >&2; return 1; }
  kill -0 "$encore_pid" 2>/dev/null || { log "encore died during the run"; tail -20 "$work/encore.err" >&2; return 1; }
  echo "$rps"
}

warm=$(( n / 10 )); [ "$warm" -ge 1000 ] || warm=1000
log "warm-up ($warm requests each)"
run_h2load encore "$encore_url" "$warm" warmup >/dev/null || die "warm-up against encore failed"
run_h2load nghttpd "$nghttpd_url" "$warm" warmup >/dev/null || die "warm-up against nghttpd failed"

enc=(); ngh=(); rat=()
for r in $(seq 1 "$rounds"); do
  if [ $(( r % 2 )) -eq 1 ]; then order="encore nghttpd"; else order="nghttpd encore"; fi
  for who in $order; do
    if [ "$who" = encore ]; then
      e="$(run_h2load encore "$encore_url" "$n" "r$r")" || die "round $r: encore run failed"
    else
      g="$(run_h2load nghttpd "$nghttpd_url" "$n" "r$r")" || die "round $r: nghttpd run failed"
    fi
  done
  enc+=("$e"); ngh+=("$g")
  rat+=("$(awk -v a="$e" -v b="$g" 'BEGIN { printf "%.4f", a / b }')")
  log "round $r: encore $e req/s, nghttpd $g req/s, ratio ${rat[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
enc_med="$(median "${enc[@]}")"
ngh_med="$(median "${ngh[@]}")"
rat_med="$(median "${rat[@]}")"
pass="$(awk -v r="$rat_med" -v b="$bar" 'BEGIN { print (r >= b) ? "true" : "false" }')"

# --- report --------------------------------------------------------------------------------------
echo
echo "Transport benchmark: h2load -n $n -c $conc -m $streams -t 1, POST $grpc_path (26-byte gRPC body)"
echo "$listen_line"
printf '%-7s %14s %14s %9s\n' round "encore req/s" "nghttpd req/s" ratio
for i in "${!enc[@]}"; do
  printf '%-7s %14.0f %14.0f %8.3fx\n' "$((i + 1))" "${enc[$i]}" "${ngh[$i]}" "${rat[$i]}"
done
printf '%-7s %14.0f %14.0f %8.3fx\n' median "$enc_med" "$ngh_med" "$rat_med"
if [ "$pass" = true ]; then verdict=PASS; else verdict=FAIL; fi
printf 'bar: encore/nghttpd >= %.2fx -> median ratio %.3fx: %s\n' "$bar" "$rat_med" "$verdict"

if [ "$json" = 1 ]; then
  rounds_json=""
  for i in "${!enc[@]}"; do
    [ -z "$rounds_json" ] || rounds_json="$rounds_json,"
    rounds_json="$rounds_json{\"round\":$((i + 1)),\"encore_rps\":${enc[$i]},\"nghttpd_rps\":${ngh[$i]},\"ratio\":${rat[$i]}}"
  done
  printf '{"encore_rps":%s,"nghttpd_rps":%s,"ratio":%s,"bar":%s,"pass":%s,"requests":%s,"rounds":[%s]}\n' \
    "$enc_med" "$ngh_med" "$rat_med" "$bar" "$pass" "$n" "$rounds_json"
fi

if [ "$check" = 1 ] && [ "$pass" != true ]; then exit 1; fi
exit 0
