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
# (package-benchmark's metric names; its own thresholds, for `swift package benchmark`, are the
# *.p90.json files next to that folder and are checked by scripts/bench-micro.sh --check).
#
#   scripts/bench-quick.sh            check; exit 1 when a benchmark is above its thresholds
#   scripts/bench-quick.sh --update   rewrite Benchmarks/Thresholds/Quick/ from this machine
#   scripts/bench-quick.sh --only NAME   one benchmark (see .build/release/encore-microbench --list)
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
while [ $# -gt 0 ]; do
  case "$1" in
    --update) mode=update; shift ;;
    --check) mode=check; shift ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-quick: unknown argument $1" >&2; exit 2 ;;
  esac
done
tolerance="${INSTRUCTIONS_TOLERANCE_PCT:-5}"
thresholds="$root/Benchmarks/Thresholds/Quick"
log() { echo "bench-quick: $*" >&2; }

command -v valgrind >/dev/null || "$root/scripts/install-deps.sh" --test >&2
command -v valgrind >/dev/null || { log "valgrind missing (apt-get install valgrind)"; exit 2; }
start=$(date +%s)
(cd "$root" && swift build -c release --product encore-microbench >&2)
bin="$root/.build/release/encore-microbench"
log "built encore-microbench (release) in $(( $(date +%s) - start ))s"

work="$(mktemp -d "${TMPDIR:-/tmp}/encore-bench-quick.XXXXXX")"
trap 'rm -rf "$work"' EXIT
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

if mode == "update":
    os.makedirs(thresholds, exist_ok=True)
    for r in rows:
        data = {"mallocCountTotal": round(r["mallocs"], 4), "instructions": round(r["instructions"])}
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
    verdict = []
    if round(r["mallocs"], 4) > t["mallocCountTotal"]:
        failures.append(f"{r['name']}: {r['mallocs']:.4f} mallocs per operation, threshold {t['mallocCountTotal']}")
        verdict.append("MALLOCS WORSE")
    if r["instructions"] > max_instr:
        failures.append(f"{r['name']}: {r['instructions']:.0f} instructions per operation, threshold "
                        f"{t['instructions']} +{tolerance:g}% = {max_instr:.0f}")
        verdict.append("INSTRUCTIONS WORSE")
    if r["instructions"] < t["instructions"] * (1 - tolerance / 100) or round(r["mallocs"], 4) < t["mallocCountTotal"]:
        notes.append(f"{r['name']} is better than its thresholds: consider scripts/bench-quick.sh --update")
    change = (r["instructions"] / t["instructions"] - 1) * 100
    print(f"{r['name']:48s} {r['mallocs']:>8.4g} (max {t['mallocCountTotal']:>6g}) "
          f"{r['instructions']:>10.0f} ({change:+5.1f}% of {t['instructions']}) {r['ns_per_op']:>13.1f}"
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
