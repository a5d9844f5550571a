#!/usr/bin/env python3
"""The AOF side by side: Cairn and redis-server on the same machine, one run.

1. SET throughput at -c 50 -P 1 under appendfsync always, everysec and no.
2. Restart-to-ready replaying an AOF of 1M SET commands (no rewrite).
3. BGREWRITEAOF of the 2M-key dataset of benches/snapshot.py while a writer
   overwrites keys at full speed: time and peak memory of the process tree.

Usage: benches/aof.py [--keys 2000000] [--out docs/benchmarks-aof.md]
       benches/aof.py --sections set [--baseline path/to/older/cairn] [--rounds 3]
--sections picks what runs (set, replay, rewrite); --baseline adds a second
Cairn binary to the SET runs, so a change is measured against the binary it
replaces under the same load; --rounds repeats the SET runs, servers
interleaved, and reports the median of each.
"""

import argparse
import os
import statistics
import shutil
import subprocess
import tempfile
import time

from snapshot import CAIRN, ROOT, Conn, dataset, free_port, memory_kb, wait_ready

KINDS = ("cairn", "redis")
# kind -> binary, for the Cairn kinds of the SET runs (see --baseline).
BINARIES = {"cairn": CAIRN}


def start(kind, data_dir, extra):
    port = free_port()
    if kind in BINARIES:
        args = [BINARIES[kind], "--port", str(port), "--dir", data_dir, "--save", ""]
    else:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--dir", data_dir, "--save", ""]
    proc = subprocess.Popen(args + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = wait_ready(port, proc)
    return proc, port, ready


def stop(proc, port):
    try:
        Conn(port).cmd("SHUTDOWN", "NOSAVE")
    except (OSError, RuntimeError, ConnectionError):
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_set(port, n, pipeline):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n), "-P", str(pipeline),
         "-r", "1000000", "-t", "set", "--csv", "-q"],
        capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def policies(work, n, kinds, rounds):
    runs = {}
    for r in range(rounds):
        for policy in ("always", "everysec", "no"):
            for kind in kinds:
                d = os.path.join(work, f"{kind}-{policy}-{r}")
                os.makedirs(d)
                proc, port, _ = start(kind, d, ["--appendonly", "yes", "--appendfsync", policy])
                runs.setdefault((kind, policy), []).append(bench_set(port, n, 1))
                stop(proc, port)
                shutil.rmtree(d, ignore_errors=True)
    return {k: statistics.median(v) for k, v in runs.items()}


def replay(work, commands):
    out = {}
    for kind in KINDS:
        d = os.path.join(work, f"{kind}-replay")
        os.makedirs(d)
        extra = ["--appendonly", "yes", "--auto-aof-rewrite-percentage", "0"]
        proc, port, _ = start(kind, d, extra)
        bench_set(port, commands, 16)
        keys = int(Conn(port).cmd("DBSIZE"))
        stop(proc, port)
        proc, port, ready = start(kind, d, extra)
        out[kind] = (ready, keys, int(Conn(port).cmd("DBSIZE")))
        stop(proc, port)
    return out


