#!/usr/bin/env bash
# Cairn vs redis-server under maxmemory with allkeys-lru and a Zipfian
# cache-aside load (benches/zipf-load): throughput, hit ratio and peak RSS,
# both servers in one run, one after the other with the same seed.
# Usage: benches/eviction.sh   (env: MAXMEMORY KEYS ALPHA VALUE WARMUP RUN CONNS PIPELINE)
set -euo pipefail
cd "$(dirname "$0")/.."

MAXMEMORY=${MAXMEMORY:-100mb}
KEYS=${KEYS:-1000000}
ALPHA=${ALPHA:-0.99}
VALUE=${VALUE:-1000}
WARMUP=${WARMUP:-20}
RUN=${RUN:-30}
CONNS=${CONNS:-4}
PIPELINE=${PIPELINE:-16}

. benches/lib.sh
field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p"; }

cargo build --release --bin cairn >/dev/null
(cd benches/zipf-load && cargo build --release --offline >/dev/null)
LOAD=benches/zipf-load/target/release/zipf-load
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

run_one() { # name cmd... -> prints a result line
    local name=$1; shift
    local port; port=$(free_port)
    "$@" --port "$port" --dir "$tmp" --save "" --appendonly no \
        --maxmemory "$MAXMEMORY" --maxmemory-policy allkeys-lru >/dev/null 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port"
    local out; out=$($LOAD "$port" "$pid" "$KEYS" "$ALPHA" "$VALUE" "$WARMUP" "$RUN" "$CONNS" "$PIPELINE" 42)
    local used rss evicted keys
    used=$(field "$port" memory used_memory)
    rss=$(field "$port" memory used_memory_rss)
    evicted=$(field "$port" stats evicted_keys)
    keys=$(redis-cli -p "$port" DBSIZE)
    echo "$name $out used_memory=$used rss_end=$rss evicted=$evicted keys=$keys"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

max_bytes=$(python3 -c "
s='$MAXMEMORY'.lower(); u={'kb':1024,'k':1000,'mb':1<<20,'m':10**6,'gb':1<<30,'g':10**9}
for k in sorted(u, key=len, reverse=True):
    if s.endswith(k): print(int(s[:-len(k)])*u[k]); break
else: print(int(s))")
echo "maxmemory=$MAXMEMORY ($max_bytes bytes) keys=$KEYS alpha=$ALPHA value=$VALUE warmup=${WARMUP}s run=${RUN}s conns=$CONNS pipeline=$PIPELINE"
r=$(run_one redis redis-server --bind 127.0.0.1)
echo "$r"
c=$(run_one cairn target/release/cairn)
echo "$c"
get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
python3 - "$max_bytes" "$(get "$r" ops_per_sec)" "$(get "$c" ops_per_sec)" \
    "$(get "$r" hit_ratio)" "$(get "$c" hit_ratio)" "$(get "$r" peak_rss)" "$(get "$c" peak_rss)" <<'PY'
import sys
mx, ro, co, rh, ch, rr, cr = map(float, sys.argv[1:])
print(f"throughput cairn/redis = {co/ro:.2f}x")
print(f"hit ratio redis {rh*100:.2f}% cairn {ch*100:.2f}% (diff {abs(ch-rh)*100:.2f} pp)")
print(f"peak RSS / maxmemory: redis {rr/mx:.3f} cairn {cr/mx:.3f}; cairn peak RSS - 1.1 x maxmemory = {(cr-1.1*mx)/2**20:.1f} MiB")
PY
