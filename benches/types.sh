#!/usr/bin/env bash
# Collection-type throughput and latency: redis-benchmark against Cairn
# (release build) and redis-server side by side in one run, on the same data.
# Prints a markdown table (and writes it to $OUT when set).
# Usage: benches/types.sh        env: N (requests per -P 16 test), N2 (per -P 16
#        --threads 2 test), N1 (per -P 1 test), ZSET_MEMBERS (size of bigzset),
#        ROUNDS (passes over all tests; the table gives each side's median
#        run), OUT (file for the table)
set -euo pipefail
cd "$(dirname "$0")/.."

# 3M requests (2-3 s at these rates): Cairn's event loops take up to 0.7 s
# to settle on their layout for a new load (docs/architecture.md), which a
# 1M-request run would mostly measure.
N=${N:-3000000}
# With --threads 2 redis-benchmark measures its run time in steps of 250 ms,
# so a 1M-request run at ~1M req/s reads as 0.75, 1.0 or 1.25 s; N2 requests
# keep that step within a few percent of the run.
N2=${N2:-5000000}
N1=${N1:-50000}
ZSET_MEMBERS=${ZSET_MEMBERS:-1000000}
CLIENTS=50
# Single runs on a shared 2-core machine move by 10-30%: each figure is the
# median of ROUNDS runs, the rounds being whole passes over the tests.
ROUNDS=${ROUNDS:-3}
RAND=100000

. benches/lib.sh

nice -n 10 cargo build --release --bin cairn >&2
tmp=$(mktemp -d)
cairn_port=$(free_port)
redis_port=$(free_port)
mkdir "$tmp/cairn" "$tmp/redis"
target/release/cairn --port "$cairn_port" --dir "$tmp/cairn" --save "" >/dev/null 2>&1 &
cairn_pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --save "" --appendonly no >/dev/null 2>&1 &
redis_pid=$!
trap 'kill $cairn_pid $redis_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
wait_port "$cairn_port"
wait_port "$redis_port"

# bigzset: ZSET_MEMBERS members named like redis-benchmark's __rand_int__
# (12 digits), so "member:__rand_int__" with -r ZSET_MEMBERS always hits one,
# with pseudo-random scores so rank order differs from name order. The same
# file (ZADDs of 1000 members) is piped into both servers.
python3 - "$ZSET_MEMBERS" > "$tmp/bigzset.resp" <<'PY'
import sys, random
n = int(sys.argv[1])
rnd = random.Random(42)
out = sys.stdout.buffer
for start in range(0, n, 1000):
    args = [b"ZADD", b"bigzset"]
    for i in range(start, min(n, start + 1000)):
        args += [b"%d" % rnd.randrange(10**9), b"member:%012d" % i]
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
PY
for port in $cairn_port $redis_port; do
    redis-cli -p "$port" --pipe < "$tmp/bigzset.resp" >/dev/null
    card=$(redis-cli -p "$port" ZCARD bigzset)
    [ "$card" = "$ZSET_MEMBERS" ] || { echo "bigzset has $card members on port $port" >&2; exit 1; }
done
rss() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '$1=="used_memory_rss"{print $2}'; }
zset_rss_cairn=$(rss "$cairn_port")
zset_rss_redis=$(rss "$redis_port")
# Both servers must agree on what the read tests return.
for m in 000000000000 000000000017 000000999999; do
    a=$(redis-cli -p "$cairn_port" ZRANK bigzset "member:$m")
    b=$(redis-cli -p "$redis_port" ZRANK bigzset "member:$m")
    [ "$a" = "$b" ] || { echo "ZRANK member:$m differs: cairn $a redis $b" >&2; exit 1; }
done
[ "$(redis-cli -p "$cairn_port" ZRANGE bigzset 0 9 WITHSCORES)" = "$(redis-cli -p "$redis_port" ZRANGE bigzset 0 9 WITHSCORES)" ] ||
    { echo "ZRANGE bigzset 0 9 differs" >&2; exit 1; }

declare -A result # "server,config,test" -> "rps avg p50 p99 cpu_us;" per round
tests=()
cmds=()

# server CPU time (user+system) in clock ticks
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# run SERVER CONFIG NAME REQUESTS PIPELINE CLIENTS THREADS ARGS...
run() {
    local server=$1 config=$2 name=$3 n=$4 pipeline=$5 clients=$6 threads=$7
    shift 7
    local port=$cairn_port pid=$cairn_pid
    [ "$server" = redis ] && port=$redis_port pid=$redis_pid
    local cmd="redis-benchmark -h 127.0.0.1 -p $port -c $clients -n $n -P $pipeline --threads $threads --csv -q $*"
    [ "$round" = 1 ] && cmds+=("${cmd/-p $port/-p <$server port>}")
    local c0 c1
    c0=$(cpu_ticks "$pid")
    # csv: "test","rps","avg","min","p50","p95","p99","max"
    local lines
    lines=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$n" -P "$pipeline" --threads "$threads" --csv -q "$@" |
        tail -n +2 | tr -d '"')
    c1=$(cpu_ticks "$pid")
    local count
    count=$(echo "$lines" | wc -l)
    # CPU per request, averaged over the tests of this invocation.
    local cpu_us
    cpu_us=$(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" -v n="$n" -v k="$count" \
        'BEGIN{printf "%.2f", (b-a)/t*1e6/(n*k)}')
    while IFS=, read -r test rps avg _min p50 _p95 p99 _max; do
        [ -n "$name" ] && test=$name
        test=${test%% *}
        result["$server,$config,$test"]+="$rps $avg $p50 $p99 $cpu_us;"
        local key="$config,$test"
        [[ " ${tests[*]} " == *" $key "* ]] || tests+=("$key")
    done <<< "$lines"
}

