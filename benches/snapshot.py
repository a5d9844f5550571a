#!/usr/bin/env python3
"""BGSAVE side by side: Cairn (fork-free) and redis-server (fork) on the same
machine in one run.

For each server: load the same dataset (KEYS keys with ~100-byte values, plus
large hashes and zsets), then BGSAVE while redis-benchmark overwrites keys at
full speed and a probe client times GETs. Reports:
- peak RSS of the whole process tree during the save over RSS before it
  (a fork child's pages shared with its parent count twice, as `ps` shows);
- p50/p99/max GET latency during the save and when idle;
- save wall time, file size;
- restart-to-ready loading the file each server wrote (PING answers and
  INFO loading:0).

Usage: benches/snapshot.py [--keys 2000000] [--out docs/benchmarks-snapshot.md]
Needs redis-server, redis-cli and redis-benchmark, and a release build of cairn.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAIRN = os.path.join(ROOT, "target", "release", "cairn")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A minimal RESP client: enough for PING, GET, INFO and BGSAVE."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def info(self, section):
        text = self.cmd("INFO", section).decode()
        return dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line
        )


def tree_pids(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def memory_kb(pid):
    """RSS in kB summed over the process tree of `pid`, from /proc/PID/statm.

    Not smaps_rollup: reading it walks the whole address space under the
    process's mmap lock, and every page fault of the server then waits behind
    it. Polled every 20 ms during a save, that alone put Cairn's GET p99 at
    2-4 ms (0.26 ms with statm, same run otherwise)."""
    rss = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except OSError:
            pass
    return rss


def wait_ready(port, proc, timeout=600):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited: {proc.returncode}")
        try:
            c = Conn(port)
            c.cmd("PING")
            if c.info("persistence").get("loading", "0") == "0":
                return time.monotonic() - start
        except (OSError, RuntimeError, ConnectionError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"server on {port} not ready after {timeout}s")


def start(kind, port, data_dir):
    if kind == "cairn":
        args = [CAIRN, "--port", str(port), "--dir", data_dir, "--save", ""]
    else:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--dir", data_dir, "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = wait_ready(port, proc)
    return proc, ready


def dataset(path, keys):
    """RESP commands for redis-cli --pipe: KEYS strings of ~100 bytes, 20
    hashes of 10,000 fields and 20 zsets of 10,000 members."""
    value = b"v" * 100
    with open(path, "wb") as f:
        chunk = []
        for i in range(keys):
            k = b"key:%012d" % i
            chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, value))
            if len(chunk) == 10000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
        for h in range(20):
            for base in range(0, 10000, 100):
                args = [b"HSET", b"hash:%d" % h]
                for j in range(base, base + 100):
                    args += [b"field:%d" % j, b"value:%d" % j]
                f.write(encode(args))
            for base in range(0, 10000, 100):
                args = [b"ZADD", b"zset:%d" % h]
                for j in range(base, base + 100):
                    args += [b"%d" % j, b"member:%d" % j]
                f.write(encode(args))


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def probe_gets(port, keys, stop, out):
    c = Conn(port)
    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        c.cmd("GET", "key:%012d" % ((i * 7919) % keys))
        out.append((time.perf_counter() - t) * 1000.0)
        i += 1
        time.sleep(0.001)


def run_one(kind, keys, pipe_file, work):
    data_dir = os.path.join(work, kind)
    os.makedirs(data_dir)
    port = free_port()
    proc, _ = start(kind, port, data_dir)
    try:
        with open(pipe_file, "rb") as f:
            subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f,
                           stdout=subprocess.DEVNULL, check=True)
        c = Conn(port)
        dbsize = int(c.cmd("DBSIZE"))
        time.sleep(1)
        # Idle latency first, same probe.
        idle = []
        stop = threading.Event()
        t = threading.Thread(target=probe_gets, args=(port, keys, stop, idle))
        t.start()
        time.sleep(3)
        stop.set()
        t.join()
        # A writer at full speed during the save.
        writer = subprocess.Popen(
            ["redis-benchmark", "-p", str(port), "-t", "set", "-r", str(keys), "-d", "100",
             "-P", "16", "-c", "10", "-n", "1000000000", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        # The same writer without a save: what the save itself adds is the
        # difference between this and the figures during the save.
        busy = []
        stop = threading.Event()
        t = threading.Thread(target=probe_gets, args=(port, keys, stop, busy))
        t.start()
        time.sleep(3)
        stop.set()
        t.join()
        before = memory_kb(proc.pid)
        lat = []
        stop = threading.Event()
        t = threading.Thread(target=probe_gets, args=(port, keys, stop, lat))
        t.start()
        peak = before
        began = time.monotonic()
        c.cmd("BGSAVE")
        while True:
            peak = max(peak, memory_kb(proc.pid))
            if c.info("persistence").get("rdb_bgsave_in_progress") == "0" and time.monotonic() - began > 0.05:
                break
            time.sleep(0.02)
        save_secs = time.monotonic() - began
        stop.set()
        t.join()
        writer.kill()
        writer.wait()
        status = c.info("persistence").get("rdb_last_bgsave_status")
        size = os.path.getsize(os.path.join(data_dir, "dump.rdb"))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Restart on the file just written.
        proc, ready = start(kind, port, data_dir)
        loaded = int(Conn(port).cmd("DBSIZE"))
        return {
            "dbsize": dbsize, "loaded": loaded, "status": status,
            "rss_before": before, "rss_peak": peak,
            "save_secs": save_secs, "size": size,
            "idle_p50": percentile(idle, 0.5), "idle_p99": percentile(idle, 0.99),
            "busy_p50": percentile(busy, 0.5), "busy_p99": percentile(busy, 0.99),
            "save_p50": percentile(lat, 0.5), "save_p99": percentile(lat, 0.99),
            "save_max": max(lat) if lat else float("nan"), "gets": len(lat),
            "ready_secs": ready,
        }
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-snapshot.md"))
    ap.add_argument("--cairn", help="a cairn binary to use instead of building target/release/cairn")
    args = ap.parse_args()
    global CAIRN
    if args.cairn:
        CAIRN = os.path.abspath(args.cairn)
    else:
        subprocess.run(["cargo", "build", "--release", "--bin", "cairn"], cwd=ROOT, check=True)
    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="cairn-snapbench-")
    try:
        pipe_file = os.path.join(work, "dataset.resp")
        dataset(pipe_file, args.keys)
        results = {kind: run_one(kind, args.keys, pipe_file, work) for kind in ("cairn", "redis")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("keys loaded / reloaded", lambda r: f"{r['dbsize']} / {r['loaded']}"),
        ("bgsave status", lambda r: r["status"]),
        ("RSS before save (MB)", lambda r: f"{r['rss_before'] / 1024:.0f}"),
        ("peak RSS of process tree during save (MB)", lambda r: f"{r['rss_peak'] / 1024:.0f}"),
        ("peak RSS / RSS before", lambda r: f"{r['rss_peak'] / r['rss_before']:.3f}"),
        ("save wall time (s)", lambda r: f"{r['save_secs']:.2f}"),
        ("file size (MB)", lambda r: f"{r['size'] / 1e6:.1f}"),
        ("GET p50 / p99 idle (ms)", lambda r: f"{r['idle_p50']:.3f} / {r['idle_p99']:.3f}"),
        ("GET p50 / p99 with the writer, no save (ms)",
         lambda r: f"{r['busy_p50']:.3f} / {r['busy_p99']:.3f}"),
        ("GET p50 / p99 / max during save (ms)",
         lambda r: f"{r['save_p50']:.3f} / {r['save_p99']:.3f} / {r['save_max']:.1f}"),
        ("restart-to-ready on its own file (s)", lambda r: f"{r['ready_secs']:.2f}"),
    ]
    c, r = results["cairn"], results["redis"]
    lines = [
        "# BGSAVE side by side: Cairn (no fork) and redis-server 7 (fork)",
        "",
        f"Generated by `benches/snapshot.py --keys {args.keys}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Dataset: {args.keys} strings of 100 bytes, 20 hashes of 10,000 fields, 20 zsets of 10,000 members.",
        "During the save redis-benchmark overwrites random keys at full speed (-P 16 -c 10) and a",
        "probe client sends one GET per millisecond. Memory is RSS summed over the server's process",
        "tree (Redis's fork child included, so pages it shares with its parent count twice), read",
        "from /proc/PID/statm: polling smaps_rollup (for PSS) stalls the server being measured.",
        f"Load average (1 min) at the start / end of the run: {load_before:.2f} / {os.getloadavg()[0]:.2f}.",
        "",
        "| | Cairn | Redis |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {f(c)} | {f(r)} |" for name, f in rows]
    lines += [
        "",
        f"Ratios: save time Cairn/Redis {c['save_secs'] / r['save_secs']:.2f}; "
        f"restart-to-ready Cairn/Redis {c['ready_secs'] / r['ready_secs']:.2f}; "
        f"p99 during the save / p99 with the same writer and no save (issue 5's \"idle\", "
        f"target at most 2): Cairn {c['save_p99'] / c['busy_p99']:.2f}, "
        f"Redis {r['save_p99'] / r['busy_p99']:.2f}.",
        "",
    ]
    text = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
