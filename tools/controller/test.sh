#!/usr/bin/env bash
# Tests of the C controller SDK (libtotectl) and the simulator:
#   1. builds everything (make -C tools/controller, warnings as errors);
#   2. the SDK's pure unit tests and the session tests against an in-process fake bridge
#      (make check);
#   3. the SDK's wire layer against a live `tote serve`: Diagnostics/Chat (bidirectional echo),
#      which runs the same framing, handshake, flow-control and STATUS code as
#      Automation/Connect;
#   4. tote-controller-sim against the live server's Automation/Connect (UNIMPLEMENTED until the
#      bridge is served: the simulator must then back off and retry; once it is served, it must
#      come online), and its clean exit on SIGTERM;
#   5. tote-controller-sim end to end against totectl-fake-bridge: tasks with failures, jams,
#      cancellations, redelivered commands and dropped connections must all reach a final state,
#      none run twice; also with a failover address list (--servers) whose first address is dead.
#
#   tools/controller/test.sh --server .build/debug/tote
#       starts `tote serve --listen 127.0.0.1:0` with generated API keys and stops it afterwards
#   TOTE_TEST_ADDR=127.0.0.1:7700 TOTE_TEST_CONTROLLER_KEY=... tools/controller/test.sh
#       uses a running server
#   tools/controller/test.sh --offline
#       only steps 1, 2 and 5 (no Tote server needed)
#
# Prints one line per check and, last, "N passed, M failed"; exits non-zero if any check failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/build"
passed=0
failed=0
work=$(mktemp -d "${TMPDIR:-/tmp}/totectl-test.XXXXXX")

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

pids=()
server_pid=
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok - $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL - $1"
  failed=$((failed + 1))
  if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/  | /' "$2" | tail -15; fi
}

# check NAME EXPECTED_EXIT STDOUT_REGEX STDERR_REGEX -- COMMAND...   (empty regex: not checked)
check() {
  local name=$1 want_rc=$2 want_out=$3 want_err=$4
  shift 5
  "$@" >"$work/out" 2>"$work/err"
  local rc=$? why=
  if [ "$rc" -ne "$want_rc" ]; then
    why="exit $rc, expected $want_rc"
  elif [ -n "$want_out" ] && ! grep -Eq -- "$want_out" "$work/out"; then
    why="stdout does not match /$want_out/"
  elif [ -n "$want_err" ] && ! grep -Eq -- "$want_err" "$work/err"; then
    why="stderr does not match /$want_err/"
  fi
  if [ -z "$why" ]; then
    ok "$name"
  else
    echo "FAIL - $name: $why"
    sed 's/^/  stdout| /' "$work/out" | tail -8
    sed 's/^/  stderr| /' "$work/err" | tail -8
    failed=$((failed + 1))
  fi
}

# Waits up to $2 tenths of a second for a "listening on HOST:PORT" line in file $1; prints the address.
wait_listening() {
  local i addr
  for i in $(seq 1 "$2"); do
    addr=$(sed -n 's/^listening on \([^ ]*:[0-9][0-9]*\)$/\1/p' "$1" | head -1)
    if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    sleep 0.1
  done
  return 1
}

mode=live
case "${1:-}" in
  --server)
    server_bin=${2:?"--server needs the path of the tote executable"}
    [ -x "$server_bin" ] || { echo "test.sh: $server_bin is not an executable" >&2; failed=1; finish; }
    suffix=$(date +%s)-$$
    export TOTE_TEST_CONTROLLER_KEY="ctl-test-controller-$suffix"
    export TOTE_API_KEYS="storefront:ctl-test-storefront-$suffix,operator:ctl-test-operator-$suffix,controller:$TOTE_TEST_CONTROLLER_KEY"
    "$server_bin" serve --listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
    server_pid=$!
    if ! TOTE_TEST_ADDR=$(wait_listening "$work/server.log" 300); then
      fail "start tote serve" "$work/server.log"
      finish
    fi
    export TOTE_TEST_ADDR
    echo "# started $server_bin serve on $TOTE_TEST_ADDR (pid $server_pid)"
    ;;
  --offline) mode=offline ;;
  "") ;;
  *) echo "usage: test.sh [--server PATH | --offline]" >&2; exit 64 ;;
