#!/usr/bin/env bash
# The README's run command: sets up the machine, builds Tote (release) and the controller
# simulator, and runs the whole platform locally with `tote dev`: a private PostgreSQL cluster in
# .tote-dev/ (created on first use, reused after), every role of the server in one process,
# development API keys, and simulated pick and pack stations (tools/controller) that take paid
# orders to PACKED.
#
#   tools/run.sh [--listen HOST:PORT] [--reset] [--folder DIR] [--controllers PICK,PACK]
#   (default 127.0.0.1:7700 and 2,1; Ctrl-C stops everything)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
echo "run: building tote (release; the first build takes a few minutes)"
swift build -c release --product tote
echo "run: building the controller simulator (make -C tools/controller)"
make -s -C tools/controller || echo "run: the controller simulator did not build; tote dev runs without simulated stations"
bin="$(swift build -c release --show-bin-path)/tote"
exec "$bin" dev "$@"
