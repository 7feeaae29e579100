#!/usr/bin/env bash
# Quick allocation and instruction gate for CI (scripts/test.sh runs it): the micro-benchmark
# workloads of Benchmarks/ (EncoreBenchWorkloads: decision core, Decide codec, gRPC framing,
# snapshot load) run in the small `encore-microbench` executable of the root package (release),
#   - mallocs: natively, with the LD_PRELOAD counter of scripts/malloc-count/ (exact counts);
#   - instructions: under valgrind's callgrind, collecting only inside the measured call
#     (--toggle-collect=encore_microbench_measure); deterministic for a given binary and CPU,
#     unlike hardware counters, which this project's VMs do not have.
# and compares them, per operation, with Benchmarks/Thresholds/Quick/<Target>.<benchmark>.json:
#   {"mallocCountTotal": <allocations per operation>, "instructions": <instructions per operation>}
# Then the whole server (Server.Decide, Server.HealthCheck): a stripped copy of the release
# `encore serve --threads 1 --holdout-share 0` (the demo) runs under callgrind with
# instrumentation off until start-up, data loading and a warm-up are done; h2load (outside
# valgrind) then sends N and 2N calls (-c 4 -m 8), each run's count dumped with callgrind_control,
# and instructions per call = (count(2N) - count(N)) / N, so connection set-up cancels and the
# figure is the marginal cost of a call on a warm connection (all threads, nghttp2, OpenSSL-free
# h2c, libc; the kernel is not counted). Thresholds {"instructions": ...} in Server.<call>.json.
# (package-benchmark's metric names; its own thresholds, for `swift package benchmark`, are the
# *.p90.json files next to that folder and are checked by scripts/bench-micro.sh --check).
#
#   scripts/bench-quick.sh            check; exit 1 when a benchmark is above its thresholds
#   scripts/bench-quick.sh --update   rewrite Benchmarks/Thresholds/Quick/ from this machine
#   scripts/bench-quick.sh --only NAME   one benchmark (see .build/release/encore-microbench --list,
#                                        or Server.Decide / Server.HealthCheck)
#   scripts/bench-quick.sh --server   only the whole-server rows;  --no-server: only the micro-benchmarks
#   SERVER_CALLS=N                    calls per whole-server measurement (default 2000; the second run sends 2N)
#   SERVER_H2LOAD='-c 4 -m 8'         h2load's connections and streams for the whole-server runs
#   BENCH_QUICK_KEEP=DIR              keep callgrind's outputs in DIR (callgrind_annotate DIR/server.cg.2 shows
#                                     where a Decide's instructions go; the shared libraries keep their symbols)
#
# Tolerances: allocations none (any extra allocation per operation fails, even one every N
# operations); instructions +5% per operation (INSTRUCTIONS_TOLERANCE_PCT). A figure 5% or more
# below its threshold passes with a note to tighten it with --update. Wall clock is printed for
# information only and never gated. Instruction counts depend on the compiler and on which
# glibc string routines the CPU selects: refresh the thresholds with --update (and say why in the
# commit) after a toolchain change or on a different kind of machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=check
only=""
micro=1
server=1
while [ $# -gt 0 ]; do
  case "$1" in
    --update) mode=update; shift ;;
    --check) mode=check; shift ;;
    --only) only="$2"; shift 2 ;;
    --server) micro=0; shift ;;
    --no-server) server=0; shift ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-quick: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$only" in Server.*) micro=0 ;; ?*) server=0 ;; esac
tolerance="${INSTRUCTIONS_TOLERANCE_PCT:-5}"
server_calls="${SERVER_CALLS:-2000}"
case "$server_calls" in ''|*[!0-9]*|0) echo "bench-quick: SERVER_CALLS needs a positive integer" >&2; exit 2 ;; esac
thresholds="$root/Benchmarks/Thresholds/Quick"
log() { echo "bench-quick: $*" >&2; }

command -v valgrind >/dev/null || "$root/scripts/install-deps.sh" --test >&2
command -v valgrind >/dev/null || { log "valgrind missing (apt-get install valgrind)"; exit 2; }
if [ "$server" = 1 ]; then
  command -v h2load >/dev/null || "$root/scripts/install-deps.sh" --test >&2
  for t in h2load callgrind_control strip; do command -v "$t" >/dev/null || { log "$t missing (scripts/install-deps.sh --test)"; exit 2; }; done
fi
start=$(date +%s)
products=()
[ "$micro" = 0 ] || products+=(encore-microbench)
[ "$server" = 0 ] || products+=(encore)
for product in "${products[@]}"; do
  (cd "$root" && swift build -c release --product "$product" >&2)
done
bin="$root/.build/release/encore-microbench"
log "built ${products[*]} (release) in $(( $(date +%s) - start ))s"

work="$(mktemp -d "${TMPDIR:-/tmp}/encore-bench-quick.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "${BENCH_QUICK_KEEP:-}" ]; then mkdir -p "$BENCH_QUICK_KEEP" && cp -r "$work"/. "$BENCH_QUICK_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
: >"$work/native.jsonl"
: >"$work/server.jsonl"

