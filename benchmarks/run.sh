#!/usr/bin/env bash
# Builds RPCBench in release and runs the whole matrix: peers {tote, grpc} × connections {1, 8} ×
# concurrent callers {1, 64}. Extra arguments go to RPCBench, e.g.
#   benchmarks/run.sh --duration 10 --rounds 3
#   benchmarks/run.sh --peers tote --connections 1 --callers 64
# Defaults: 1 s warm-up, 5 s measured per point, 64-byte payload, 1 round.
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
swift build -c release --package-path benchmarks --product RPCBench
exec "$(swift build -c release --package-path benchmarks --show-bin-path)/RPCBench" run "$@"
