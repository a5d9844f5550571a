#!/usr/bin/env bash
# Cost of the counting allocator: redis-benchmark GET/SET -P 16 against two
# Cairn binaries, alternating, no maxmemory. Reports requests/s and the
# server's CPU time per request (utime+stime from /proc), which is far less
# sensitive than throughput to other load on a shared machine.
# Usage: benches/alloc_overhead.sh WITHOUT_BINARY [WITH_BINARY]
#   WITHOUT_BINARY: a build of src/main.rs with the #[global_allocator] line removed.
set -euo pipefail
cd "$(dirname "$0")/.."
without=$1
with=${2:-target/release/cairn}
N=${N:-1000000}
ROUNDS=${ROUNDS:-3}
. benches/lib.sh
for r in $(seq "$ROUNDS"); do
    for variant in without with; do
        bin=${!variant}
        port=$(free_port); tmp=$(mktemp -d)
        "$bin" --port "$port" --dir "$tmp" --save "" >/dev/null 2>&1 & pid=$!
        for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done
        cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
        res=""
        for t in set get; do
            c0=$(cpu)
            rps=$(redis-benchmark -p "$port" -c 50 -n "$N" -P 16 -r 100000 -t "$t" --csv -q | tr -d '"' | awk -F, '/^(SET|GET)/{print $2}')
            c1=$(cpu)
            ns=$(python3 -c "print(round(($c1-$c0)/$(getconf CLK_TCK)*1e9/$N))")
            res="$res $t: ${rps} rps ${ns} ns-cpu/req;"
        done
        echo "round=$r $variant$res"
        kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"
    done
done