if [ "$micro" = 1 ]; then
  gcc -O2 -shared -fPIC -o "$work/malloc_count.so" "$root/scripts/malloc-count/malloc_count.c"
  only_args=()
  [ -z "$only" ] || only_args=(--only "$only")
  # Allocations (and informational wall clock), natively, all benchmarks in one process.
  LD_PRELOAD="$work/malloc_count.so" "$bin" ${only_args[@]+"${only_args[@]}"} >"$work/native.jsonl"
  # Instructions: one callgrind run per benchmark, counting only the measured call.
  while read -r name; do
    [ -z "$only" ] || [ "$name" = "$only" ] || continue
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=encore_microbench_measure \
      --callgrind-out-file="$work/callgrind.$name.out" "$bin" --only "$name" >"$work/callgrind.$name.jsonl" \
      2>"$work/callgrind.$name.log" || { log "callgrind run of $name failed:"; tail -20 "$work/callgrind.$name.log" >&2; exit 1; }
  done < <("$bin" --list)
fi

if [ "$server" = 1 ]; then
  # The whole server: instrumentation off (valgrind's JIT only) through start-up, the demo's data
  # loading and a warm-up of both calls; then on, and per call N and 2N calls from h2load, each
  # run's count dumped (callgrind_control -d writes the counts since the last zero/dump).
  server_start=$(date +%s)
  # Valgrind 3.19 cannot read the DWARF 5 debug info Swift writes: measure a stripped copy.
  strip -o "$work/encore" "$root/.build/release/encore"
  python3 "$root/scripts/make-bench-bodies.py" "$work"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/server.cg" "$work/encore" serve \
    --host 127.0.0.1 --port 0 --admin-port 0 --threads 1 --holdout-share 0 \
    >"$work/server.out" 2>"$work/server.err" </dev/null &
  server_pid=$!
  port=""
  for _ in $(seq 1 1200); do  # up to 4 minutes: a loaded machine under valgrind
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.err" | head -1)"
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || { log "the server exited under valgrind:"; tail -20 "$work/server.err" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "$port" ] || { log "the server did not print 'listening on' under valgrind within 4 minutes"; tail -20 "$work/server.err" >&2; exit 1; }
  log "server up under valgrind in $(( $(date +%s) - server_start ))s"
  h2() {  # h2 PATH BODY N -> fails unless all N calls succeeded
    local file="$work/h2load.$RANDOM"
    h2load -n "$3" ${SERVER_H2LOAD:--c 4 -m 8} -t 1 -d "$2" -H 'content-type: application/grpc' -H 'te: trailers' \
      "http://127.0.0.1:$port/$1" >"$file" 2>&1 || { log "h2load $1 failed:"; tail -20 "$file" >&2; return 1; }
    grep -q "$3 succeeded, 0 failed" "$file" || { log "h2load $1 saw failed calls:"; grep '^requests:' "$file" >&2; return 1; }
  }
  decide_path=encore.v1.Decisions/Decide
  health_path=grpc.health.v1.Health/Check
  # Every call must be a full, successful decision or health answer (grpc-status 0), not an error
  # that h2load's HTTP 200 would hide.
  if command -v nghttp >/dev/null; then
    for call in "$decide_path decide.bin" "$health_path health.bin"; do
      set -- $call
      answer="$(nghttp -v -d "$work/$2" -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$port/$1" 2>&1 | tr -d '\000' || true)"
      grep -q 'grpc-status: 0' <<<"$answer" || { log "$1 did not answer grpc-status 0:"; echo "$answer" | tail -20 >&2; exit 1; }
    done
  fi
  h2 "$decide_path" "$work/decide.bin" 1000
  h2 "$health_path" "$work/health.bin" 1000
  callgrind_control -i on "$server_pid" >/dev/null 2>&1 || { log "callgrind_control -i on failed"; exit 1; }
  dumps=0
  for call in "Server.Decide $decide_path decide.bin" "Server.HealthCheck $health_path health.bin"; do
    set -- $call
    [ -z "$only" ] || [ "$only" = "$1" ] || continue
    counts=()
    callgrind_control -z "$server_pid" >/dev/null 2>&1 || { log "callgrind_control -z failed"; exit 1; }
    for n in "$server_calls" $(( 2 * server_calls )); do
      h2 "$2" "$work/$3" "$n"
      callgrind_control -d "$server_pid" >/dev/null 2>&1 || { log "callgrind_control -d failed"; exit 1; }
      dumps=$(( dumps + 1 ))
      file="$work/server.cg.$dumps"
      [ -f "$file" ] || { log "callgrind wrote no dump $file"; ls "$work" >&2; exit 1; }
      counts+=("$(awk '/^totals:/ { print $2 }' "$file")")
    done
    printf '{"name": "%s", "calls": %s, "count_n": %s, "count_2n": %s}\n' "$1" "$server_calls" "${counts[0]}" "${counts[1]}" \
      >>"$work/server.jsonl"
  done
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  log "whole-server measurement took $(( $(date +%s) - server_start ))s"
fi

