#!/usr/bin/env bash
# TLS throughput: Cairn and redis-server side by side in one run, serving the
# same certificate (made here with the openssl CLI), measured by
# redis-benchmark --tls. Writes docs/benchmarks-tls.md and prints the table.
# Usage: benches/tls.sh   (REQUESTS=200000 benches/tls.sh for a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-1000000}
CLIENTS=50
TESTS=set,get
OUT=${OUT:-docs/benchmarks-tls.md}

for tool in openssl redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "benches/tls.sh needs $tool" >&2; exit 1; }
done

. benches/lib.sh

nice -n 10 cargo build --release --bin cairn
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

# One CA, one server certificate for 127.0.0.1, used by both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tmp/san.ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -CAcreateserial -days 2 -extfile "$tmp/san.ext" -out "$tmp/server.crt" 2>/dev/null

TLS_ARGS=(--tls-cert-file "$tmp/server.crt" --tls-key-file "$tmp/server.key"
    --tls-ca-cert-file "$tmp/ca.crt" --tls-auth-clients no)
cairn_port=$(free_port)
redis_port=$(free_port)
mkdir -p "$tmp/cairn" "$tmp/redis"
target/release/cairn --port 0 --tls-port "$cairn_port" --dir "$tmp/cairn" --save "" \
    "${TLS_ARGS[@]}" >"$tmp/cairn.log" 2>&1 &
pids+=($!)
cairn_pid=$!
redis-server --port 0 --tls-port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" \
    --save "" --appendonly no "${TLS_ARGS[@]}" >"$tmp/redis.log" 2>&1 &
pids+=($!)

wait_tls() {
    for _ in $(seq 200); do
        if redis-cli --tls --cacert "$tmp/ca.crt" -h 127.0.0.1 -p "$1" PING 2>/dev/null | grep -q PONG; then
            return 0
        fi
        sleep 0.05
    done
    echo "server on TLS port $1 did not start" >&2
    cat "$tmp/cairn.log" "$tmp/redis.log" >&2
    return 1
}
wait_tls "$cairn_port"
wait_tls "$redis_port"

# bench PORT PIPELINE THREADS -> "TEST rps" lines
bench() {
    redis-benchmark --tls --cacert "$tmp/ca.crt" -h 127.0.0.1 -p "$1" -c "$CLIENTS" \
        -n "$REQUESTS" -P "$2" --threads "$3" -t "$TESTS" --csv -q |
        tail -n +2 | tr -d '"' | awk -F, '{split($1, name, " "); print name[1], $2}'
}

declare -A result
# "16x2": a two-threaded client, since one redis-benchmark thread doing TLS
# saturates near one server's speed (see benches/compare.sh).
configs=("1 16 1" "16 16 1" "16x2 16 2")
[ -n "${QUICK:-}" ] && configs=("16 16 1")
# X2_ONLY=1 REQUESTS=5000000: only the two-thread rows, long enough that
# redis-benchmark's ~250 ms timing steps in threaded mode stay a few percent.
[ -n "${X2_ONLY:-}" ] && configs=("16x2 16 2")
for c in "${configs[@]}"; do
    read -r name pipeline threads <<<"$c"
    [ "$name" = 1 ] && pipeline=1
    for server in cairn redis; do
        port=$cairn_port
        [ "$server" = redis ] && port=$redis_port
        while read -r test rps; do
            result["$server,$name,$test"]=$rps
        done < <(bench "$port" "$pipeline" "$threads")
    done
done
load=$(uptime | sed 's/.*load average: //')
cairn_rss=$(awk '/VmRSS/ {print $2}' /proc/$cairn_pid/status)

table() {
    echo "| pipeline | test | Cairn rps | Redis rps | Cairn/Redis |"
    echo "|---|---|---:|---:|---:|"
    for c in "${configs[@]}"; do
        read -r name _ _ <<<"$c"
        for t in SET GET; do
            a=${result["cairn,$name,$t"]:-0}
            b=${result["redis,$name,$t"]:-0}
            ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
            echo "| -P $name | $t | $a | $b | $ratio |"
        done
    done
}

{
    echo "# TLS throughput"
    echo
    echo "Cairn next to redis-server, both TLS-only (\`--port 0 --tls-port\`), serving the"
    echo "same ECDSA P-256 certificate, measured in one run by \`benches/tls.sh\` with"
    echo "redis-benchmark's TLS client on the same host (client and servers share the cores)."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end: $load"
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- Cairn: $(target/release/cairn --version)"
    echo "- Redis: $(redis-server --version)"
    echo "- Servers: \`--port 0 --tls-port <p> --tls-cert-file server.crt --tls-key-file server.key --tls-ca-cert-file ca.crt --tls-auth-clients no --save \"\"\`"
    echo "- Client: \`redis-benchmark --tls --cacert ca.crt -h 127.0.0.1 -p <p> -c $CLIENTS -n $REQUESTS -P <pipeline> --threads <1|2> -t $TESTS --csv -q\`"
    echo "- Cairn RSS after the run: ${cairn_rss} kB"
    echo
    table
} >"$OUT"
cat "$OUT"
