#!/usr/bin/env bash
# Feature-store load benchmark: N customers x 32 float features (CSV) must load in <= 30 s with
# peak RSS < 2.5 GB on the reference machine (2 cores).
#
#   scripts/bench-store.sh [--count N] [--keep] [--dir DIR]
#
# Generates $DIR/customers-<N>x32.csv with scripts/gen-customers.py if it is missing (default
# DIR: ${TMPDIR:-/tmp}/encore-store-bench), builds `encore` in release mode, runs
# `encore store bench-load FILE --json`, prints the figures and PASS/FAIL. The generated file
# is deleted at the end unless --keep is given (keep it to rerun without regenerating).
set -euo pipefail

COUNT=10000000
KEEP=0
DIR="${TMPDIR:-/tmp}/encore-store-bench"
MAX_SECONDS=30
MAX_PEAK_BYTES=2500000000

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) COUNT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "bench-store: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FILE="$DIR/customers-${COUNT}x32.csv"
mkdir -p "$DIR"
cleanup() {
    if [[ $KEEP -eq 0 ]]; then
        rm -f "$FILE"
        rmdir "$DIR" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if [[ ! -s "$FILE" ]]; then
    echo "bench-store: generating $FILE ($COUNT customers x 32 features)" >&2
    python3 "$ROOT/scripts/gen-customers.py" --count "$COUNT" --features 32 --segments 16 --seed 1 \
        --out "$FILE.partial"
    mv "$FILE.partial" "$FILE"
fi

echo "bench-store: building release" >&2
(cd "$ROOT" && swift build -c release --product encore >&2)
BIN="$(cd "$ROOT" && swift build -c release --show-bin-path)/encore"

echo "bench-store: $BIN store bench-load $FILE --json" >&2
RESULT="$("$BIN" store bench-load "$FILE" --json)"
echo "$RESULT"

python3 - "$RESULT" "$(stat -c %s "$FILE")" "$MAX_SECONDS" "$MAX_PEAK_BYTES" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
size, max_s, max_peak = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ok_time = r["load_seconds"] <= max_s
ok_mem = r["peak_rss_bytes"] < max_peak
print(f"file:       {size / 1e9:.2f} GB")
print(f"customers:  {r['customers']:,} x {r['features']} features")
print(f"load:       {r['load_seconds']:.2f} s ({size / 1e6 / max(r['load_seconds'], 1e-9):.0f} MB/s)"
      f"  [{'PASS' if ok_time else 'FAIL'}: <= {max_s:g} s]")
print(f"rss:        {r['rss_bytes'] / 1e9:.2f} GB")
print(f"peak rss:   {r['peak_rss_bytes'] / 1e9:.2f} GB  [{'PASS' if ok_mem else 'FAIL'}: < {max_peak / 1e9:g} GB]")
print("PASS" if ok_time and ok_mem else "FAIL")
sys.exit(0 if ok_time and ok_mem else 1)
PY