status=0
python3 - "$mode" "$tolerance" "$thresholds" "$work" <<'PY' || status=$?
import glob, json, os, re, sys

mode, tolerance, thresholds, work = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
native = {}
for line in open(os.path.join(work, "native.jsonl")):
    row = json.loads(line)
    native[row["name"]] = row
rows = []
for name, row in native.items():
    if row["mallocs"] is None:
        sys.exit("bench-quick: the malloc counter was not loaded (LD_PRELOAD)")
    out = open(os.path.join(work, f"callgrind.{name}.out")).read()
    m = re.search(r"^(?:totals|summary): (\d+)", out, re.M)
    if not m:
        sys.exit(f"bench-quick: no instruction total in callgrind's output for {name}")
    cg = json.loads(open(os.path.join(work, f"callgrind.{name}.jsonl")).read().splitlines()[-1])
    if int(m.group(1)) == 0:
        sys.exit(f"bench-quick: callgrind counted 0 instructions for {name} (measured symbol not found?)")
    rows.append({"name": name, "mallocs": row["mallocs"] / row["iterations"],
                 "instructions": int(m.group(1)) / cg["iterations"], "ns_per_op": row["ns_per_op"],
                 "iterations": row["iterations"]})
# Whole-server rows: instructions only (allocations per request: scripts/count-allocations.sh).
for line in open(os.path.join(work, "server.jsonl")):
    row = json.loads(line)
    per_call = (row["count_2n"] - row["count_n"]) / row["calls"]
    if per_call <= 0:
        sys.exit(f"bench-quick: {row['name']}: the second run ({row['count_2n']}) did not count more than the first "
                 f"({row['count_n']}): was instrumentation on?")
    print(f"bench-quick: {row['name']}: {row['count_n']} instructions for {row['calls']} calls, {row['count_2n']} "
          f"for {2 * row['calls']}: {per_call:.0f} per call on a warm connection", file=sys.stderr)
    rows.append({"name": row["name"], "mallocs": None, "instructions": per_call, "ns_per_op": None})

if mode == "update":
    os.makedirs(thresholds, exist_ok=True)
    for r in rows:
        data = {"instructions": round(r["instructions"])}
        if r["mallocs"] is not None:
            data["mallocCountTotal"] = round(r["mallocs"], 4)
        with open(os.path.join(thresholds, r["name"] + ".json"), "w") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"bench-quick: wrote {r['name']}.json: {data}")
    sys.exit(0)

failures, notes = [], []
print(f"{'benchmark':48s} {'mallocs/op':>18s} {'instructions/op':>26s} {'ns/op (info)':>13s}")
for r in rows:
    path = os.path.join(thresholds, r["name"] + ".json")
    if not os.path.exists(path):
        failures.append(f"{r['name']}: no threshold file {path} (scripts/bench-quick.sh --update)")
        continue
    t = json.load(open(path))
    max_instr = t["instructions"] * (1 + tolerance / 100)
    change = (r["instructions"] / t["instructions"] - 1) * 100
    verdict = []
    if r["mallocs"] is not None and round(r["mallocs"], 4) > t["mallocCountTotal"]:
        failures.append(f"{r['name']}: {r['mallocs']:.4f} mallocs per operation, threshold {t['mallocCountTotal']}")
        verdict.append("MALLOCS WORSE")
    if r["instructions"] > max_instr:
        failures.append(f"{r['name']}: {r['instructions']:.0f} instructions per operation, {change:+.1f}% over its "
                        f"threshold {t['instructions']} (limit +{tolerance:g}% = {max_instr:.0f})")
        verdict.append("INSTRUCTIONS WORSE")
    if r["instructions"] < t["instructions"] * (1 - tolerance / 100) or (
            r["mallocs"] is not None and round(r["mallocs"], 4) < t["mallocCountTotal"]):
        notes.append(f"{r['name']} is better than its thresholds: consider scripts/bench-quick.sh --update")
    mallocs = (f"{r['mallocs']:>8.4g} (max {t['mallocCountTotal']:>6g})" if r["mallocs"] is not None
               else f"{'-':>8s} {'':12s}")
    ns = f"{r['ns_per_op']:>13.1f}" if r["ns_per_op"] is not None else f"{'-':>13s}"
    print(f"{r['name']:48s} {mallocs} {r['instructions']:>10.0f} ({change:+5.1f}% of {t['instructions']}) {ns}"
          + ("  " + ", ".join(verdict) if verdict else ""))
for n in notes:
    print("bench-quick: note: " + n)
if failures:
    for f in failures:
        print("bench-quick: FAIL: " + f, file=sys.stderr)
    sys.exit(1)
print(f"bench-quick: ok: allocations at or below, instructions within +{tolerance:g}% of Benchmarks/Thresholds/Quick")
PY
log "took $(( $(date +%s) - start ))s (build included)"
exit $status
