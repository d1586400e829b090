#!/usr/bin/env bash
# Builds tote-loadgen and checks it against a live Tote server (`tote serve`, which serves
# Diagnostics/Echo without a database), plus two hostile peers written here in Python that answer
# with a wrong payload or a malformed frame, so that the failure paths are proven too:
#
#   tools/loadgen/test.sh --server .build/debug/tote
#
# Prints one line per check and, last, "N passed, M failed"; exits non-zero if any check failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/build/tote-loadgen"
passed=0
failed=0
work=$(mktemp -d "${TMPDIR:-/tmp}/tote-loadgen-test.XXXXXX")
server_pid=
fake_pid=

cleanup() {
  for pid in $server_pid $fake_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

[ "${1:-}" = "--server" ] && [ -x "${2:-}" ] || { echo "usage: $0 --server PATH_TO_TOTE" >&2; exit 2; }
server_bin=$2

if ! make -s -C "$here" >/dev/null; then
  echo "FAIL - build tote-loadgen (make -C tools/loadgen)"
  failed=1
  finish
fi
echo "ok - build tote-loadgen"
passed=$((passed + 1))

# Waits for "listening on HOST:PORT" in $1 and prints PORT.
wait_port() {
  local p=
  for _ in $(seq 1 300); do
    p=$(sed -n 's/^listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$1" | head -1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.1
  done
  return 1
}

key="loadgen-test-storefront-$(date +%s)-$$"
export TOTE_API_KEYS="storefront:$key,operator:loadgen-test-operator-$$-0000,controller:loadgen-test-controller-$$-00"
"$server_bin" serve --listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
server_pid=$!
port=$(wait_port "$work/server.log") || { echo "FAIL - tote serve did not start"; sed 's/^/  | /' "$work/server.log"; failed=1; finish; }
echo "# started $server_bin serve on port $port (pid $server_pid)"

printf 'alpha\nbeta\n\ngamma: ünïcödé ✓\n' >"$work/keys.txt"
: >"$work/empty.txt"

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
    echo "ok - $name"
    passed=$((passed + 1))
  else
    echo "FAIL - $name: $why"
    sed 's/^/  stdout| /' "$work/out" | head -5
    sed 's/^/  stderr| /' "$work/err" | head -5
    failed=$((failed + 1))
  fi
}

lg=("$bin" -p "$port" -k "$key" -w 0.2 -d 0.5)
check "Echo at 4 connections: OK calls, a QPS line and redis-benchmark's CSV" 0 \
  '^"Echo","[0-9.]+","[0-9.]+","[0-9.]+","[0-9.]+","[0-9.]+","[0-9.]+","[0-9.]+"$' '' -- \
  "${lg[@]}" -t echo -f "$work/keys.txt" -c 4 --csv
check "Echo with 3 calls outstanding per connection, answers unpacked with protobuf-c" 0 \
  '^tote-loadgen: Echo, 2 connections x 3 outstanding, 3 keys, .* calls/s, p50 ' '' -- \
  "${lg[@]}" -t echo -f "$work/keys.txt" -c 2 -P 3 --decode
check "API key from TOTE_API_KEY" 0 'calls/s' '' -- \
  env TOTE_API_KEY="$key" "$bin" -p "$port" -w 0 -d 0.3 -t echo -f "$work/keys.txt" -c 1
check "a wrong API key fails the run (exit 1, UNAUTHENTICATED)" 1 '' 'UNAUTHENTICATED: invalid API key' -- \
  "$bin" -p "$port" -k "not-a-valid-key-000000000" -w 0 -d 0.3 -t echo -f "$work/keys.txt" -c 1
check "a call failing with NOT_FOUND fails the run (exit 1)" 1 '' 'failed: NOT_FOUND: ' -- \
  "${lg[@]}" -t echo -f "$work/keys.txt" -c 2 --fail-code 5
check "GetOrderView on a server without read models: UNIMPLEMENTED (exit 1)" 1 '' "UNIMPLEMENTED: unknown method 'tote.v1.Query/GetOrderView'" -- \
  "${lg[@]}" -t order-view -f "$work/keys.txt" -c 1
printf 'EUR|clothing|colour=black,blue|material=cotton\n' >"$work/search.txt"
check "SearchCatalog keys become requests; on a server without read models: UNIMPLEMENTED (exit 1)" 1 '' "UNIMPLEMENTED: unknown method 'tote.v1.Query/SearchCatalog'" -- \
  "${lg[@]}" -t search -f "$work/search.txt" -c 1
printf 'EUR|clothing|colour\n' >"$work/bad-search.txt"
check "a search key with a filter that is not ATTR=V1,V2 is a usage error naming it (exit 2)" 2 '' 'search key "EUR\|clothing\|colour": filter "colour" is not ATTR=V1,V2' -- \
  "${lg[@]}" -t search -f "$work/bad-search.txt" -c 1
printf 'EUR\n' >"$work/bad-search.txt"
check "a search key without a category is a usage error (exit 2)" 2 '' 'expected CURRENCY\|CATEGORY\|ATTR=V1,V2' -- \
  "${lg[@]}" -t search -f "$work/bad-search.txt" -c 1
check "a keys file with no keys is a usage error (exit 2)" 2 '' 'holds no keys' -- \
  "${lg[@]}" -t echo -f "$work/empty.txt"
check "no method is a usage error (exit 2)" 2 '' 'usage:' -- \
  "${lg[@]}" -f "$work/keys.txt"
check "a refused connection exits 3" 3 '' 'cannot connect' -- \
  "$bin" -p 1 -k "$key" -d 0.3 -t echo -f "$work/keys.txt" -c 1

# A hostile peer: completes the handshake, then answers every Echo with MODE's mistake.
fake_server() {
  python3 - "$1" <<'PY' &
import socket, struct, sys
mode = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
def frame(t, f, sid, p): return struct.pack(">IBBI", len(p), t, f, sid) + p
while True:
    c, _ = s.accept(); buf = b""
    c.sendall(frame(0, 0, 0, struct.pack(">HIHIHI", 1, 4 << 20, 2, 1024, 3, 64)))
    while True:
        d = c.recv(65536)
        if not d: break
        buf += d
        if buf.startswith(b"TOTE/1\r\n"): buf = buf[8:]
        while len(buf) >= 10:
            n, t, f, sid = struct.unpack(">IBBI", buf[:10])
            if len(buf) < 10 + n: break
            buf = buf[10 + n:]
            if t != 2: continue
            if mode == "wrong-answer": c.sendall(frame(2, 0, sid, b"\x0a\x05wrong") + frame(3, 0, sid, b""))
            elif mode == "bad-flags": c.sendall(frame(3, 0x80, sid, b""))
            elif mode == "no-message": c.sendall(frame(3, 0, sid, b""))
PY
  fake_pid=$!
}
for mode in wrong-answer bad-flags no-message; do
  fake_server "$mode" >"$work/fake.log"
  fport=$(wait_port "$work/fake.log") || { echo "FAIL - fake server $mode did not start"; failed=$((failed + 1)); continue; }
  case $mode in
    wrong-answer) want='wrong answer: Echo for ".*" answered "wrong"' ;;
    bad-flags) want='protocol error from the server: STATUS frame with undefined flags 0x80' ;;
    no-message) want='ended OK without a response message' ;;
  esac
  check "a peer answering with $mode fails the run (exit 1)" 1 '' "$want" -- \
    "$bin" -p "$fport" -k "$key" -w 0 -d 0.5 -t echo -f "$work/keys.txt" -c 1
  kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null; fake_pid=
done

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "FAIL - the server exited during the tests"
  failed=$((failed + 1))
fi
finish
