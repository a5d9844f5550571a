#!/usr/bin/env bash
# p99 PING latency and RSS of Cairn and redis-server while misbehaving
# clients attack them: thousands of idle connections, a pipeline whose
# replies are never read, a subscriber that never reads while a publisher
# floods it, and clients sending endless inline lines.
#
# Usage: benches/abuse.sh [idle_connections]   (default 5000)
# Both servers run in this one script run, on 127.0.0.1, one after the other.
set -euo pipefail
IDLE=${1:-5000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=$ROOT/target/release/cairn
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" || true

cat > "$TMP/attack.py" <<'EOF'
import socket, sys, time, threading
port, idle, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
stop = time.time() + secs
conns = []
for _ in range(idle):
    conns.append(socket.create_connection(("127.0.0.1", port)))
def stalled_pipeline():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"SET big " + b"v" * 100000 + b"\r\n")
    s.settimeout(0.2)
    req = b"GET big\r\n" * 1000
    while time.time() < stop:
        try: s.sendall(req)
        except OSError: time.sleep(0.05)
def silent_subscriber_and_flood():
    sub = socket.create_connection(("127.0.0.1", port))
    sub.sendall(b"SUBSCRIBE news\r\n")
    pub = socket.create_connection(("127.0.0.1", port))
    msg = b"PUBLISH news " + b"m" * 1000 + b"\r\n"
    f = pub.makefile("rb")
    while time.time() < stop:
        pub.sendall(msg * 100)
        for _ in range(100): f.readline()
def endless_inline():
    while time.time() < stop:
        try:
            s = socket.create_connection(("127.0.0.1", port))
            while time.time() < stop: s.sendall(b"a" * 65536)
        except OSError:
            time.sleep(0.01)
ts = [threading.Thread(target=f, daemon=True) for f in (stalled_pipeline, silent_subscriber_and_flood, endless_inline)]
for t in ts: t.start()
time.sleep(max(0, stop - time.time()))
EOF

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

run() { # name cmd...
  local name=$1; shift
  local port=$((20000 + RANDOM % 20000))
  "$@" --port "$port" --save "" --dir "$TMP" --maxclients $((IDLE + 100)) >/dev/null 2>&1 &
  local pid=$!; PIDS+=("$pid")
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local base
  redis-benchmark -p "$port" -t ping_mbulk -c 1 -n 3000 --csv >/dev/null 2>&1  # warm-up
  base=$(redis-benchmark -p "$port" -t ping_mbulk -c 1 -n 3000 --csv 2>/dev/null | tail -1 | cut -d, -f7 | tr -d '"')
  local rss0; rss0=$(rss_kb "$pid")
  python3 "$TMP/attack.py" "$port" "$IDLE" 25 &
  local apid=$!; PIDS+=("$apid")
  sleep 8
  local p99
  p99=$(redis-benchmark -p "$port" -t ping_mbulk -c 1 -n 3000 --csv 2>/dev/null | tail -1 | cut -d, -f7 | tr -d '"')
  local rss1; rss1=$(rss_kb "$pid")
  local nclients; nclients=$(redis-cli -p "$port" info clients | awk -F: '/^connected_clients/ {print $2}' | tr -d '\r')
  wait "$apid" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$nclients" "$base" "$p99" "$((rss0 / 1024))" "$((rss1 / 1024))"
}

echo "idle connections: $IDLE; p99 PING (ms, redis-benchmark -c 1) before and during the attack; RSS (MB) before and during"
echo "| server | clients during attack | p99 idle | p99 under attack | RSS before | RSS under attack |"
echo "|---|---|---|---|---|---|"
run cairn "$CAIRN"
run redis-server redis-server --protected-mode no
