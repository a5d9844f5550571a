#!/usr/bin/env bash
# Expiry benchmark, Cairn and redis-server side by side in one run: expired
# event lag among 0..1M long-TTL keys, SET EX -P 16 throughput ratio, GET
# latency during a 1M-key mass expiry, memory per TTL. Writes
# docs/benchmarks-expiry.md (the measuring code is benches/expiry.rs).
# Usage: benches/expiry.sh   (needs redis-server and redis-benchmark 7.x)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/benchmarks-expiry.md}
nice -n 10 cargo build --release --bin cairn --example expiry_bench
report=$(nice -n 10 target/release/examples/expiry_bench target/release/cairn)
{
    echo "## Expiry (benches/expiry.sh)"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores (load average at start: $(cut -d' ' -f1-3 /proc/loadavg)),"
    echo "$(redis-server --version | cut -d' ' -f1-3), both servers and all clients on this machine."
    echo
    echo "$report"
} >"$OUT"
echo "wrote $OUT"
