#!/usr/bin/env bash
# Builds ReadSideBench in release and runs it: the read side on a generated 100,000-product catalog
# (a durable PostgreSQL cluster it creates in a temporary folder and deletes), each figure against
# its peer in the same run:
#   - order-view and autocomplete point reads over Tote's wire protocol at 64 callers vs
#     redis-benchmark -t get -c 64 -d <same size> against a private redis-server on loopback;
#     Tote's load comes from tools/loadgen's tote-loadgen (a C epoll client in its own process,
#     like redis-benchmark; built here with make), and again from the Swift client in-process;
#   - a facet query vs the equivalent PostgreSQL GROUP BY query on the same data;
#   - projection catch-up from position zero (events/s); live lag commit → visible.
# Installs redis-server (apt) when missing, starts a private one on a free loopback port with no
# persistence, and stops it on exit. Extra arguments go to ReadSideBench, e.g.
#   benchmarks/run-readside.sh --products 100000 --orders 20000 --seconds 5
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server (apt)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

work="$(mktemp -d /tmp/tote-readside.XXXXXX)"
chmod 755 "$work"  # the benchmark's PostgreSQL cluster lives below it and runs as the postgres user
redis_pid=""
bench_pid=""
cleanup() {
    # Interrupted: stop the benchmark (and a redis-benchmark it runs) before what it uses.
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        pkill -KILL -P "$bench_pid" 2>/dev/null || true
        kill -TERM "$bench_pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    # A benchmark interrupted before its own cleanup leaves its cluster running: stop it.
    for data in "$work"/tote-readside-bench-*/cluster/data; do
        [ -f "$data/postmaster.pid" ] || continue
        pg_ctl="$(pg_config --bindir)/pg_ctl"
        if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
        else "$pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "machine: $(nproc) cores, $(uname -srm); loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
swift --version 2>/dev/null | head -1
redis-server --version
if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "tote: commit $(git rev-parse --short HEAD)$( [ -n "$(git status --porcelain -- Sources Package.swift)" ] && echo ' + uncommitted changes in Sources/')"
fi
swift build -c release --package-path benchmarks --product ReadSideBench
# The C load generator for the point reads (the counterpart of redis-benchmark).
make -s -C tools/loadgen
export TOTE_LOADGEN="$PWD/tools/loadgen/build/tote-loadgen"

# A free loopback port for a private redis-server: no persistence, no other clients.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$work/redis" --daemonize no \
    --logfile "$work/redis/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
done
redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null

# Line-buffered: progress lines appear as they happen, also when the output goes to a file.
bin="$(swift build -c release --package-path benchmarks --show-bin-path)/ReadSideBench"
# In the background and waited for, so that an interrupt runs cleanup at once.
TMPDIR="$work" stdbuf -oL "$bin" --redis-port "$port" "$@" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
