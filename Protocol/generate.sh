#!/usr/bin/env bash
# Regenerates the Swift protobuf code in Sources/EncoreProtocol/ from Protocol/**/*.proto.
#
#   Protocol/generate.sh            regenerate (builds protoc-gen-swift once into a cache)
#   Protocol/generate.sh --check    exit 1 if the committed files differ from fresh output
#
# protoc comes from Debian's protobuf-compiler. protoc-gen-swift is built from the
# swift-protobuf version pinned in Package.swift and cached in $ENCORE_TOOL_CACHE
# (default ~/.cache/encore-tools), so only the first run pays for the build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${ENCORE_TOOL_CACHE:-$HOME/.cache/encore-tools}"
version="$(sed -n 's/.*swift-protobuf".*exact: "\([0-9.]*\)".*/\1/p' "$root/Package.swift")"
[ -n "$version" ] || { echo "generate.sh: cannot find the swift-protobuf version in Package.swift" >&2; exit 2; }
plugin="$cache/protoc-gen-swift-$version/.build/debug/protoc-gen-swift"

if ! command -v protoc >/dev/null; then
  echo "generate.sh: protoc missing; install it with: apt-get install -y protobuf-compiler" >&2; exit 2
fi
if [ ! -x "$plugin" ]; then
  if [ "${1:-}" = "--check" ] && [ "${ENCORE_GENERATE_BUILD_PLUGIN:-0}" != "1" ]; then
    echo "generate.sh --check: protoc-gen-swift $version is not cached; skipping the check" \
         "(set ENCORE_GENERATE_BUILD_PLUGIN=1 to build it)" >&2
    exit 0
  fi
  echo "generate.sh: building protoc-gen-swift $version into $cache (one time, about a minute)" >&2
  mkdir -p "$cache"
  rm -rf "$cache/protoc-gen-swift-$version"
  git clone -q --depth 1 --branch "$version" https://github.com/apple/swift-protobuf "$cache/protoc-gen-swift-$version"
  (cd "$cache/protoc-gen-swift-$version" && swift build --product protoc-gen-swift >&2)
fi

out="$root/Sources/EncoreProtocol/Generated"
if [ "${1:-}" = "--check" ]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  target="$tmp"
else
  target="$out"; mkdir -p "$out"; rm -f "$out"/*.pb.swift
fi
cd "$root/Protocol"
protoc --plugin=protoc-gen-swift="$plugin" --swift_out="$target" --swift_opt=Visibility=Public \
  encore/v1/decisions.proto encore/v1/diagnostics.proto encore/v1/models.proto encore/v1/catalog.proto \
  grpc/health/v1/health.proto
# Flatten encore/v1/x.pb.swift -> x.pb.swift (module folders need unique file names only).
find "$target" -name '*.pb.swift' -path '*/*/*' | while read -r f; do mv "$f" "$target/$(basename "$f")"; done
find "$target" -mindepth 1 -type d -empty -delete
if [ "${1:-}" = "--check" ]; then
  if diff -r "$target" "$out" >/dev/null; then echo "generated code is current"; else
    echo "generate.sh --check: Sources/EncoreProtocol/Generated is stale; run Protocol/generate.sh" >&2; diff -r "$target" "$out" | head -40 >&2; exit 1; fi
else
  echo "generated: $(cd "$out" && ls *.pb.swift | tr '\n' ' ')"
fi
