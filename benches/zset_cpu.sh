#!/usr/bin/env bash
# Server CPU per request of ZADD and ZRANK: an old Cairn binary, the current
# one and redis-server, loaded with the same data, measured in alternating
# rounds (each round runs every test against the three servers in turn, so
# the three columns of a round saw about the same machine load).
# Usage: benches/zset_cpu.sh OLD_CAIRN_BINARY
#   env: ROUNDS (3), N (requests per run, 1000000), ZSET_MEMBERS (1000000),
#        KEEP=1 leaves the servers running after the rounds (for perf).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

OLD=${1:?usage: benches/zset_cpu.sh OLD_CAIRN_BINARY}
ROUNDS=${ROUNDS:-3}
N=${N:-1000000}
ZSET_MEMBERS=${ZSET_MEMBERS:-1000000}
NEW=target/release/cairn

tmp=$(mktemp -d)
declare -A port pid
start() { # name command...
    local name=$1
    shift
    port[$name]=$(free_port)
    mkdir "$tmp/$name"
    "$@" --port "${port[$name]}" --dir "$tmp/$name" --save "" >/dev/null 2>&1 &
    pid[$name]=$!
}
start old "$OLD"
start new "$NEW"
start redis redis-server --bind 127.0.0.1 --appendonly no
trap 'kill ${pid[old]} ${pid[new]} ${pid[redis]} 2>/dev/null || true; rm -rf "$tmp"' EXIT
servers=(old new redis)
for s in "${servers[@]}"; do wait_port "${port[$s]}"; done

# bigzset as in benches/types.sh (same generator, same seed), plus myzset
# already at the 100,000 members the ZADD test converges to, so every round
# measures the steady state (most ZADDs move an existing member).
python3 - "$ZSET_MEMBERS" > "$tmp/load.resp" <<'PY'
import sys, random
n = int(sys.argv[1])
out = sys.stdout.buffer
def cmd(args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
rnd = random.Random(42)
for start in range(0, n, 1000):
    args = [b"ZADD", b"bigzset"]
    for i in range(start, min(n, start + 1000)):
        args += [b"%d" % rnd.randrange(10**9), b"member:%012d" % i]
    cmd(args)
rnd = random.Random(7)
for start in range(0, 100000, 1000):
    args = [b"ZADD", b"myzset"]
    for i in range(start, start + 1000):
        args += [b"%d" % rnd.randrange(100000), b"element:%012d" % i]
    cmd(args)
PY
rss() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '$1=="used_memory_rss"{print $2}'; }
for s in "${servers[@]}"; do
    before=$(rss "${port[$s]}")
    redis-cli -p "${port[$s]}" --pipe < "$tmp/load.resp" >/dev/null
    echo "$s: bigzset $(redis-cli -p "${port[$s]}" ZCARD bigzset) members, myzset $(redis-cli -p "${port[$s]}" ZCARD myzset);" \
        "RSS $((before / 1000000)) -> $(($(rss "${port[$s]}") / 1000000)) MB"
done
for m in 000000000000 000000000017 000000999999; do
    r=$(redis-cli -p "${port[redis]}" ZRANK bigzset "member:$m")
    for s in old new; do
        [ "$(redis-cli -p "${port[$s]}" ZRANK bigzset "member:$m")" = "$r" ] || { echo "$s: ZRANK member:$m differs" >&2; exit 1; }
    done
done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# measure SERVER THREADS ARGS... -> "cpu_us rps"
measure() {
    local s=$1 threads=$2
    shift 2
    local c0 c1 rps
    c0=$(cpu_ticks "${pid[$s]}")
    rps=$(redis-benchmark -h 127.0.0.1 -p "${port[$s]}" -c 50 -P 16 -n "$N" --threads "$threads" --csv -q "$@" |
        tail -n 1 | tr -d '"' | cut -d, -f2)
    c1=$(cpu_ticks "${pid[$s]}")
    awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" -v n="$N" -v r="$rps" \
        'BEGIN{printf "%.2f %d", (b-a)/t*1e6/n, r}'
}

echo
echo "| round | test | client threads | old µs/req | new µs/req | Redis µs/req | new / Redis CPU | old / new / Redis req/s | load |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    for test in ZADD ZRANK; do
        for threads in 1 2; do
            if [ "$test" = ZADD ]; then
                args=(-r 100000 ZADD myzset __rand_int__ element:__rand_int__)
            else
                args=(-r "$ZSET_MEMBERS" ZRANK bigzset member:__rand_int__)
            fi
            declare -A cpu=() rps=()
            for s in "${servers[@]}"; do
                read -r cpu[$s] rps[$s] <<< "$(measure "$s" "$threads" "${args[@]}")"
            done
            ratio=$(awk -v a="${cpu[new]}" -v b="${cpu[redis]}" 'BEGIN{printf "%.2f", a/b}')
            echo "| $round | $test | $threads | ${cpu[old]} | ${cpu[new]} | ${cpu[redis]} | $ratio |" \
                "${rps[old]} / ${rps[new]} / ${rps[redis]} | $(cut -d' ' -f1 /proc/loadavg) |"
        done
    done
done
if [ -n "${KEEP:-}" ]; then
    echo "servers left running: old ${pid[old]}:${port[old]} new ${pid[new]}:${port[new]} redis ${pid[redis]}:${port[redis]}"
    trap - EXIT
fi
