#!/usr/bin/env bash
# Runs every test of Encore from a clean clone: installs what is missing, builds, runs the Swift
# unit tests (swift test), checks the generated protocol code when the generator is cached, and
# runs the interop suite (Python grpcio, h2, nghttp, h2load against the real server) and the
# Python package's tests (encore-learn: estimators, trainer, snapshot writer, client), then the
# quick micro-benchmark gate: fails when allocations or instructions per operation of the decision
# core, codec, framing or snapshot load, or of the whole release server per Decide and Health/Check
# call, rise past Benchmarks/Thresholds/Quick (scripts/bench-quick.sh), then every libFuzzer target
# for 60 s in total (scripts/fuzz.sh --all 60: the sanitizer build of encore-fuzz and about 6 s per
# target; docs/fuzzing.md), and last the fleet tests on the release binary (scripts/fleet-tests.sh:
# haproxy/nginx configs, three replicas in network namespaces behind haproxy under load; needs root
# for `ip netns`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
echo "== format"
scripts/format.sh --check
echo "== swift build"
swift build
echo "== swift test"
swift test
echo "== generated protocol code"
Protocol/generate.sh --check
echo "== python package venv (encore-learn, used by interop and python tests)"
scripts/python-venv.sh
echo "== interop tests"
ENCORE_BIN="${ENCORE_BIN:-$PWD/.build/debug/encore}" scripts/interop-tests.sh
echo "== python package tests (encore-learn)"
ENCORE_BIN="${ENCORE_BIN:-$PWD/.build/debug/encore}" scripts/python-tests.sh
echo "== micro-benchmark gate: allocations and instructions (micro-benchmarks and the whole server) vs Benchmarks/Thresholds/Quick (release)"
scripts/bench-quick.sh
echo "== fuzz: every libFuzzer target, 60 s in total (address sanitizer build; docs/fuzzing.md)"
scripts/fuzz.sh --all 60
echo "== fleet tests: haproxy/nginx configs, three replicas in network namespaces behind haproxy (release)"
swift build -c release --product encore
ENCORE_BIN="$PWD/.build/release/encore" scripts/fleet-tests.sh
