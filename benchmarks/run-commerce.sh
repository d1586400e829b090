#!/usr/bin/env bash
# Builds CommerceBench in release and runs it: PlaceOrder (3 lines) over the wire at 16 and 64
# clients against a command node in the same process, on a durable PostgreSQL cluster it creates
# in a temporary folder (and deletes); the event store's single-event append benchmark at the
# same concurrency in the same run; add-to-cart latency. Extra arguments go to CommerceBench, e.g.
#   benchmarks/run-commerce.sh --clients 16,64 --orders 4000
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

echo "machine: $(nproc) cores, $(uname -srm)"
swift --version 2>/dev/null | head -1
if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "tote: commit $(git rev-parse --short HEAD)$( [ -n "$(git status --porcelain -- Sources Package.swift)" ] && echo ' + uncommitted changes in Sources/')"
fi
swift build -c release --package-path benchmarks --product CommerceBench
exec "$(swift build -c release --package-path benchmarks --show-bin-path)/CommerceBench" "$@"
