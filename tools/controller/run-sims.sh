#!/usr/bin/env bash
# Starts a few simulated warehouse controllers (tote-controller-sim) against a Tote server and
# keeps them running until SIGTERM/SIGINT, which it passes on (each simulator saves its state and
# exits 0). Meant for `tote dev` and manual testing.
#
#   tools/controller/run-sims.sh --host 127.0.0.1 --port 7700 --key CONTROLLER_KEY \
#       [--picks 2] [--packs 1] [--state-dir DIR] [--warehouse W] [--log-dir DIR] [-- EXTRA SIM ARGS]
#
# Controllers are named sim-pick-01.., sim-pack-01..; state files go to DIR/<id>.state (default
# .tote-dev/controllers), logs to DIR/<id>.log (default: the state dir). Builds the simulator
# first if needed (make -C tools/controller). The key may also come from TOTE_API_KEY.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
host=127.0.0.1 port=7700 key=${TOTE_API_KEY:-} picks=2 packs=1 state_dir=.tote-dev/controllers log_dir= warehouse=
extra=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --picks) picks=$2; shift 2 ;;
    --packs) packs=$2; shift 2 ;;
    --state-dir) state_dir=$2; shift 2 ;;
    --log-dir) log_dir=$2; shift 2 ;;
    --warehouse) warehouse=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run-sims.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
[ -n "$key" ] || { echo "run-sims.sh: --key (or TOTE_API_KEY) is required" >&2; exit 64; }
log_dir=${log_dir:-$state_dir}
mkdir -p "$state_dir" "$log_dir"
sim="$here/build/tote-controller-sim"
if [ ! -x "$sim" ]; then make -s -C "$here" >/dev/null || exit 1; fi

pids=()
stop() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  exit 0
}
trap stop TERM INT

start() { # start KIND INDEX
  local id
  id=$(printf 'sim-%s-%02d' "$1" "$2")
  local args=(--host "$host" --port "$port" --key "$key" --id "$id" --kind "$1" --state-file "$state_dir/$id.state")
  [ -n "$warehouse" ] && args+=(--warehouse "$warehouse")
  if [ "$1" = pick ]; then args+=(--pick-ms 800/200 --fail-rate 0.03 --jam-rate 0.01); else args+=(--pick-ms 1500/300 --fail-rate 0.02); fi
  "$sim" "${args[@]}" "${extra[@]}" >"$log_dir/$id.log" 2>&1 &
  pids+=($!)
  echo "started $id (pid $!, log $log_dir/$id.log)"
}
for i in $(seq 1 "$picks"); do start pick "$i"; done
for i in $(seq 1 "$packs"); do start pack "$i"; done
wait
