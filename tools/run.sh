#!/usr/bin/env bash
# The README's run command: sets up the machine, builds Tote (release) and runs the whole platform
# locally with `tote dev`: a private PostgreSQL cluster in .tote-dev/ (created on first use,
# reused after), every role of the server in one process, and development API keys.
#
#   tools/run.sh [--listen HOST:PORT] [--reset] [--folder DIR]   (default 127.0.0.1:7700; Ctrl-C stops it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
echo "run: building tote (release; the first build takes a few minutes)"
swift build -c release --product tote
bin="$(swift build -c release --show-bin-path)/tote"
exec "$bin" dev "$@"
