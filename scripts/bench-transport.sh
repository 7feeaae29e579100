#!/usr/bin/env bash
# Transport benchmark: Encore vs nghttpd (the HTTP/2 ceiling of this machine) with the same
# gRPC-shaped request, measured with h2load in interleaved rounds.
#
#   scripts/bench-transport.sh [--rounds R] [--json] [--check] [-n N] [--encore-arg ARG]... [--keep DIR]
#   scripts/bench-transport.sh --pinned [--rounds R] [--json] [--check] [-n N] [--calls decide,health]
#
#   --rounds R        interleaved rounds (default 3, pinned 5); odd rounds run Encore first, even rounds nghttpd
#   --json            print one JSON line per call at the end:
#                     {"call":..,"encore_rps":..,"nghttpd_rps":..,"ratio":..,"bar":..,"pass":..,
#                      "encore_cpu_us":..,"nghttpd_cpu_us":..,"rounds":[..]}
#   --check           exit 1 when a median ratio is below its bar (default: report only)
#   -n N              requests per h2load run (default 60000, pinned 100000)
#   --encore-arg ARG  extra argument for `encore serve` (repeatable), e.g. --encore-arg --threads --encore-arg 1
#   --keep DIR        keep the raw h2load outputs and server logs in DIR
#   --pinned          issue 13's per-core comparison: `taskset -c 0 encore serve --threads 1
#                     --holdout-share 0` and `taskset -c 0 nghttpd` (one worker), `taskset -c 1 h2load
#                     -n 100000 -c 16 -m 8 -t 1`, 5 rounds, for Decide (the demo, 2 slots) and
#                     Health/Check; bars Decide >= 1.0x, Health/Check >= 1.3x nghttpd
#   --calls LIST      with --pinned: which calls (decide, health; default both)
#
# Environment: ENCORE_BIN (default <repo>/.build/release/encore; built with `swift build -c release`
# when missing and ENCORE_BIN is not set).
#
# Both servers get the same request. Health/Check: POST /grpc.health.v1.Health/Check with a
# Health/Check frame (5-byte prefix + HealthCheckRequest{service:"encore.v1.Decisions"}); Decide:
# POST /encore.v1.Decisions/Decide with scripts/make-bench-bodies.py's demo call (cart, 2 slots);
# headers content-type: application/grpc, te: trailers, at h2load -n N -c 16 -m 8 -t 1. nghttpd
# (`--no-tls`, one worker) answers the POST with a static file holding a gRPC response frame (for
# Decide, the bytes Encore answered to the same call), the same way ../shared/peers/bench.py
# measures its "A-post" row. Server CPU per request: user + system time of the server process
# (/proc/PID/stat fields 14-15, all threads) over the run, divided by the requests. The default
# (unpinned, Health/Check only) bar is encore >= 0.80x nghttpd.
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
pinned=0
calls=""
rounds_set=0
n_set=0

usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; rounds_set=1; shift 2 ;;
    --rounds=*) rounds="${1#*=}"; rounds_set=1; shift ;;
    --pinned) pinned=1; shift ;;
    --calls) calls="$2"; shift 2 ;;
    --json) json=1; shift ;;
    --check) check=1; shift ;;
    -n) n="$2"; n_set=1; shift 2 ;;
    --encore-arg) encore_args+=("$2"); shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-transport.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ "$pinned" = 1 ]; then
  [ "$rounds_set" = 1 ] || rounds=5
  [ "$n_set" = 1 ] || n=100000
  [ -n "$calls" ] || calls="decide,health"
  encore_args+=(--threads 1 --holdout-share 0)
  [ "$(nproc)" -ge 2 ] || { echo "bench-transport.sh: --pinned needs 2 cores" >&2; exit 2; }
  command -v taskset >/dev/null || { echo "bench-transport.sh: --pinned needs taskset (util-linux)" >&2; exit 2; }
else
  [ -z "$calls" ] || { echo "bench-transport.sh: --calls needs --pinned" >&2; exit 2; }
  calls="health"
fi
for c in ${calls//,/ }; do
  case "$c" in decide|health) ;; *) echo "bench-transport.sh: --calls takes decide and/or health, not $c" >&2; exit 2 ;; esac
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

# --- request bodies and nghttpd docroot ----------------------------------------------------------
python3 "$root/scripts/make-bench-bodies.py" "$work"
[ "$(wc -c <"$work/health.bin")" -eq 26 ] || die "health.bin has the wrong size"
mkdir -p "$work/www/grpc.health.v1.Health" "$work/www/encore.v1.Decisions"
# nghttpd's Health answer: a gRPC frame holding HealthCheckResponse{status: SERVING}
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
pin_server=(); pin_client=()
if [ "$pinned" = 1 ]; then pin_server=(taskset -c 0); pin_client=(taskset -c 1); fi

