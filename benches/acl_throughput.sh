#!/usr/bin/env bash
# GET/SET throughput (redis-benchmark -P 16 -c 50) of Cairn and redis-server,
# as the default user (all-permissive: Cairn's check is one atomic load) and
# as a restricted user (every command goes through the full ACL check).
# Both servers run in this one script run, on 127.0.0.1.
#
# Usage: benches/acl_throughput.sh [requests]   (default 300000)
set -euo pipefail
N=${1:-300000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=$ROOT/target/release/cairn
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

bench() { # port [auth args]
  local port=$1; shift
  redis-benchmark -p "$port" "$@" -t set,get -P 16 -c 50 -n "$N" -r 100000 --csv 2>/dev/null |
    awk -F, 'NR > 1 {gsub(/"/, ""); printf "%s=%s ", $1, $2}'
}

run() { # name cmd...
  local name=$1; shift
  local port=$((20000 + RANDOM % 20000))
  "$@" --port "$port" --save "" --dir "$TMP" >/dev/null 2>&1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  # Restricted: not everything is allowed (no DEBUG, keys only under key:*).
  redis-cli -p "$port" ACL SETUSER bench on '>pw' '~key:*' '&*' '+@all' '-debug' >/dev/null
  echo "| $name | default user | $(bench "$port") |"
  echo "| $name | restricted user | $(bench "$port" --user bench -a pw) |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "| server | user | requests/s |"
echo "|---|---|---|"
run cairn "$CAIRN"
run redis-server redis-server --protected-mode no
