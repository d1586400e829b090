#!/usr/bin/env bash
# The README's run command: sets up the machine, builds Tote (release) and runs the platform.
# For now the platform is the wire-protocol server (`tote serve`) with Health and Diagnostics;
# later roles (commands, projections, queries, the bridge, `tote dev`) join it as they land.
#
#   tools/run.sh [--listen HOST:PORT]      (default 127.0.0.1:7700; Ctrl-C stops it gracefully)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
echo "run: building tote (release; the first build takes a few minutes)"
swift build -c release --product tote
bin="$(swift build -c release --show-bin-path)/tote"
if [ -z "${TOTE_API_KEYS:-}" ]; then
  export TOTE_API_KEYS="storefront:dev-storefront-key-0001,operator:dev-operator-key-00001,controller:dev-controller-key-0001"
  echo "run: using the development API keys (set TOTE_API_KEYS to use your own):"
  echo "       storefront  dev-storefront-key-0001"
  echo "       operator    dev-operator-key-00001"
  echo "       controller  dev-controller-key-0001"
fi
listen=127.0.0.1:7700
if [ "${1:-}" = "--listen" ] && [ -n "${2:-}" ]; then listen=$2; shift 2; fi
echo "run: try it:  $bin health --server $listen --api-key dev-storefront-key-0001"
echo "         or:  make -C tools/c && tools/c/build/tote-health --port ${listen##*:} --key dev-storefront-key-0001"
exec "$bin" serve --listen "$listen" "$@"