esac

# 1. Build.
if make -s -C "$here" >"$work/make.log" 2>&1; then ok "build (make -C tools/controller, -Werror)"; else fail "build" "$work/make.log"; finish; fi

# 2. Unit and session tests.
check "unit tests (sequence, duplicates, state file, backoff, frames)" 0 ' 0 failed$' '' -- "$bin/test-unit"
check "session tests against the in-process fake bridge" 0 ' 0 failed$' '' -- "$bin/test-session"

# 3 and 4. Against a live server.
if [ "$mode" = live ]; then
  : "${TOTE_TEST_ADDR:?set TOTE_TEST_ADDR=host:port of a running tote server (or pass --server PATH or --offline)}"
  : "${TOTE_TEST_CONTROLLER_KEY:?set TOTE_TEST_CONTROLLER_KEY to a controller API key of that server}"
  host=${TOTE_TEST_ADDR%:*}
  port=${TOTE_TEST_ADDR##*:}
  conn=(--host "$host" --port "$port")
  key=(--key "$TOTE_TEST_CONTROLLER_KEY")
  check "Chat: 200 messages (3 windows each way) echoed in order" 0 '^chat: 200 messages echoed in order, status OK$' '' -- \
    "$bin/totectl-chat" "${conn[@]}" "${key[@]}" --count 200
  check "Chat: 500 messages of 10 KB" 0 '^chat: 500 messages' '' -- \
    "$bin/totectl-chat" "${conn[@]}" "${key[@]}" --count 500 --size 10000
  check "Chat: lock-step request/response" 0 '^chat: 100 messages' '' -- \
    "$bin/totectl-chat" "${conn[@]}" "${key[@]}" --count 100 --lockstep
  check "Chat: half-close with no messages ends OK" 0 '^chat: 0 messages' '' -- \
    "$bin/totectl-chat" "${conn[@]}" "${key[@]}" --count 0
  check "Chat: a handler error arrives as STATUS NOT_FOUND (exit 2)" 2 '' '^error: NOT_FOUND: ' -- \
    "$bin/totectl-chat" "${conn[@]}" "${key[@]}" --count 3 --fail-code 5
  check "Chat: a bad key is UNAUTHENTICATED (exit 2)" 2 '' '^error: UNAUTHENTICATED: ' -- \
    "$bin/totectl-chat" "${conn[@]}" --key "not-a-valid-key-0000000000"
  check "Chat: a closed port fails to connect (exit 3)" 3 '' '^error: ' -- \
    "$bin/totectl-chat" --host 127.0.0.1 --port 1 "${key[@]}" --timeout-ms 2000

  # The simulator against Automation/Connect, then SIGTERM.
  "$bin/tote-controller-sim" "${conn[@]}" "${key[@]}" --id sim-pick-live --kind pick --backoff-ms 100/500 \
    --state-file "$work/live.state" >"$work/live.log" 2>&1 &
  sim=$!
  pids+=("$sim")
  sleep 2
  if grep -q 'session online' "$work/live.log"; then
    ok "simulator: Automation/Connect is served and the session came online"
  elif grep -q "UNIMPLEMENTED: unknown method 'tote.v1.Automation/Connect'" "$work/live.log" &&
       [ "$(grep -c 'sdk: connecting to' "$work/live.log")" -ge 2 ]; then
    ok "simulator: Automation/Connect not served yet (UNIMPLEMENTED): backs off and retries"
  else
    fail "simulator against the live server" "$work/live.log"
  fi
  kill -TERM "$sim"
  wait "$sim"
  rc=$?
  pids=()
  if [ "$rc" -eq 0 ] && grep -q 'stopping (signal)' "$work/live.log" && grep -q '^totectl-state 1$' "$work/live.state"; then
    ok "simulator: SIGTERM stops it cleanly (exit 0, state file written)"
  else
    fail "simulator: SIGTERM (exit $rc)" "$work/live.log"
  fi
fi

# 5. The simulator end to end against the fake bridge.
# run_fake NAME SIM_ARGS -- BRIDGE_ARGS
run_fake() {
  local name=$1 sim_args=() bridge_args=()
  shift
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do sim_args+=("$1"); shift; done
  shift
  bridge_args=("$@")
  "$bin/totectl-fake-bridge" "${bridge_args[@]}" --timeout-s 40 >"$work/bridge.log" 2>&1 &
  local bridge=$!
  local addr
  if ! addr=$(wait_listening "$work/bridge.log" 50); then
    fail "$name: fake bridge did not start" "$work/bridge.log"
    kill "$bridge" 2>/dev/null
    return
  fi
  rm -f "$work/fake.state"
  local target=(--host 127.0.0.1 --port "${addr##*:}")
  # dead_first=HOST:PORT: the simulator gets a failover list whose first address refuses connections.
  if [ -n "${dead_first:-}" ]; then target=(--servers "$dead_first,127.0.0.1:${addr##*:}"); fi
  "$bin/tote-controller-sim" "${target[@]}" --key fake-controller-key-0001 \
    --backoff-ms 50/300 --state-file "$work/fake.state" --heartbeat-ms 500 "${sim_args[@]}" >"$work/sim.log" 2>&1 &
  local sim=$!
  wait "$bridge"
  local brc=$?
  kill -TERM "$sim" 2>/dev/null
  wait "$sim"
  local src=$?
  local sessions
  sessions=$(sed -n 's/^fake-bridge: .* \([0-9][0-9]*\) sessions.*$/\1/p' "$work/bridge.log")
  if [ "$brc" -eq 0 ] && [ "$src" -eq 0 ] && grep -q ' 0 run twice' "$work/bridge.log" &&
     [ "${sessions:-0}" -ge "${min_sessions:-1}" ]; then
    ok "$name: $(grep '^fake-bridge: .* commands' "$work/bridge.log" | sed 's/^fake-bridge: //')"
  else
    echo "FAIL - $name: bridge exit $brc, simulator exit $src, ${sessions:-0} sessions (want >= ${min_sessions:-1})"
    sed 's/^/  bridge| /' "$work/bridge.log" | tail -8
    grep -v ' sdk: \| session ' "$work/sim.log" | sed 's/^/  sim| /' | tail -12
    failed=$((failed + 1))
  fi
}

run_fake "pick station, happy path" --id pick-01 --kind pick --pick-ms 20/5 -- --tasks 20 --kind pick --heartbeat-ms 300
min_sessions=5
run_fake "pick station with failures, jams, cancels, redeliveries and dropped connections" \
  --id pick-02 --kind pick --pick-ms 20/10 --fail-rate 0.2 --jam-rate 0.1 -- \
  --tasks 30 --kind pick --heartbeat-ms 300 --duplicate --drop-every 7 --cancel-every 4 --window 3
min_sessions=2
run_fake "pack station with random disconnects" \
  --id pack-01 --kind pack --pick-ms 100/20 --fail-rate 0.1 --disconnect-rate 1 -- \
  --tasks 25 --kind pack --heartbeat-ms 300 --window 5
# Failover addresses: the first is dead (port 1); the simulator must move on to the bridge after
# every failed attempt and every dropped connection, and still finish everything exactly once.
min_sessions=3
dead_first=127.0.0.1:1 run_fake "pick station with a failover list (--servers, first address dead) and dropped connections" \
  --id pick-03 --kind pick --pick-ms 20/5 -- --tasks 15 --kind pick --heartbeat-ms 300 --drop-every 5
grep -q 'connecting to 127.0.0.1:1 ' "$work/sim.log" && ok "simulator with --servers tried the dead address too" ||
  fail "simulator with --servers did not rotate through its addresses" "$work/sim.log"
finish
