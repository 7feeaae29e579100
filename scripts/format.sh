#!/usr/bin/env bash
# Formats the Swift sources with swift-format (.swift-format at the root), or checks them.
#   scripts/format.sh          rewrite in place
#   scripts/format.sh --check  exit 1 if any file is not formatted (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find Sources Tests Benchmarks Fuzz -name '*.swift' -not -path '*/Generated/*' -not -path '*/.build*' 2>/dev/null | sort)
if [ "${1:-}" = "--check" ]; then
  swift format lint --strict "${files[@]}"
  echo "format: ${#files[@]} files formatted"
else
  swift format format -i "${files[@]}"
fi
