#!/usr/bin/env bash
# Regenerates the committed protobuf code from Protos/:
#   Swift (swift-protobuf 1.39.0)  -> Sources/ToteProto/Generated/
#   C     (protoc-c, protobuf-c)   -> Sources/ToteProtoC/{include/,}tote/v1/
#
#   tools/generate-protos.sh           regenerate in place
#   tools/generate-protos.sh --check   regenerate into a temporary folder and fail (exit 1) if the
#                                      committed code differs; exit 0 with a message if the Swift
#                                      generator cannot be built on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mode=write
[ "${1:-}" = "--check" ] && mode=check

# One generator at a time on this machine (several people or agents may share a checkout).
exec 9>/tmp/tote-generate-protos.lock
flock 9

for tool in protoc protoc-c; do
  command -v "$tool" >/dev/null || { echo "generate-protos: $tool not found (apt-get install protobuf-compiler protobuf-c-compiler)" >&2; exit 2; }
done

# protoc-gen-swift comes from the swift-protobuf version the package pins, built in its own build
# folder so that the main .build is not invalidated.
plugin=${PROTOC_GEN_SWIFT:-}
if [ -z "$plugin" ]; then
  if ! swift build --build-path .build-tools --product protoc-gen-swift >/tmp/tote-protoc-gen-swift.log 2>&1; then
    if [ "$mode" = check ]; then
      echo "generate-protos: SKIPPED the generated-code check: protoc-gen-swift could not be built (see /tmp/tote-protoc-gen-swift.log)"
      exit 0
    fi
    cat /tmp/tote-protoc-gen-swift.log >&2; exit 2
  fi
  plugin="$(swift build --build-path .build-tools --show-bin-path)/protoc-gen-swift"
fi

protos=$(cd Protos && find tote -name '*.proto' | LC_ALL=C sort)

generate() { # $1 = swift out dir, $2 = C header dir, $3 = C source dir
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$1" "$tmp/c"
  (cd Protos && protoc --plugin=protoc-gen-swift="$plugin" --swift_out="$1" \
      --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores $protos)
  (cd Protos && protoc-c --c_out="$tmp/c" $protos)
  (cd "$tmp/c" && find . -name '*.pb-c.h' | while read -r f; do mkdir -p "$2/$(dirname "$f")"; cp "$f" "$2/$f"; done)
  (cd "$tmp/c" && find . -name '*.pb-c.c' | while read -r f; do mkdir -p "$3/$(dirname "$f")"; cp "$f" "$3/$f"; done)
  rm -rf "$tmp"
}

swift_dir=Sources/ToteProto/Generated
c_include=Sources/ToteProtoC/include
c_src=Sources/ToteProtoC

if [ "$mode" = write ]; then
  rm -rf "$swift_dir" "$c_include/tote" "$c_src/tote"
  generate "$root/$swift_dir" "$root/$c_include" "$root/$c_src"
  echo "generate-protos: wrote $swift_dir, $c_include/tote, $c_src/tote"
else
  out=$(mktemp -d)
  generate "$out/swift" "$out/include" "$out/src"
  status=0
  diff -r "$out/swift" "$swift_dir" || status=1
  diff -r "$out/include/tote" "$c_include/tote" || status=1
  diff -r "$out/src/tote" "$c_src/tote" || status=1
  rm -rf "$out"
  if [ $status -ne 0 ]; then
    echo "generate-protos: the committed generated code is STALE: run tools/generate-protos.sh and commit" >&2
    exit 1
  fi
  echo "generate-protos: committed generated code is current"
fi