# Configs: "16" = -P 16 -c 50 one client thread; "16x2" = the same with
# --threads 2 (one client thread saturates near Redis's own speed on 2 cores);
# "1" = -P 1 -c 1, the latency of a lone client.
# Each test runs on Cairn and then on Redis before the next test starts, so
# a drift of the machine's speed during the run hits both sides alike.
for round in $(seq "$ROUNDS"); do
for config in 16 16x2; do
    threads=1 n=$N
    [ "$config" = 16x2 ] && threads=2 n=$N2
    # One invocation per test, so the server CPU per request is per test.
    for t in set get lpush rpop sadd hset; do
        for server in cairn redis; do
            run "$server" "$config" "" "$n" 16 $CLIENTS $threads -r $RAND -t $t
        done
    done
    for server in cairn redis; do
        run "$server" "$config" ZADD "$n" 16 $CLIENTS $threads -r $RAND ZADD myzset __rand_int__ element:__rand_int__
    done
    for server in cairn redis; do
        run "$server" "$config" "ZRANGE_0_9" "$n" 16 $CLIENTS $threads ZRANGE bigzset 0 9
    done
    for server in cairn redis; do
        run "$server" "$config" ZRANK "$n" 16 $CLIENTS $threads -r "$ZSET_MEMBERS" ZRANK bigzset member:__rand_int__
    done
done
for server in cairn redis; do
    run "$server" 1 "ZRANGE_0_9" "$N1" 1 1 1 ZRANGE bigzset 0 9
    run "$server" 1 ZRANK "$N1" 1 1 1 -r "$ZSET_MEMBERS" ZRANK bigzset member:__rand_int__
done
done

# The run with the median req/s among "rps avg p50 p99 cpu;" entries.
median_run() {
    tr ';' '\n' <<< "$1" | grep . | sort -n -k1,1 | awk '{a[NR]=$0} END{print a[int((NR+1)/2)]}'
}

table() {
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- Cairn: $(target/release/cairn --version); Redis: $(redis-server --version | cut -d' ' -f1-3)"
    echo "- bigzset: $ZSET_MEMBERS members, identical in both servers; used_memory_rss with only"
    echo "  bigzset loaded: Cairn $((zset_rss_cairn / 1000000)) MB, Redis $((zset_rss_redis / 1000000)) MB"
    echo
    echo "Each side's figures are from its median run of $ROUNDS; \"rounds\" gives Cairn / Redis"
    echo "of each round."
    echo
    echo "| Test | Config | Cairn req/s | Redis req/s | Cairn / Redis | rounds | Cairn avg / p50 / p99 ms | Redis avg / p50 / p99 ms | Cairn / Redis CPU µs per req |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for key in "${tests[@]}"; do
        config=${key%%,*}
        test=${key#*,}
        c=${result["cairn,$key"]:-}
        r=${result["redis,$key"]:-}
        if [ -z "$c" ] || [ -z "$r" ]; then continue; fi
        local per_round
        per_round=$(paste -d' ' <(tr ';' '\n' <<< "$c" | grep . | cut -d' ' -f1) \
            <(tr ';' '\n' <<< "$r" | grep . | cut -d' ' -f1) |
            awk '{printf "%s%.2f", (NR>1?" ":""), $1/$2}')
        read -r crps cavg cp50 cp99 ccpu <<< "$(median_run "$c")"
        read -r rrps ravg rp50 rp99 rcpu <<< "$(median_run "$r")"
        ratio=$(awk -v c="$crps" -v r="$rrps" 'BEGIN{printf "%.2f", c/r}')
        case $config in
            16) label="-P 16 -c 50" ;;
            16x2) label="-P 16 -c 50 --threads 2" ;;
            1) label="-P 1 -c 1" ;;
        esac
        echo "| ${test//_/ } | $label | ${crps%.*} | ${rrps%.*} | $ratio | $per_round | $cavg / $cp50 / $cp99 | $ravg / $rp50 / $rp99 | $ccpu / $rcpu |"
    done
    echo
    echo "Exact commands:"
    echo
    for c in "${cmds[@]}"; do echo "    $c"; done
}
if [ -n "${OUT:-}" ]; then
    table | tee "$OUT"
else
    table
fi
