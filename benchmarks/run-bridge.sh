#!/usr/bin/env bash
# Builds BridgeBench in release and runs it: a Tote node (commerce + automation bridge) on real
# TCP, on a durable PostgreSQL cluster it creates in a temporary folder (and deletes), 100
# simulated controllers (80 pick, 20 pack) on their own connections, and orders placed and paid
# at fixed rates. Reports OrderPaid → first pick command received p50/p99 and tasks done per
# second. Extra arguments go to BridgeBench, e.g.
#   benchmarks/run-bridge.sh --rates 20,40 --seconds 30
# BridgeBench stops its cluster itself; should it be killed, this script stops what it left.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

echo "machine: $(nproc) cores, $(uname -srm), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
swift --version 2>/dev/null | head -1
if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "tote: commit $(git rev-parse --short HEAD)$( [ -n "$(git status --porcelain -- Sources Package.swift)" ] && echo ' + uncommitted changes in Sources/')"
fi
swift build -c release --package-path benchmarks --product BridgeBench
bin="$(swift build -c release --package-path benchmarks --show-bin-path)/BridgeBench"

tmp="${TMPDIR:-/tmp}"
before=$(ls -d "$tmp"/tote-bridge-bench-* 2>/dev/null || true)
cleanup() {
    # A cluster of a BridgeBench that did not finish (killed, crashed): stop it, remove its folder.
    for dir in $(ls -d "$tmp"/tote-bridge-bench-* 2>/dev/null || true); do
        case " $before " in *" $dir "*) continue ;; esac
        if [ -f "$dir/cluster/data/postmaster.pid" ]; then
            if [ "$(id -u)" = 0 ]; then
                runuser -u postgres -- "$(pg_config --bindir)/pg_ctl" -D "$dir/cluster/data" -m immediate stop >/dev/null 2>&1 || true
            else
                "$(pg_config --bindir)/pg_ctl" -D "$dir/cluster/data" -m immediate stop >/dev/null 2>&1 || true
            fi
        fi
        rm -rf "$dir"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$bin" "$@"
