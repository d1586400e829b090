#!/usr/bin/env bash
# The README's test command, and what CI runs (.ci/run): every test Tote has.
#   1. system packages (tools/setup.sh)
#   2. the committed protobuf code matches a fresh generation
#   3. the Swift test suites (unit tests with no I/O; integration tests over real sockets), then
#      the integration suites that start their own PostgreSQL clusters, then the suites that run
#      Tote as processes (one at a time), then the read-side suites (one test at a time)
#   4. the C client and the C load generator (protobuf-c) against a live `tote serve`, and the C
#      controller SDK
#   5. the frame-decoder fuzzer for a bounded time (TOTE_FUZZ_SECONDS, default 60)
# Exits non-zero if any step fails; the last line says how many steps passed and failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
passed=0; failed=0; failures=()
logs=$(mktemp -d); trap 'rm -rf "$logs"' EXIT

# Runs one step, its output both shown and kept, so that a failed step's failing lines can be
# repeated at the very end: CI keeps only the tail of what this script prints.
step() { # name, command...
  local name=$1; shift
  echo; echo "=== $name"
  local start=$SECONDS log="$logs/$((passed + failed)).log"
  if "$@" 2>&1 | tee "$log"; then
    passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name|$log"); echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

# PostgreSQL integration suites run on their own: their load (a 16-writer stress test) would
# otherwise distort the timing-sensitive socket tests running beside them.
pg_suites="PostgresIntegrationTests|EventStoreIntegrationTests|CommerceIntegrationTests"
# The read-side suites run one test at a time: their CPU-heavy tests (a 2,000-product catalog
# checked against a brute-force evaluator, LMDB map growth) would otherwise starve the
# deadline-sensitive query-service tests beside them on 2 cores.
serial_suites="ToteReadModelsTests|LMDBTests"
# Suites that run Tote itself as processes (tote dev with its own PostgreSQL and stations, two
# tote serve killed with -9, tote project killed mid-batch) run one at a time after the other
# PostgreSQL suites: beside them, on 2 cores, their compiles, clusters and fsyncs starved the
# in-process suites' calls past their deadlines.
process_suites="DevRunTests|DevAdminTests|BridgeFailoverTests|ProjectorCrashTests"

# Each test run has a deadline about ten times what it takes on a quiet machine of CI's kind
# (100, 143, 80 and 50 s), so that a hang fails its step, naming the stuck tests and their
# threads, instead of silently using up CI's 90 minutes.
deadline=tools/run-with-deadline.sh

swift_tests() {
  swift build --build-tests && $deadline 900 swift test --skip-build --skip "$pg_suites|$serial_suites"
}

read_side_tests() {
  $deadline 1200 swift test --skip-build --no-parallel --filter "$serial_suites"
}

postgres_tests() {
  $deadline 900 swift test --skip-build --filter "$pg_suites" --skip "$process_suites"
}

process_tests() {
  $deadline 900 swift test --skip-build --no-parallel --filter "$process_suites"
}

c_client_against_live_server() {
  swift build --product tote || return 1
  local bin; bin="$(swift build --show-bin-path)/tote"
  local log; log=$(mktemp)
  export TOTE_TEST_STOREFRONT_KEY="ci-storefront-key-0001"
  TOTE_API_KEYS="storefront:$TOTE_TEST_STOREFRONT_KEY,operator:ci-operator-key-00001" \
    "$bin" serve --listen 127.0.0.1:0 --log-level warning >"$log" 2>&1 &
  local pid=$!
  local address=""
  for _ in $(seq 1 100); do
    address=$(sed -n 's/^listening on //p' "$log" | head -n 1)
    [ -n "$address" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$address" ]; then echo "tote serve did not start:"; cat "$log"; kill "$pid" 2>/dev/null; return 1; fi
  echo "tote serve listening on $address"
  local status=0
  TOTE_TEST_ADDR="$address" tools/c-client-test.sh || status=1
  # Graceful shutdown must finish promptly and cleanly.
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then echo "tote serve did not stop within 10 s of SIGTERM"; kill -9 "$pid"; status=1; fi
  wait "$pid" || { echo "tote serve exited with status $? after SIGTERM"; status=1; }
  rm -f "$log"
  # The benchmarks' C load generator: its checks of answers and of bad input (own server).
  tools/loadgen/test.sh --server "$bin" || status=1
  return $status
}

controller_sdk_tests() {
  swift build --product tote && tools/controller/test.sh --server "$(swift build --show-bin-path)/tote"
}

step "system packages" tools/setup.sh
step "generated protobuf code is current" tools/generate-protos.sh --check
step "Swift tests" swift_tests
step "PostgreSQL integration tests (real clusters)" postgres_tests
step "Tote as processes (tote dev, tote serve failover, tote project crashes; one at a time)" process_tests
step "read-side tests (LMDB, projector, queries; one at a time)" read_side_tests
step "C client and load generator against a live server" c_client_against_live_server
step "C controller SDK and simulator (unit, fake bridge, live server)" controller_sdk_tests
step "fuzz the frame decoder" tools/fuzz/run.sh "${TOTE_FUZZ_SECONDS:-60}"

echo
for f in "${failures[@]}"; do
  echo "FAILED: ${f%%|*}"
  # What failed, in that step's own words (swift-testing, XCTest, crashes, C tests).
  grep -E "✘|error:|Fatal error|Crash|signal [0-9]|FAIL|failed|^=== deadline" "${f##*|}" | grep -v "0 failed" | tail -n 30 | sed 's/^/    /'
  # A step that hung: which tests never finished.
  sed -n '/^tests started and not finished:/,/^threads of/p' "${f##*|}" | grep -v '^threads of' | head -n 20 | sed 's/^/    /'
done
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
