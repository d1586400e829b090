#!/usr/bin/env bash
# Builds the C client tools (tools/c) and runs them against a live Tote server, proving that a
# client written from docs/PROTOCOL.md alone interoperates with the Swift server.
#
#   TOTE_TEST_ADDR=127.0.0.1:7700 TOTE_TEST_STOREFRONT_KEY=... tools/c-client-test.sh
#   tools/c-client-test.sh --server .build/debug/tote
#       starts `tote serve --listen 127.0.0.1:0` (a free port, read from its "listening on"
#       line) with generated API keys, runs the checks against it, and stops it afterwards.
#
# The purchase (tote-purchase: cart, checkout, PlaceOrder, AuthorizePayment) needs a server with a
# database and a catalog: set TOTE_TEST_PURCHASE_SKU to a SKU in stock there, e.g. against
# `tote dev` (its demo catalog has P0-BLACK-L):
#   TOTE_TEST_ADDR=127.0.0.1:7700 TOTE_TEST_STOREFRONT_KEY=dev-storefront-key-0001 \
#     TOTE_TEST_PURCHASE_SKU=P0-BLACK-L tools/c-client-test.sh
# Without it the purchase is skipped (with the reason printed) and only its refusals are checked.
#
# Prints one line per check and, last, "N passed, M failed"; exits non-zero if any check failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/tools/c/build"
passed=0
failed=0

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port nothing listens on right now.
closed_port() {
  local p=$(( 20000 + RANDOM % 40000 )) i
  for i in $(seq 1 200); do
    if ! port_open "$p"; then echo "$p"; return 0; fi
    p=$(( p + 1 ))
  done
  return 1
}

server_pid=
server_log=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
  fi
}
trap stop_server EXIT

