#!/usr/bin/env bash
# Streams and pub/sub, Cairn and redis-server side by side in one run:
#   1. XADD s * f v with redis-benchmark -P 16 -c 50
#   2. PUBLISH fan-out to 100 subscribers (benches/fanout.rs), messages/s delivered
#   3. RSS of 1M stream entries of 3 small fields
# Writes docs/benchmarks-streams.md. Usage: benches/streams.sh
# Quick mode, XADD only, prints and writes nothing: benches/streams.sh xadd
#   (ROUNDS alternating rounds, default 3, each server's median reported).
# XADD reports server CPU per request too (utime+stime of the server process
# around the run): it survives a loaded machine where req/s does not.
set -euo pipefail
cd "$(dirname "$0")/.."

XADD_REQUESTS=${XADD_REQUESTS:-1000000}
FANOUT_MESSAGES=${FANOUT_MESSAGES:-20000}
SUBSCRIBERS=${SUBSCRIBERS:-100}
ENTRIES=${ENTRIES:-1000000}
ROUNDS=${ROUNDS:-3}
MODE=${1:-full}
OUT=docs/benchmarks-streams.md

. benches/lib.sh
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
# CPU time (user+system, all threads) of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# CAIRN_BIN: a prebuilt binary to measure instead (e.g. a baseline copy).
CAIRN_BIN=${CAIRN_BIN:-}
[ -n "$CAIRN_BIN" ] || { cargo build --release --bin cairn; CAIRN_BIN=target/release/cairn; }
[ "$MODE" = xadd ] || cargo bench --bench fanout --no-run 2>/dev/null
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
    "$CAIRN_BIN" --port "$cairn_port" --dir "$tmp/cairn" --save "" >/dev/null 2>&1 &
    cairn_pid=$!
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --save "" --appendonly no >/dev/null 2>&1 &
    redis_pid=$!
    wait_port "$cairn_port"
    wait_port "$redis_port"
}
start_servers
port_of() { if [ "$1" = cairn ]; then echo "$cairn_port"; else echo "$redis_port"; fi; }
pid_of() { if [ "$1" = cairn ]; then echo "$cairn_pid"; else echo "$redis_pid"; fi; }

# One XADD run against $1: prints "requests/s cpu-us-per-request".
xadd_run() {
    local port pid before after rps
    port=$(port_of "$1")
    pid=$(pid_of "$1")
    redis-cli -p "$port" DEL bench:xadd >/dev/null
    before=$(cpu_ticks "$pid")
    rps=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -P 16 -n "$XADD_REQUESTS" --csv \
        XADD bench:xadd '*' f v | tail -n 1 | tr -d '"' | cut -d, -f2)
    after=$(cpu_ticks "$pid")
    redis-cli -p "$port" DEL bench:xadd >/dev/null
    echo "$rps $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$XADD_REQUESTS" \
        'BEGIN { printf "%.3f", t * us / n }')"
}
declare -A xadd xcpu fanout rss base len per
# Alternate the order each round so neither server always runs first.
for round in $(seq "$ROUNDS"); do
    order="cairn redis"
    [ $((round % 2)) -eq 0 ] && order="redis cairn"
    for server in $order; do
        read -r rps us <<<"$(xadd_run $server)"
        echo "round $round $server: $rps req/s, $us us CPU/XADD" >&2
        xadd[$server]="${xadd[$server]:-} $rps"
        xcpu[$server]="${xcpu[$server]:-} $us"
    done
done
for server in cairn redis; do
    xadd[$server]=$(tr ' ' '\n' <<<"${xadd[$server]}" | grep . | median)
    xcpu[$server]=$(tr ' ' '\n' <<<"${xcpu[$server]}" | grep . | median)
done
load=$(uptime | sed 's/.*load average: //')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
if [ "$MODE" = xadd ]; then
    echo "XADD (median of $ROUNDS): Cairn ${xadd[cairn]} req/s, ${xcpu[cairn]} us CPU/req;" \
        "Redis ${xadd[redis]} req/s, ${xcpu[redis]} us CPU/req;" \
        "req/s ratio $(ratio "${xadd[cairn]}" "${xadd[redis]}"), CPU ratio $(ratio "${xcpu[cairn]}" "${xcpu[redis]}");" \
        "load $load"
    exit 0
fi
for server in cairn redis; do
    port=$(port_of $server)
    redis-cli -p "$port" CONFIG SET client-output-buffer-limit "pubsub 0 0 0" >/dev/null
    base[$server]=$(rss_kb "$(pid_of $server)")
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
    echo "| ... server CPU per XADD (us, user+system) | ${xcpu[cairn]} | ${xcpu[redis]} | $(ratio "${xcpu[cairn]}" "${xcpu[redis]}") |"
    echo "| PUBLISH to $SUBSCRIBERS subscribers (messages delivered/s) | ${fanout[cairn]} | ${fanout[redis]} | $(ratio "${fanout[cairn]}" "${fanout[redis]}") |"
    echo "| RSS growth for ~$ENTRIES entries of 3 small fields (KB) | ${rss[cairn]} (${len[cairn]} entries) | ${rss[redis]} (${len[redis]} entries) | $(ratio "${per[cairn]}" "${per[redis]}") |"
    echo "| ... per entry (bytes) | ${per[cairn]} | ${per[redis]} | $(ratio "${per[cairn]}" "${per[redis]}") |"
    echo
    echo "Commands: \`redis-benchmark -c 50 -P 16 -n $XADD_REQUESTS XADD bench:xadd '*' f v\`;"
    echo "\`cargo bench --bench fanout -- PORT $SUBSCRIBERS $FANOUT_MESSAGES\` (100 subscriber threads,"
    echo "one publisher pipelining 100 PUBLISH at a time, 16-byte payloads, time until the last"
    echo "subscriber has read every message); memory: RSS (ps) before and after"
    echo "\`redis-benchmark -c 4 -P 64 -n $ENTRIES XADD bench:mem '*' a 1 b 22 c abc\` on a flushed server."
    echo "XADD figures are the median of $ROUNDS alternating rounds; load average at the end of"
    echo "the XADD rounds: $load."
    echo "Targets: XADD and fan-out at least 1.0x Redis, RSS within 1.5x."
} > "$OUT"
cat "$OUT"
