#!/usr/bin/env bash
# usage: tools/run-with-deadline.sh SECONDS COMMAND [ARGS...]
#
# Runs a test command so that a hang cannot eat CI's whole budget in silence:
# - the command gets a pseudo-terminal, so the test runner prints each line as it happens (through
#   a pipe its output is block-buffered, and what was buffered at a kill is lost: a CI run once
#   showed tests "passing" two seconds before an hour of silence, and the stuck test not at all);
# - past SECONDS it names the tests that started and never finished, prints every thread of each
#   test process (gdb, when installed), kills the command and everything it started, and exits 124.
#   (The processes a test started in sessions of their own, such as PostgreSQL clusters, are the
#   test's to stop; they do not hold this script up.)
# Otherwise it exits with the command's own status.
set -uo pipefail
limit=$1; shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The command's terminal output goes to the log (script's typescript), shown as it grows. Colours
# off: the log is read by people and by grep.
NO_COLOR=1 SHELL=/bin/bash script --quiet --flush --return --command "$(printf '%q ' "$@")" "$log" \
  </dev/null >/dev/null 2>&1 &
pid=$!
tail --lines=+1 --follow --pid="$pid" --sleep-interval=0.2 "$log" \
  | sed --unbuffered -e 's/\r$//' -e '/^Script \(started\|done\) on /d' &
shower=$!

# Every process the command started, however deep (script gives it a session of its own).
descendants() { # pid
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do echo "$child"; descendants "$child"; done
}

waited=0
while kill -0 "$pid" 2>/dev/null; do
  if [ "$waited" -ge "$limit" ]; then
    sleep 1  # the last lines shown first
    echo
    echo "=== deadline of $limit s passed: $*"
    # Swift Testing prints "◇ Test NAME started." and "✔/✘ Test NAME passed/failed ...".
    started=$(tr -d '\r' <"$log" | sed -n 's/^.*◇ Test \(.*\) started\.$/\1/p' | sort -u)
    ended=$(tr -d '\r' <"$log" | sed -n -E 's/^.*[✔✘] Test (.*) (passed|failed)( after|$).*/\1/p' | sed -E 's/ with [0-9]+ test cases?$//' | sort -u)
    echo "tests started and not finished:"
    comm -23 <(echo "$started") <(echo "$ended") | grep -v '^$' | grep -v -e '^case passing' -e '^run$' | sed 's/^/    /'
    members=$(descendants "$pid")
    for member in $members; do
      name=$(cat "/proc/$member/comm" 2>/dev/null) || continue
      case "$name" in *xctest*|*PackageTest*) ;; *) continue ;; esac
      echo "threads of $member ($name):"
      if command -v gdb >/dev/null; then
        timeout 60 gdb -p "$member" -batch -ex "thread apply all bt 40" 2>/dev/null | grep -E '^(Thread|#)' | sed 's/^/    /'
      else
        for task in /proc/"$member"/task/*; do echo "    $(cat "$task/comm") in $(cat "$task/wchan" 2>/dev/null)"; done
      fi
    done
    kill -TERM "$pid" $members 2>/dev/null
    sleep 5
    kill -KILL "$pid" $members 2>/dev/null
    wait "$pid" 2>/dev/null
    wait "$shower" 2>/dev/null
    exit 124
  fi
  sleep 1
  waited=$((waited + 1))
done
wait "$pid"
status=$?
# tail ends with the command; let it print the last lines before the caller goes on.
wait "$shower" 2>/dev/null
exit "$status"
