#!/usr/bin/env bash
# Builds EventStoreBench in release and runs it: Tote's event-store appends (1 event, and 10-event
# batches) and pgbench single-row / 10-row INSERTs at 1, 16 and 64 concurrent writers, on one
# durable (fsync on) PostgreSQL cluster that it creates in a temporary folder and deletes at the
# end; then catch-up reads of a 500,000-event log. Extra arguments go to EventStoreBench, e.g.
#   benchmarks/run-eventstore.sh --rounds 3
#   benchmarks/run-eventstore.sh --writers 16 --workloads append,pgbench --wait-events
# Defaults: 1 s warm-up, 5 s measured per point, 100-byte payload, 1000 streams, 1 round.
# Needs PostgreSQL's server programs and pgbench (Debian: postgresql-15 ships both).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

echo "machine: $(nproc) cores, $(uname -srm)"
swift --version 2>/dev/null | head -1
# The Tote being measured is the working tree of the root package: say which commit, and whether
# Sources/ had uncommitted changes when it was built.
if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "tote: commit $(git rev-parse --short HEAD)$( [ -n "$(git status --porcelain -- Sources Package.swift)" ] && echo ' + uncommitted changes in Sources/')"
fi
swift build -c release --package-path benchmarks --product EventStoreBench
exec "$(swift build -c release --package-path benchmarks --show-bin-path)/EventStoreBench" "$@"
