#!/usr/bin/env bash
# PUBLISH fan-out, Cairn and redis-server side by side in one run
# (benches/fanout.rs: 100 subscribers read by one polling thread, one publisher
# pipelining 100 PUBLISH of 16 bytes). Both servers run under the same load;
# each is measured PASSES times alternately, ROUNDS rounds per pass, and the
# median round is reported with the server's CPU time per delivery.
# Usage: benches/fanout.sh   (env: SUBSCRIBERS MESSAGES ROUNDS PASSES;
#        CAIRN_BASE=<another cairn binary> adds it as a third server "base",
#        e.g. a build of the previous commit, for before/after in one run)
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${SUBSCRIBERS:-100}
MESSAGES=${MESSAGES:-20000}
ROUNDS=${ROUNDS:-5}
PASSES=${PASSES:-2}

. benches/lib.sh

cargo build --release --bin cairn 2>/dev/null
cargo bench --bench fanout --no-run 2>/dev/null
tmp=$(mktemp -d)
cairn_pid=""
redis_pid=""
base_pid=""
trap 'kill $cairn_pid $redis_pid $base_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cairn" "$tmp/redis" "$tmp/base"
servers="cairn redis"
if [ -n "${CAIRN_BASE:-}" ]; then
    base_port=$(free_port)
    "$CAIRN_BASE" --port "$base_port" --dir "$tmp/base" --save "" >/dev/null 2>&1 &
    base_pid=$!
    wait_port "$base_port"
    servers="cairn redis base"
fi
cairn_port=$(free_port)
redis_port=$(free_port)
target/release/cairn --port "$cairn_port" --dir "$tmp/cairn" --save "" >/dev/null 2>&1 &
cairn_pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --save "" --appendonly no >/dev/null 2>&1 &
redis_pid=$!
wait_port "$cairn_port"
wait_port "$redis_port"

echo "load before: $(uptime)"
declare -A rates cpus
for pass in $(seq "$PASSES"); do
    for server in $servers; do
        case $server in
            cairn) port=$cairn_port pid=$cairn_pid ;;
            redis) port=$redis_port pid=$redis_pid ;;
            base) port=$base_port pid=$base_pid ;;
        esac
        out=$(FANOUT_PID=$pid cargo bench --bench fanout -q -- "$port" "$SUBSCRIBERS" "$MESSAGES" "$ROUNDS" 2>&1)
        rate=$(echo "$out" | tail -n 1)
        cpu=$(echo "$out" | sed -n 's/server CPU: \([0-9]*\) ns.*/\1/p')
        echo "pass $pass $server: median $rate deliveries/s, $cpu ns CPU/delivery ($(echo "$out" | grep -c '^round') rounds: $(echo "$out" | sed -n 's/round [0-9]*: \([0-9]*\).*/\1/p' | tr '\n' ' '))"
        rates[$server]+="$rate "
        cpus[$server]+="$cpu "
    done
done
echo "load after: $(uptime)"
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(echo "${rates[cairn]}" | median); r=$(echo "${rates[redis]}" | median)
cc=$(echo "${cpus[cairn]}" | median); rc=$(echo "${cpus[redis]}" | median)
echo
echo "| PUBLISH to $SUBSCRIBERS subscribers | Cairn | Redis 7.0.15 | Cairn/Redis |"
echo "|---|---|---|---|"
echo "| deliveries/s (median) | $c | $r | $(awk -v a="$c" -v b="$r" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| server CPU ns per delivery | $cc | $rc | $(awk -v a="$cc" -v b="$rc" 'BEGIN{printf "%.2fx", a/b}') |"
if [ -n "${CAIRN_BASE:-}" ]; then
    b=$(echo "${rates[base]}" | median); bc=$(echo "${cpus[base]}" | median)
    echo "| base ($CAIRN_BASE): deliveries/s, CPU ns per delivery | $b, $bc | | $(awk -v a="$b" -v b="$r" 'BEGIN{printf "%.2fx", a/b}'), $(awk -v a="$bc" -v b="$rc" 'BEGIN{printf "%.2fx", a/b}') |"
fi
