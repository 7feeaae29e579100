#!/usr/bin/env bash
# Micro-benchmarks (package-benchmark, ordo-one/benchmark 1.38.1) of Encore's hot paths: the
# decision core, the Decide codec, snapshot loading and gRPC framing. They live in their own
# package, Benchmarks/, which builds in Benchmarks/.build (a plain `swift build` of the root
# never pulls package-benchmark in).
#
#   scripts/bench-micro.sh            full run: wall clock, throughput, instructions, mallocs
#   scripts/bench-micro.sh --check    quick run (BENCHMARK_QUICK=1), mallocs and instructions only,
#                                     compared with Benchmarks/Thresholds/*.p90.json; exits 1 when
#                                     any benchmark allocates more or runs >10% more instructions
#   scripts/bench-micro.sh --update   rewrite Benchmarks/Thresholds/ from a full-length run
#   extra arguments go to `swift package benchmark` (e.g. --filter decide, --target Codec)
#
# CI does not run this (a cold build of this package takes 16+ minutes): it runs scripts/bench-quick.sh,
# which measures the same workloads (EncoreBenchWorkloads) for mallocs and callgrind instructions.
# Thresholds never cover wall clock. Instructions come from the CPU's performance counters
# (perf_event_open): on a machine without them (most VMs, including this project's) package-benchmark
# records no instruction samples, so only allocations are checked there; the script says so.
# Debian packages: only what the root package needs (libnghttp2-dev, libssl-dev, pkg-config, via
# scripts/install-deps.sh). With the MallocInterposer trait package-benchmark needs no jemalloc.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=run
if [ $# -gt 0 ]; then
  case "$1" in
    --check) mode=check; shift ;;
    --update) mode=update; shift ;;
    --run) shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
  esac
fi

"$root/scripts/install-deps.sh" >&2
cd "$root/Benchmarks"
start=$(date +%s)
# Build first, on its own, so build errors are not mistaken for benchmark results.
swift build -c release >&2
echo "bench-micro: built in $(( $(date +%s) - start ))s" >&2

pmu=no
if [ -r /proc/sys/kernel/perf_event_paranoid ] && python3 - <<'PY' 2>/dev/null; then pmu=yes; fi
import ctypes, os, struct, sys
# perf_event_open(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, exclude_kernel) on this thread.
attr = bytearray(128)
struct.pack_into("IIQ", attr, 0, 0, 128, 1)
struct.pack_into("Q", attr, 40, (1 << 0) | (1 << 5) | (1 << 6))  # disabled, exclude_kernel, exclude_hv
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(298 if os.uname().machine == "x86_64" else 241, bytes(attr), 0, -1, -1, 0)
sys.exit(0 if fd >= 0 else 1)
PY
if [ "$pmu" = no ]; then
  echo "bench-micro: no hardware performance counters here (perf_event_open fails): instructions are not measured, only allocations are checked" >&2
fi

case "$mode" in
  run)
    swift package benchmark --no-progress "$@"
    ;;
  update)
    BENCHMARK_THRESHOLDS=1 swift package --allow-writing-to-package-directory benchmark thresholds update --no-progress "$@"
    if [ "$pmu" = no ]; then
      echo "bench-micro: thresholds written without instruction counts (no performance counters here); run --update on a machine with them to add instructions" >&2
    fi
    ls Thresholds
    ;;
  check)
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    set +e
    BENCHMARK_QUICK=1 BENCHMARK_THRESHOLDS=1 swift package benchmark thresholds check --no-progress "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    echo "bench-micro: check took $(( $(date +%s) - start ))s (build included)" >&2
    if grep -q "is WORSE than the defined thresholds" "$log"; then
      echo "bench-micro: FAIL: allocations or instructions above the checked-in thresholds (Benchmarks/Thresholds)" >&2
      exit 1
    fi
    if grep -q "is BETTER than the defined thresholds" "$log"; then
      echo "bench-micro: ok, and better than the thresholds: consider scripts/bench-micro.sh --update" >&2
      exit 0
    fi
    if [ "$status" -ne 0 ]; then
      echo "bench-micro: FAIL: swift package benchmark exited with $status" >&2
      exit "$status"
    fi
    echo "bench-micro: ok (within thresholds)" >&2
    ;;
esac
