#!/usr/bin/env bash
# Runs Encore's libFuzzer targets (docs/fuzzing.md). The target bodies are in
# Sources/EncoreFuzzTargets; the executable `encore-fuzz` (Fuzz/Driver) is built here with
# Swift's `--sanitize=fuzzer --sanitize=address`, in its own build path (.build/fuzz), so a plain
# `swift build` is neither slowed nor invalidated. Debug configuration: swiftc's whole-module
# optimization (every release build) drops the sanitizer coverage instrumentation.
#
#   scripts/fuzz.sh --list                 the target names
#   scripts/fuzz.sh TARGET SECONDS [ARGS]  build if needed, fuzz TARGET for SECONDS; extra ARGS go
#                                          to libFuzzer (e.g. -jobs=2, -max_len=65536)
#   scripts/fuzz.sh --all SECONDS          every target, SECONDS in total (split evenly; CI: 60)
#   scripts/fuzz.sh --build                only build
#   scripts/fuzz.sh --make-seeds           rewrite Fuzz/Corpus/ from FuzzSeeds (then review the diff)
#
# ENCORE_FUZZ_NO_BUILD=1 skips the build when encore-fuzz exists (for several runs in parallel:
# `scripts/fuzz.sh --build` once, then each run with ENCORE_FUZZ_NO_BUILD=1).
#
# Inputs: the checked-in seeds (Fuzz/Corpus/TARGET) and regressions (Fuzz/Regressions/TARGET) are
# read, never written; new inputs go to $ENCORE_FUZZ_WORK/corpus/TARGET (default .build/fuzz-work)
# and crash, leak, timeout and out-of-memory inputs to $ENCORE_FUZZ_ARTIFACTS (default
# $ENCORE_FUZZ_WORK/artifacts/TARGET/). At the end: executions and crashes per target; the exit
# status is 1 when any target crashed. To keep a crash: fix it, then copy the input into
# Fuzz/Regressions/TARGET/ (swift test replays it: CorpusReplayTests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_path="$root/.build/fuzz"
binary="$build_path/debug/encore-fuzz"
work="${ENCORE_FUZZ_WORK:-$root/.build/fuzz-work}"

targets() { ls Fuzz/Corpus; }

build() {
  if [ -n "${ENCORE_FUZZ_NO_BUILD:-}" ] && [ -x "$binary" ]; then return; fi
  # The fuzz build path starts from the dependencies the normal build already resolved (CI runs
  # `swift build` first; no network is needed then).
  if [ ! -d "$build_path/checkouts" ] && [ -d "$root/.build/checkouts" ]; then
    mkdir -p "$build_path"
    cp -R "$root/.build/checkouts" "$root/.build/repositories" "$build_path/" 2>/dev/null || true
    cp "$root/.build/workspace-state.json" "$build_path/" 2>/dev/null || true
  fi
  # gold warns "Cannot export local symbol" for every instrumented module: harmless, filtered.
  set +e
  # SwiftPM hands the compiler `-sanitize=fuzzer` and `-sanitize=address` as two flags, of which
  # the compiler keeps the last: the modules then get no coverage instrumentation (libFuzzer runs
  # blind, `corp: 1/1b`). The combined -Xswiftc flag instruments them; --sanitize still tells
  # SwiftPM to link libFuzzer's main.
  ENCORE_FUZZ_BUILD=1 swift build -c debug --product encore-fuzz --build-path "$build_path" \
    --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address 2>&1 \
    | grep -v "Cannot export local symbol" >&2
  local status="${PIPESTATUS[0]}"
  set -e
  [ "$status" -eq 0 ] && [ -x "$binary" ] || { echo "fuzz.sh: the build of encore-fuzz failed" >&2; exit 1; }
}

summary=()
failed=0

# run TARGET SECONDS [libFuzzer args...]
run() {
  local target="$1" seconds="$2"
  shift 2
  [ -d "Fuzz/Corpus/$target" ] || { echo "fuzz.sh: unknown target '$target' (scripts/fuzz.sh --list)" >&2; exit 2; }
  local corpus="$work/corpus/$target"
  local artifacts="${ENCORE_FUZZ_ARTIFACTS:-$work/artifacts/$target}"
  mkdir -p "$corpus" "$artifacts" "Fuzz/Regressions/$target"
  local before log
  # Failures are crash-, leak-, timeout- and oom- inputs; slow-unit- inputs (a unit over 10 s, which
  # a descheduled process on a loaded machine can produce) are reported, not failed.
  failures() { find "$artifacts" -maxdepth 1 -type f ! -name 'slow-unit-*' | wc -l; }
  slow_units() { find "$artifacts" -maxdepth 1 -type f -name 'slow-unit-*' | wc -l; }
  before=$(failures)
  local slow_before
  slow_before=$(slow_units)
  log="$(mktemp)"
  echo "== fuzz $target for ${seconds}s"
  set +e
  # SWIFT_BACKTRACE off: Swift's own backtracer would symbolicate a trap for minutes before
  # libFuzzer's handler saves the input. -timeout=30: on a loaded machine a unit can be descheduled
  # for seconds (the slowest seed takes milliseconds).
  SWIFT_BACKTRACE=enable=no ENCORE_FUZZ_TARGET="$target" "$binary" "$corpus" "Fuzz/Corpus/$target" \
    "Fuzz/Regressions/$target" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$@" 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(INITED|DONE|pulse)|ERROR|==[0-9]+==|fuzz check failed|artifact|Fatal error" >&2
  set -e
  local executions crashes
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(($(failures) - before))
  local slow=$(($(slow_units) - slow_before))
  rm -f "$log"
  summary+=("$(printf '%-16s %12s executions  %d crashes  %d slow units' "$target" "${executions:-?}" "$crashes" "$slow")")
  if [ "$crashes" -gt 0 ] || [ -z "$executions" ]; then failed=1; fi
}

print_summary() {
  echo "== fuzz summary (artifacts: ${ENCORE_FUZZ_ARTIFACTS:-$work/artifacts/TARGET})"
  printf '%s\n' "${summary[@]}"
  exit "$failed"
}

case "${1:-}" in
  --list)
    targets
    ;;
  --build)
    build
    ;;
  --make-seeds)
    build
    rm -rf Fuzz/Corpus.new && mkdir -p Fuzz/Corpus.new
    ENCORE_FUZZ_WRITE_SEEDS="$root/Fuzz/Corpus.new" "$binary" -runs=0 >/dev/null 2>&1 || true
    [ -n "$(ls Fuzz/Corpus.new)" ] || { echo "fuzz.sh: no seeds were written" >&2; exit 1; }
    rm -rf Fuzz/Corpus && mv Fuzz/Corpus.new Fuzz/Corpus
    targets
    ;;
  --all)
    total="${2:?usage: scripts/fuzz.sh --all SECONDS}"
    build
    names=($(targets))
    each=$((total / ${#names[@]}))
    [ "$each" -ge 1 ] || each=1
    for target in "${names[@]}"; do run "$target" "$each"; done
    print_summary
    ;;
  "" | -h | --help)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    target="$1"
    seconds="${2:?usage: scripts/fuzz.sh TARGET SECONDS}"
    shift 2
    build
    run "$target" "$seconds" "$@"
    print_summary
    ;;
esac