def rewrite(work, keys, pipe_file):
    out = {}
    for kind in KINDS:
        d = os.path.join(work, f"{kind}-rewrite")
        os.makedirs(d)
        proc, port, _ = start(kind, d, ["--appendonly", "yes", "--auto-aof-rewrite-percentage", "0"])
        with open(pipe_file, "rb") as f:
            subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f,
                           stdout=subprocess.DEVNULL, check=True)
        c = Conn(port)
        writer = subprocess.Popen(
            ["redis-benchmark", "-p", str(port), "-t", "set", "-r", str(keys), "-d", "100",
             "-P", "16", "-c", "10", "-n", "1000000000", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        before = memory_kb(proc.pid)
        peak = before
        began = time.monotonic()
        c.cmd("BGREWRITEAOF")
        while True:
            peak = max(peak, memory_kb(proc.pid))
            info = c.info("persistence")
            if (info.get("aof_rewrite_in_progress") == "0"
                    and info.get("aof_rewrite_scheduled", "0") == "0"
                    and time.monotonic() - began > 0.05):
                break
            time.sleep(0.02)
        secs = time.monotonic() - began
        writer.kill()
        writer.wait()
        status = c.info("persistence").get("aof_last_bgrewrite_status")
        stop(proc, port)
        out[kind] = {"secs": secs, "status": status,
                     "rss": peak / before, "rss_before": before}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--set-requests", type=int, default=100_000)
    ap.add_argument("--replay-commands", type=int, default=1_000_000)
    ap.add_argument("--sections", default="set,replay,rewrite")
    ap.add_argument("--baseline", help="another cairn binary to run beside this one (SET only)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-aof.md"))
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    kinds = KINDS
    if args.baseline:
        BINARIES["baseline"] = os.path.abspath(args.baseline)
        kinds = ("cairn", "baseline", "redis")
    subprocess.run(["cargo", "build", "--release", "--bin", "cairn"], cwd=ROOT, check=True)
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="cairn-aofbench-")
    try:
        if "set" in sections:
            rps = policies(work, args.set_requests, kinds, args.rounds)
        if "replay" in sections:
            rep = replay(work, args.replay_commands)
        if "rewrite" in sections:
            pipe_file = os.path.join(work, "dataset.resp")
            dataset(pipe_file, args.keys)
            rw = rewrite(work, args.keys, pipe_file)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    lines = [
        "# The AOF side by side: Cairn and redis-server 7",
        "",
        f"Generated by `benches/aof.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
    ]
    if "set" in sections:
        rounds = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
        lines += [
            f"## SET, -c 50 -P 1, {args.set_requests} requests, random keys{rounds}",
            "",
        ]
        if args.baseline:
            lines += [
                f"Baseline: `{args.baseline}`.",
                "",
                "| appendfsync | Cairn req/s | baseline req/s | Redis req/s | Cairn / Redis | baseline / Redis |",
                "|---|---|---|---|---|---|",
            ]
        else:
            lines += [
                "| appendfsync | Cairn req/s | Redis req/s | Cairn / Redis |",
                "|---|---|---|---|",
            ]
        for policy in ("always", "everysec", "no"):
            c, r = rps[("cairn", policy)], rps[("redis", policy)]
            if args.baseline:
                b = rps[("baseline", policy)]
                lines.append(f"| {policy} | {c:.0f} | {b:.0f} | {r:.0f} | {c / r:.2f} | {b / r:.2f} |")
            else:
                lines.append(f"| {policy} | {c:.0f} | {r:.0f} | {c / r:.2f} |")
        lines += [
            "",
            f"Cairn everysec / Cairn no: {rps[('cairn', 'everysec')] / rps[('cairn', 'no')]:.2f}. "
            f"Cairn always / Cairn no: {rps[('cairn', 'always')] / rps[('cairn', 'no')]:.2f}; "
            f"Redis always / Redis no: {rps[('redis', 'always')] / rps[('redis', 'no')]:.2f}.",
            "",
        ]
    if "replay" in sections:
        lines += [
            f"## Restart-to-ready replaying {args.replay_commands} SET commands (-P 16, no rewrite)",
            "",
            "| | seconds to ready | keys before / after |",
            "|---|---|---|",
        ]
        for kind in KINDS:
            ready, before, after = rep[kind]
            lines.append(f"| {kind} | {ready:.2f} | {before} / {after} |")
        lines += [
            "",
            f"Cairn / Redis: {rep['cairn'][0] / rep['redis'][0]:.2f}.",
            "",
        ]
    if "rewrite" in sections:
        lines += [
            f"## BGREWRITEAOF of {args.keys} keys (benches/snapshot.py's dataset) under a full-speed writer",
            "",
            "RSS of the process tree from /proc/PID/statm (see benches/snapshot.py).",
            "",
            "| | time (s) | status | RSS before (MB) | peak RSS / before |",
            "|---|---|---|---|---|",
        ]
        for kind in KINDS:
            w = rw[kind]
            lines.append(f"| {kind} | {w['secs']:.2f} | {w['status']} | {w['rss_before'] / 1024:.0f} | "
                         f"{w['rss']:.3f} |")
        lines.append("")
    text = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
