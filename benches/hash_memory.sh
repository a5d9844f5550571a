#!/usr/bin/env bash
# Memory of 1M small hashes (5 fields each) and, for the per-key overhead,
# of 1M plain string keys: loads the same data into Cairn and redis-server
# through redis-cli --pipe and prints used_memory_rss of each and the ratio.
# Usage: benches/hash_memory.sh [KEYS]   (needs a release build of cairn)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}

. benches/lib.sh
rss() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '$1=="used_memory_rss"{print $2}'; }
used() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }

tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

# RESP command files, generated once and fed identically to both servers.
python3 - "$KEYS" "$tmp" <<'PY'
import sys
n, d = int(sys.argv[1]), sys.argv[2]
def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
with open(d + "/hashes.resp", "wb") as f:
    for i in range(n):
        args = [b"HSET", b"user:%d" % i]
        for j in range(1, 6):
            args += [b"f%d" % j, b"value-%d-%d" % (j, i % 1000)]
        f.write(resp(args))
with open(d + "/strings.resp", "wb") as f:
    for i in range(n):
        f.write(resp([b"SET", b"key:%d" % i, b"value-%d" % (i % 1000)]))
PY

mb() { awk -v b="$1" 'BEGIN{printf "%.1f MB", b/1e6}'; }

start() { # start SERVER DATASET -> sets port
    port=$(free_port)
    mkdir -p "$tmp/$1-$2"
    if [ "$1" = cairn ]; then
        target/release/cairn --port "$port" --dir "$tmp/$1-$2" --save "" >/dev/null 2>&1 &
    else
        redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/$1-$2" --save "" --appendonly no >/dev/null 2>&1 &
    fi
    pid=$!
    pids+=("$pid")
    wait_port "$port"
}

echo "| Dataset | Cairn used_memory_rss | Redis used_memory_rss | Cairn / Redis | Cairn used_memory | Redis used_memory |"
echo "|---|---|---|---|---|---|"
notes=()
for dataset in hashes strings; do
    declare -A r=() u=() e=()
    for server in cairn redis; do
        start "$server" "$dataset"
        e[$server]=$(rss "$port")
        redis-cli -p "$port" --pipe < "$tmp/$dataset.resp" >/dev/null
        n=$(redis-cli -p "$port" DBSIZE)
        [ "$n" = "$KEYS" ] || { echo "$server has $n keys, expected $KEYS" >&2; exit 1; }
        r[$server]=$(rss "$port")
        u[$server]=$(used "$port")
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
    ratio=$(awk -v c="${r[cairn]}" -v x="${r[redis]}" 'BEGIN{printf "%.2f", c/x}')
    echo "| $KEYS $dataset | $(mb "${r[cairn]}") | $(mb "${r[redis]}") | $ratio | $(mb "${u[cairn]}") | $(mb "${u[redis]}") |"
    notes+=("$dataset: empty-server RSS before loading: Cairn $(mb "${e[cairn]}"), Redis $(mb "${e[redis]}")")
done
echo
for n in "${notes[@]}"; do echo "- $n"; done
