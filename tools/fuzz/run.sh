#!/usr/bin/env bash
# Builds the libFuzzer target for the frame decoder and connection state machines with
# AddressSanitizer, and runs it for a bounded time (default 60 s; first argument overrides).
# Exits non-zero if the fuzzer finds a crash, leak or hang; the reproducer is left in
# tools/fuzz/artifacts/. Seeds come from tools/fuzz/corpus/ (valid frames), kept between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
cd "$here"
# libFuzzer without its own main (FrameFuzzer's @main calls LLVMFuzzerRunDriver): SwiftPM gives
# executables their own entry symbol, which collides with the runtime's main under -sanitize=fuzzer.
runtime=$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib/swift/clang/lib/linux/libclang_rt.fuzzer_no_main-$(uname -m).a
flags=(-Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp
       -Xlinker "$runtime" -Xlinker -lstdc++)
if ! swift build -c release --build-path .build-fuzz --product FrameFuzzer "${flags[@]}" >/tmp/tote-fuzz-build.log 2>&1; then
  cat /tmp/tote-fuzz-build.log >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
bin="$(swift build -c release --build-path .build-fuzz "${flags[@]}" --show-bin-path)/FrameFuzzer"
work=$(mktemp -d)
mkdir -p artifacts
cp corpus/* "$work"/ 2>/dev/null || true
echo "fuzz: running FrameFuzzer for ${seconds}s"
"$bin" "$work" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
  -artifact_prefix="$here/artifacts/" -print_final_stats=1 2>&1 | tail -n 12
status=${PIPESTATUS[0]}
rm -rf "$work"
if [ "$status" -ne 0 ]; then echo "fuzz: FAILED (exit $status): see tools/fuzz/artifacts/" >&2; exit 1; fi
echo "fuzz: no crash in ${seconds}s"