if [ "${1:-}" = "--server" ]; then
  server_bin=${2:?"--server needs the path of the tote executable"}
  [ -x "$server_bin" ] || { echo "c-client-test: $server_bin is not an executable" >&2; failed=1; finish; }
  suffix=$(date +%s)-$$
  export TOTE_TEST_STOREFRONT_KEY="c-test-storefront-$suffix"
  export TOTE_API_KEYS="storefront:$TOTE_TEST_STOREFRONT_KEY,operator:c-test-operator-$suffix,controller:c-test-controller-$suffix"
  server_log=$(mktemp "${TMPDIR:-/tmp}/tote-c-client-test.XXXXXX")
  # Port 0: the server picks a free port and prints "listening on HOST:PORT" on stdout.
  "$server_bin" serve --listen 127.0.0.1:0 >"$server_log" 2>&1 &
  server_pid=$!
  TOTE_TEST_ADDR=
  for _ in $(seq 1 300); do
    TOTE_TEST_ADDR=$(sed -n 's/^listening on \([^ ]*:[0-9][0-9]*\)$/\1/p' "$server_log" | head -1)
    [ -n "$TOTE_TEST_ADDR" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$TOTE_TEST_ADDR" ]; then
    echo "c-client-test: the server did not report a listening address; its output:" >&2
    sed 's/^/  | /' "$server_log" >&2
    failed=1
    finish
  fi
  export TOTE_TEST_ADDR
  echo "# started $server_bin serve on $TOTE_TEST_ADDR (pid $server_pid)"
fi

: "${TOTE_TEST_ADDR:?set TOTE_TEST_ADDR=host:port of a running tote server (or pass --server PATH)}"
: "${TOTE_TEST_STOREFRONT_KEY:?set TOTE_TEST_STOREFRONT_KEY to a storefront API key of that server}"
host=${TOTE_TEST_ADDR%:*}
port=${TOTE_TEST_ADDR##*:}
host=${host#[}
host=${host%]}

if ! make -s -C "$root/tools/c" >/dev/null; then
  echo "FAIL - build the C tools (make -C tools/c)"
  failed=1
  finish
fi
echo "ok - build the C tools"
passed=$((passed + 1))

out=$(mktemp "${TMPDIR:-/tmp}/tote-c-client-test.XXXXXX")
err=$(mktemp "${TMPDIR:-/tmp}/tote-c-client-test.XXXXXX")
trap 'stop_server; rm -f "$out" "$err" ${server_log:+"$server_log"}' EXIT

# check NAME EXPECTED_EXIT STDOUT_REGEX STDERR_REGEX -- COMMAND...   (empty regex: not checked)
check() {
  local name=$1 want_rc=$2 want_out=$3 want_err=$4
  shift 5
  "$@" >"$out" 2>"$err"
  local rc=$? why=
  if [ "$rc" -ne "$want_rc" ]; then
    why="exit $rc, expected $want_rc"
  elif [ -n "$want_out" ] && ! grep -Eq -- "$want_out" "$out"; then
    why="stdout does not match /$want_out/"
  elif [ -n "$want_err" ] && ! grep -Eq -- "$want_err" "$err"; then
    why="stderr does not match /$want_err/"
  fi
  if [ -z "$why" ]; then
    echo "ok - $name"
    passed=$((passed + 1))
  else
    echo "FAIL - $name: $why"
    sed 's/^/  stdout| /' "$out" | head -5
    sed 's/^/  stderr| /' "$err" | head -5
    failed=$((failed + 1))
  fi
}

conn=(--host "$host" --port "$port" --timeout-ms 5000)
key=(--key "$TOTE_TEST_STOREFRONT_KEY")
payload='hello, tote: ünïcödé ✓ and spaces'

check "Health/Check is SERVING (exit 0)" 0 '^SERVING( \(server .+\))?$' '' -- \
  "$bin/tote-health" "${conn[@]}" "${key[@]}"
check "Health/Check with TOTE_API_KEY from the environment" 0 '^SERVING' '' -- \
  env TOTE_API_KEY="$TOTE_TEST_STOREFRONT_KEY" "$bin/tote-health" "${conn[@]}"
check "a bad API key is UNAUTHENTICATED (exit 2)" 2 '' '^error: UNAUTHENTICATED: ' -- \
  "$bin/tote-health" "${conn[@]}" --key "not-a-valid-key-0000000000"
check "an empty API key is UNAUTHENTICATED (exit 2)" 2 '' '^error: UNAUTHENTICATED: ' -- \
  "$bin/tote-health" "${conn[@]}" --key ""
check "Diagnostics/Echo round trip" 0 "^$payload\$" '' -- \
  "$bin/tote-echo" "${conn[@]}" "${key[@]}" "$payload"
check "Diagnostics/Echo of 1 MiB comes back intact" 0 '^echoed 1048576 bytes intact$' '' -- \
  "$bin/tote-echo" "${conn[@]}" "${key[@]}" --size 1048576
check "Echo with --fail-code 5 fails with NOT_FOUND (exit 2)" 2 '' '^error: NOT_FOUND: ' -- \
  "$bin/tote-echo" "${conn[@]}" "${key[@]}" --fail-code 5 "no such thing"
check "an unknown method is UNIMPLEMENTED (exit 2)" 2 '' '^error: UNIMPLEMENTED: ' -- \
  "$bin/tote-echo" "${conn[@]}" "${key[@]}" --method "tote.v1.Diagnostics/NoSuchMethod" x
check "a deadline shorter than the server's delay is DEADLINE_EXCEEDED (exit 2)" 2 '' '^error: DEADLINE_EXCEEDED: ' -- \
  "$bin/tote-echo" --host "$host" --port "$port" --timeout-ms 300 "${key[@]}" --delay-ms 3000 slow
check "tote-purchase without --sku is a usage error (exit 64)" 64 '' '--sku' -- \
  "$bin/tote-purchase" "${conn[@]}" "${key[@]}"
check "tote-purchase with a bad API key is UNAUTHENTICATED (exit 2)" 2 '' '^error: UNAUTHENTICATED: ' -- \
  "$bin/tote-purchase" "${conn[@]}" --key "not-a-valid-key-0000000000" --sku C-TEST-NO-SUCH-SKU:1
# Without a database the commerce services are not served (UNIMPLEMENTED); with one, the SKU is
# unknown (NOT_FOUND). Either way: "error: CODE: message" and exit 2.
check "tote-purchase of an unknown SKU fails with the status (exit 2)" 2 '' '^error: (UNIMPLEMENTED|NOT_FOUND): ' -- \
  "$bin/tote-purchase" "${conn[@]}" "${key[@]}" --sku C-TEST-NO-SUCH-SKU:1
if [ -n "${TOTE_TEST_PURCHASE_SKU:-}" ]; then
  check "tote-purchase buys $TOTE_TEST_PURCHASE_SKU: order id on stdout, payment AUTHORIZED (exit 0)" 0 \
    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' 'payment .* AUTHORIZED' -- \
    "$bin/tote-purchase" "${conn[@]}" "${key[@]}" --sku "$TOTE_TEST_PURCHASE_SKU:1"
  check "tote-purchase with a declined card: order placed, payment FAILED (exit 1)" 1 \
    '^[0-9a-f-]{36}$' 'payment .* FAILED' -- \
    "$bin/tote-purchase" "${conn[@]}" "${key[@]}" --sku "$TOTE_TEST_PURCHASE_SKU:1" --card tok_visa_0002
else
  echo "skip - a purchase with tote-purchase: set TOTE_TEST_PURCHASE_SKU to a SKU in stock on the server (tote serve --server here has no database, so no catalog; DevRunTests buys against tote dev)"
fi
if closed=$(closed_port); then
  check "connecting to a closed port exits 3" 3 '' '^error: ' -- \
    "$bin/tote-health" --host 127.0.0.1 --port "$closed" --timeout-ms 2000 "${key[@]}"
else
  echo "FAIL - connecting to a closed port exits 3: no closed port found"
  failed=$((failed + 1))
fi

if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
  echo "FAIL - the server exited during the tests; its output:"
  sed 's/^/  | /' "$server_log" | tail -20
  failed=$((failed + 1))
  server_pid=
fi
finish
