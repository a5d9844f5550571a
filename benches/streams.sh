#!/usr/bin/env bash
# Streams and pub/sub, Cairn and redis-server side by side in one run:
#   1. XADD s * f v with redis-benchmark -P 16 -c 50
#   2. PUBLISH fan-out to 100 subscribers (benches/fanout.rs), messages/s delivered
#   3. RSS of 1M stream entries of 3 small fields
# Writes docs/benchmarks-streams.md. Usage: benches/streams.sh
set -euo pipefail
cd "$(dirname "$0")/.."

XADD_REQUESTS=${XADD_REQUESTS:-1000000}
FANOUT_MESSAGES=${FANOUT_MESSAGES:-20000}
SUBSCRIBERS=${SUBSCRIBERS:-100}
ENTRIES=${ENTRIES:-1000000}
OUT=docs/benchmarks-streams.md

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 200); do
        if redis-cli -p "$1" PING >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    return 1
}
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

cargo build --release --bin cairn
cargo bench --bench fanout --no-run 2>/dev/null
tmp=$(mktemp -d)
cairn_pid=""
redis_pid=""
trap 'kill $cairn_pid $redis_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Fresh servers (so a phase's memory measure starts from an empty process).
start_servers() {
    kill $cairn_pid $redis_pid 2>/dev/null || true
    sleep 0.5
    rm -rf "$tmp/cairn" "$tmp/redis"
    mkdir -p "$tmp/cairn" "$tmp/redis"
    cairn_port=$(free_port)
    redis_port=$(free_port)
    target/release/cairn --port "$cairn_port" --dir "$tmp/cairn" --save "" >/dev/null 2>&1 &
    cairn_pid=$!
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --save "" --appendonly no >/dev/null 2>&1 &
    redis_pid=$!
    wait_port "$cairn_port"
    wait_port "$redis_port"
}
start_servers
port_of() { if [ "$1" = cairn ]; then echo "$cairn_port"; else echo "$redis_port"; fi; }
pid_of() { if [ "$1" = cairn ]; then echo "$cairn_pid"; else echo "$redis_pid"; fi; }

declare -A xadd fanout rss base len per
for server in cairn redis; do
    port=$(port_of $server)
    redis-cli -p "$port" CONFIG SET client-output-buffer-limit "pubsub 0 0 0" >/dev/null
    base[$server]=$(rss_kb "$(pid_of $server)")
    xadd[$server]=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -P 16 -n "$XADD_REQUESTS" --csv \
        XADD bench:xadd '*' f v | tail -n 1 | tr -d '"' | cut -d, -f2)
    redis-cli -p "$port" DEL bench:xadd >/dev/null
    fanout[$server]=$(cargo bench --bench fanout -q -- "$port" "$SUBSCRIBERS" "$FANOUT_MESSAGES" 2>/dev/null | tail -n 1)
done
# Memory last, on fresh servers: 1M entries of 3 small fields.
start_servers
for server in cairn redis; do
    port=$(port_of $server)
    redis-cli -p "$port" FLUSHALL >/dev/null
    before=$(rss_kb "$(pid_of $server)")
    redis-benchmark -h 127.0.0.1 -p "$port" -c 4 -P 64 -n "$ENTRIES" -q \
        XADD bench:mem '*' a 1 b 22 c abc >/dev/null
    # Pipelining rounds the count up a little; report per entry too.
    len[$server]=$(redis-cli -p "$port" XLEN bench:mem)
    after=$(rss_kb "$(pid_of $server)")
    rss[$server]=$((after - before))
    per[$server]=$((rss[$server] * 1024 / len[$server]))
    base[$server]=$after
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cpus=$(nproc)
{
    echo "# Streams and pub/sub benchmarks"
    echo
    echo "Written by \`benches/streams.sh\` ($(date -u +%Y-%m-%d), $cpus CPUs, both servers on the"
    echo "same machine in the same run, loopback; redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2))."
    echo
    echo "| Measurement | Cairn | Redis | Cairn / Redis |"
    echo "|---|---:|---:|---:|"
    echo "| XADD s * f v, -P 16 -c 50 (requests/s) | ${xadd[cairn]} | ${xadd[redis]} | $(ratio "${xadd[cairn]}" "${xadd[redis]}") |"
    echo "| PUBLISH to $SUBSCRIBERS subscribers (messages delivered/s) | ${fanout[cairn]} | ${fanout[redis]} | $(ratio "${fanout[cairn]}" "${fanout[redis]}") |"
    echo "| RSS growth for ~$ENTRIES entries of 3 small fields (KB) | ${rss[cairn]} (${len[cairn]} entries) | ${rss[redis]} (${len[redis]} entries) | $(ratio "${per[cairn]}" "${per[redis]}") |"
    echo "| ... per entry (bytes) | ${per[cairn]} | ${per[redis]} | $(ratio "${per[cairn]}" "${per[redis]}") |"
    echo
    echo "Commands: \`redis-benchmark -c 50 -P 16 -n $XADD_REQUESTS XADD bench:xadd '*' f v\`;"
    echo "\`cargo bench --bench fanout -- PORT $SUBSCRIBERS $FANOUT_MESSAGES\` (100 subscriber threads,"
    echo "one publisher pipelining 100 PUBLISH at a time, 16-byte payloads, time until the last"
    echo "subscriber has read every message); memory: RSS (ps) before and after"
    echo "\`redis-benchmark -c 4 -P 64 -n $ENTRIES XADD bench:mem '*' a 1 b 22 c abc\` on a flushed server."
    echo "Targets: XADD and fan-out at least 1.0x Redis, RSS within 1.5x."
} > "$OUT"
cat "$OUT"
