#!/usr/bin/env bash
# Runs redis-benchmark against Cairn (release build) and redis-server side by
# side and writes docs/benchmarks.md. Usage: benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

P1_REQUESTS=${P1_REQUESTS:-200000}
P16_REQUESTS=${P16_REQUESTS:-1000000}
# With --threads, redis-benchmark measures elapsed time in steps of about
# 250 ms: runs of several seconds keep that error to a few percent.
P1X2_REQUESTS=${P1X2_REQUESTS:-600000}
P16X2_REQUESTS=${P16X2_REQUESTS:-6000000}
# Each figure is the median of ROUNDS runs, the two servers alternating.
ROUNDS=${ROUNDS:-3}
CONFIGS=${CONFIGS:-1 16 1x2 16x2}
CLIENTS=50
TESTS=set,get,incr,mset
OUT=${OUT:-docs/benchmarks.md}

. benches/lib.sh

cargo build --release --bin cairn
tmp=$(mktemp -d)
cairn_port=$(free_port)
redis_port=$(free_port)
target/release/cairn --port "$cairn_port" --dir "$tmp" --save "" >/dev/null 2>&1 &
cairn_pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp" --save "" --appendonly no >/dev/null 2>&1 &
redis_pid=$!
trap 'kill $cairn_pid $redis_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
wait_port "$cairn_port"
wait_port "$redis_port"

# bench PORT PIPELINE REQUESTS [THREADS] -> "TEST rps" lines
bench() {
    redis-benchmark -h 127.0.0.1 -p "$1" -c "$CLIENTS" -n "$3" -P "$2" --threads "${4:-1}" -t "$TESTS" --csv -q |
        tail -n +2 | tr -d '"' | awk -F, '{split($1, name, " "); print name[1], $2}'
}

declare -A result
cmds=()
# "1x2", "16x2": a two-threaded client. One redis-benchmark thread saturates
# at about Redis's own speed on this machine, so it cannot show a server
# faster than Redis; two client threads can (and cost the servers a share of
# the two cores, the same for both).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
declare -A runs
for round in $(seq "$ROUNDS"); do
    for config in $CONFIGS; do
        pipeline=${config%x*}
        threads=1
        case $config in *x2) threads=2 ;; esac
        case $config in
            1) n=$P1_REQUESTS ;;
            16) n=$P16_REQUESTS ;;
            1x2) n=$P1X2_REQUESTS ;;
            16x2) n=$P16X2_REQUESTS ;;
        esac
        for server in cairn redis; do
            port=$cairn_port
            [ "$server" = redis ] && port=$redis_port
            [ "$round" = 1 ] && cmds+=("redis-benchmark -h 127.0.0.1 -p <$server port> -c $CLIENTS -n $n -P $pipeline --threads $threads -t $TESTS --csv -q")
            while read -r test rps; do
                test=${test%% *}
                runs["$server,$config,$test"]+="$rps "
            done < <(bench "$port" "$pipeline" "$n" "$threads")
        done
    done
done
for k in "${!runs[@]}"; do
    result["$k"]=$(echo "${runs[$k]}" | median)
done

{
    echo "# Benchmarks"
    echo
    echo "Cairn next to Redis, measured by \`benches/compare.sh\` in one run on the same"
    echo "machine (servers on loopback, redis-benchmark on the same host, so client and"
    echo "servers share the cores). Regenerate with \`benches/compare.sh\`."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- Cairn: $(target/release/cairn --version)"
    echo "- Redis: $(redis-server --version)"
    echo "- redis-benchmark: $(redis-benchmark --version 2>/dev/null || echo unknown)"
    echo "- Cairn started as: \`target/release/cairn --port <port> --dir <tmp> --save \"\"\`"
    echo "- Redis started as: \`redis-server --port <port> --bind 127.0.0.1 --dir <tmp> --save \"\" --appendonly no\`"
    echo
    echo "Each figure is the median of $ROUNDS runs; the servers alternate within a round."
    echo
    echo "| Test | Pipeline | Cairn req/s | Redis req/s | Cairn / Redis |"
    echo "|---|---|---|---|---|"
    for pipeline in $CONFIGS; do
        for test in SET GET INCR "MSET"; do
            key=$test
            [ "$test" = MSET ] && key=MSET
            c=${result["cairn,$pipeline,$key"]:-}
            r=${result["redis,$pipeline,$key"]:-}
            if [ -z "$c" ] || [ -z "$r" ]; then continue; fi
            ratio=$(awk -v c="$c" -v r="$r" 'BEGIN{printf "%.2f", c/r}')
            echo "| $test | $pipeline | $c | $r | $ratio |"
        done
    done
    echo
    echo "MSET is redis-benchmark's \"MSET (10 keys)\". Pipelines \"1x2\" and \"16x2\" run"
    echo "redis-benchmark with \`--threads 2\`: a single client thread saturates near Redis's"
    echo "own throughput on 2 cores, so only a two-threaded client can show a server that"
    echo "is faster than Redis (Redis runs commands on one thread; Cairn on all cores)."
    echo "Threaded runs are long because redis-benchmark times them in ~250 ms steps."
    echo
    echo "Exact commands:"
    echo
    for c in "${cmds[@]}"; do echo "    $c"; done
} > "$OUT"
echo "wrote $OUT"
cat "$OUT"