# --- start encore --------------------------------------------------------------------------------
${pin_server[@]+"${pin_server[@]}"} "$ENCORE_BIN" serve --host 127.0.0.1 --port 0 --admin-port 0 \
  ${encore_args[@]+"${encore_args[@]}"} >"$work/encore.out" 2>"$work/encore.err" &
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
headers=(-H 'content-type: application/grpc' -H 'te: trailers')

# nghttpd's Decide answer: the bytes Encore answers to the same call (a gRPC frame of a 2-slot
# DecideResponse), so both send the same amount.
nghttp -d "$work/decide.bin" "${headers[@]}" "http://127.0.0.1:$en_port/encore.v1.Decisions/Decide" \
  >"$work/www/encore.v1.Decisions/Decide" 2>"$work/nghttp-decide.err" || die "Decide against encore failed: $(tail -3 "$work/nghttp-decide.err")"
[ "$(wc -c <"$work/www/encore.v1.Decisions/Decide")" -gt 5 ] || die "encore answered Decide with an empty body"

# --- start nghttpd -------------------------------------------------------------------------------
ng_port="$(free_port)" || die "no free port"
${pin_server[@]+"${pin_server[@]}"} nghttpd --no-tls -a 127.0.0.1 -d "$work/www" "$ng_port" >"$work/nghttpd.log" 2>&1 &
ng_pid=$!
pids+=($ng_pid)
wait_port "$ng_port" 10 || die "nghttpd did not start (see log: $(tail -5 "$work/nghttpd.log"))"
log "nghttpd $(nghttpd --version | awk '{print $2}') on 127.0.0.1:$ng_port"

