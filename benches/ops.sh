#!/usr/bin/env bash
# Snapshot + restore of an N-key data set (default 2M): Cairn's tools against
# Cairn and redis-server, side by side with `redis-cli --rdb` on redis-server
# holding the same data. Run from the repository root after
# `cargo build --release`. Figures go to stdout (markdown table rows).
set -euo pipefail
N=${N:-2000000}
BIN=${BIN:-target/release/cairn}
WORK=$(mktemp -d /tmp/cairn-ops-bench.XXXXXX)
PR=${PR:-17911}; PC=${PC:-17912}; PT=${PT:-17913}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }
size() { stat -c %s "$1"; }
wait_up() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

mkdir -p "$WORK/r" "$WORK/c" "$WORK/t" "$WORK/d"
redis-server --port $PR --bind 127.0.0.1 --dir "$WORK/r" --save "" --appendonly no \
  --repl-diskless-sync-delay 0 --enable-debug-command yes --daemonize no >/dev/null 2>&1 & pids+=($!)
$BIN --port $PC --dir "$WORK/c" --save "" --appendonly no >/dev/null 2>&1 & pids+=($!)
$BIN --port $PT --dir "$WORK/t" --save "" --appendonly no >/dev/null 2>&1 & pids+=($!)
wait_up $PR; wait_up $PC; wait_up $PT

# The data set: N strings, plus N/100 hashes of 10 fields (mixed types).
awk -v n="$N" 'BEGIN {
  for (i = 0; i < n; i++) printf "*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$%d\r\nvalue:%d:abcdefgh\r\n", length("key:" i), i, length("value:" i ":abcdefgh"), i;
  for (i = 0; i < n / 100; i++) { printf "*22\r\n$4\r\nHSET\r\n$%d\r\nhash:%d\r\n", length("hash:" i), i;
    for (f = 0; f < 10; f++) printf "$%d\r\nf%d\r\n$%d\r\n%d\r\n", length("f" f), f, length(i * f ""), i * f; }
}' > "$WORK/data.resp"
redis-cli -p $PR --pipe < "$WORK/data.resp" >/dev/null
redis-cli -p $PC --pipe < "$WORK/data.resp" >/dev/null
echo "keys: redis $(redis-cli -p $PR dbsize), cairn $(redis-cli -p $PC dbsize)"

row() { printf '| %s | %s s | %s |\n' "$1" "$2" "$3"; }
echo "| step | wall time | file size |"
echo "|---|---|---|"
t0=$(now); redis-cli -p $PR --rdb "$WORK/redis-cli-redis.rdb" >/dev/null 2>&1; t1=$(now)
row "redis-cli --rdb, redis-server" "$(secs $t0 $t1)" "$(size "$WORK/redis-cli-redis.rdb")"
t0=$(now); redis-cli -p $PC --rdb "$WORK/redis-cli-cairn.rdb" >/dev/null 2>&1; t1=$(now)
row "redis-cli --rdb, cairn" "$(secs $t0 $t1)" "$(size "$WORK/redis-cli-cairn.rdb")"
t0=$(now); $BIN snapshot --port $PR --out "$WORK/snap-redis.rdb" -q >/dev/null; t1=$(now)
row "cairn snapshot (verified), redis-server" "$(secs $t0 $t1)" "$(size "$WORK/snap-redis.rdb")"
t0=$(now); $BIN snapshot --port $PC --out "$WORK/snap.rdb" -q >/dev/null; t1=$(now)
row "cairn snapshot (verified), cairn" "$(secs $t0 $t1)" "$(size "$WORK/snap.rdb")"
t0=$(now); $BIN snapshot --port $PC --out "$WORK/snap.rdb.zst" --compress zstd -q >/dev/null; t1=$(now)
row "cairn snapshot --compress zstd, cairn" "$(secs $t0 $t1)" "$(size "$WORK/snap.rdb.zst")"
t0=$(now); $BIN check "$WORK/snap.rdb.zst" -q >/dev/null; t1=$(now)
row "cairn check (zstd)" "$(secs $t0 $t1)" "-"
t0=$(now); $BIN restore "$WORK/snap.rdb.zst" --dir "$WORK/d" -q >/dev/null; t1=$(now)
row "cairn restore --dir (zstd, verify + install + verify)" "$(secs $t0 $t1)" "$(size "$WORK/d/dump.rdb")"
t0=$(now); $BIN restore "$WORK/snap.rdb" --host 127.0.0.1 --port $PT -q >/dev/null; t1=$(now)
row "cairn restore --host (RESTORE pipelined), into cairn" "$(secs $t0 $t1)" "-"
redis-cli -p $PR flushall >/dev/null
t0=$(now); $BIN restore "$WORK/snap.rdb" --host 127.0.0.1 --port $PR -q >/dev/null; t1=$(now)
row "cairn restore --host (RESTORE pipelined), into redis-server" "$(secs $t0 $t1)" "-"
dc=$(redis-cli -p $PC debug digest); dt=$(redis-cli -p $PT debug digest); dr=$(redis-cli -p $PR debug digest)
echo
echo "DEBUG DIGEST: source cairn $dc, restored cairn $dt, restored redis $dr"
[ "$dc" = "$dt" ] && [ "$dc" = "$dr" ] && echo "digests identical" || { echo "DIGEST MISMATCH"; exit 1; }