# --- load ----------------------------------------------------------------------------------------
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime + stime (fields 14, 15)
clk_tck="$(getconf CLK_TCK)"
# run_h2load NAME URL BODY N TAG -> prints "req/s cpu_us_per_request"; fails when a request failed
run_h2load() {
  local name="$1" url="$2" body="$3" count="$4" tag="$5" file line rps succeeded pid before after
  file="$work/h2load-$tag-$name.txt"
  pid="$encore_pid"; [ "$name" = nghttpd ] && pid="$ng_pid"
  before="$(cpu_ticks "$pid")"
  if ! timeout 600 ${pin_client[@]+"${pin_client[@]}"} h2load -n "$count" -c "$conc" -m "$streams" -t 1 -d "$body" \
      "${headers[@]}" "$url" >"$file" 2>&1; then
    log "h2load against $name failed:"; tail -20 "$file" >&2; return 1
  fi
  after="$(cpu_ticks "$pid")"
  line="$(grep -m1 '^requests:' "$file")"
  succeeded="$(sed -n 's/.* \([0-9][0-9]*\) succeeded.*/\1/p' <<<"$line")"
  if [ "$succeeded" != "$count" ]; then
    log "$name: only ${succeeded:-?} of $count requests succeeded ($line)"; return 1
  fi
  rps="$(sed -n 's/^finished in [^,]*, \([0-9.][0-9.]*\) req\/s.*/\1/p' "$file" | head -1)"
  [ -n "$rps" ] || { log "cannot parse h2load output for $name"; cat "$file" >&2; return 1; }
  kill -0 "$encore_pid" 2>/dev/null || { log "encore died during the run"; tail -20 "$work/encore.err" >&2; return 1; }
  echo "$rps $(awk -v t=$(( after - before )) -v hz="$clk_tck" -v n="$count" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

status=0
json_lines=()
for call in ${calls//,/ }; do
  if [ "$call" = decide ]; then
    grpc_path="/encore.v1.Decisions/Decide"; body="$work/decide.bin"; bar=1.0; label="Decide (demo, 2 slots)"
  else
    grpc_path="/grpc.health.v1.Health/Check"; body="$work/health.bin"; label="Health/Check"
    if [ "$pinned" = 1 ]; then bar=1.3; else bar=0.80; fi
  fi
  encore_url="http://127.0.0.1:$en_port$grpc_path"
  nghttpd_url="http://127.0.0.1:$ng_port$grpc_path"

  # --- sanity: both answer the request; Encore with grpc-status 0 --------------------------------
  out="$(nghttp -v -d "$body" "${headers[@]}" "$encore_url" 2>&1 | tr -d '\000' || true)"
  grep -q 'grpc-status: 0' <<<"$out" || die "encore did not answer $grpc_path with grpc-status: 0:
$out"
  out="$(nghttp -v -d "$body" "${headers[@]}" "$nghttpd_url" 2>&1 | tr -d '\000' || true)"
  grep -q ':status: 200' <<<"$out" || die "nghttpd did not answer the POST of $grpc_path with 200:
$out"

  warm=$(( n / 10 )); [ "$warm" -ge 1000 ] || warm=1000
  log "$label: warm-up ($warm requests each)"
  run_h2load encore "$encore_url" "$body" "$warm" "$call-warmup" >/dev/null || die "warm-up against encore failed"
  run_h2load nghttpd "$nghttpd_url" "$body" "$warm" "$call-warmup" >/dev/null || die "warm-up against nghttpd failed"

  enc=(); ngh=(); rat=(); ecpu=(); gcpu=()
  for r in $(seq 1 "$rounds"); do
    if [ $(( r % 2 )) -eq 1 ]; then order="encore nghttpd"; else order="nghttpd encore"; fi
    for who in $order; do
      if [ "$who" = encore ]; then
        read -r e ec <<<"$(run_h2load encore "$encore_url" "$body" "$n" "$call-r$r")" || die "round $r: encore run failed"
      else
        read -r g gc <<<"$(run_h2load nghttpd "$nghttpd_url" "$body" "$n" "$call-r$r")" || die "round $r: nghttpd run failed"
      fi
    done
    [ -n "${e:-}" ] && [ -n "${g:-}" ] || die "round $r: a run failed"
    enc+=("$e"); ngh+=("$g"); ecpu+=("$ec"); gcpu+=("$gc")
    rat+=("$(awk -v a="$e" -v b="$g" 'BEGIN { printf "%.4f", a / b }')")
    log "$label round $r: encore $e req/s ($ec us CPU/req), nghttpd $g req/s ($gc us CPU/req), ratio ${rat[-1]}, load $(cut -d' ' -f1 /proc/loadavg)"
  done

  enc_med="$(median "${enc[@]}")"; ngh_med="$(median "${ngh[@]}")"; rat_med="$(median "${rat[@]}")"
  ecpu_med="$(median "${ecpu[@]}")"; gcpu_med="$(median "${gcpu[@]}")"
  pass="$(awk -v r="$rat_med" -v b="$bar" 'BEGIN { print (r >= b) ? "true" : "false" }')"
  [ "$pass" = true ] || status=1

  # --- report ------------------------------------------------------------------------------------
  echo
  echo "$label: ${pin_client[*]:+${pin_client[*]} }h2load -n $n -c $conc -m $streams -t 1, POST $grpc_path ($(wc -c <"$body")-byte gRPC body)"
  echo "$listen_line"
  [ "$pinned" = 1 ] && echo "servers pinned with taskset -c 0, h2load with taskset -c 1; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%-7s %14s %14s %9s %14s %14s\n' round "encore req/s" "nghttpd req/s" ratio "encore us/req" "nghttpd us/req"
  for i in "${!enc[@]}"; do
    printf '%-7s %14.0f %14.0f %8.3fx %14.2f %14.2f\n' "$((i + 1))" "${enc[$i]}" "${ngh[$i]}" "${rat[$i]}" "${ecpu[$i]}" "${gcpu[$i]}"
  done
  printf '%-7s %14.0f %14.0f %8.3fx %14.2f %14.2f\n' median "$enc_med" "$ngh_med" "$rat_med" "$ecpu_med" "$gcpu_med"
  if [ "$pass" = true ]; then verdict=PASS; else verdict=FAIL; fi
  printf 'bar: encore/nghttpd >= %.2fx -> median ratio %.3fx: %s (server CPU per request: encore %s us, nghttpd %s us)\n' \
    "$bar" "$rat_med" "$verdict" "$ecpu_med" "$gcpu_med"

  rounds_json=""
  for i in "${!enc[@]}"; do
    [ -z "$rounds_json" ] || rounds_json="$rounds_json,"
    rounds_json="$rounds_json{\"round\":$((i + 1)),\"encore_rps\":${enc[$i]},\"nghttpd_rps\":${ngh[$i]},\"ratio\":${rat[$i]},\"encore_cpu_us\":${ecpu[$i]},\"nghttpd_cpu_us\":${gcpu[$i]}}"
  done
  json_lines+=("$(printf '{"call":"%s","pinned":%s,"encore_rps":%s,"nghttpd_rps":%s,"ratio":%s,"bar":%s,"pass":%s,"encore_cpu_us":%s,"nghttpd_cpu_us":%s,"requests":%s,"rounds":[%s]}' \
    "$call" "$([ "$pinned" = 1 ] && echo true || echo false)" "$enc_med" "$ngh_med" "$rat_med" "$bar" "$pass" "$ecpu_med" "$gcpu_med" "$n" "$rounds_json")")
done

if [ "$json" = 1 ]; then printf '%s\n' "${json_lines[@]}"; fi
if [ "$check" = 1 ] && [ "$status" != 0 ]; then exit 1; fi
exit 0
