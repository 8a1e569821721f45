#!/usr/bin/env python3
"""Bounded chaos soak: steady load through fulcrum while its backends fail.

    python3 scripts/chaos_soak.py target/release/fulcrum [--duration 60]

Starts four real HTTP/1.1 backends (this file, `backend` mode), fulcrum in
front of them with its failure-handling defaults (outlier detection,
retries with a budget, slow start, panic mode) plus an active HTTP check,
and h2load at a fixed rate (--rps per client) for `--duration` seconds.
Meanwhile a chaos loop breaks backends at random, never more than two at
once, so at least two stay healthy: kill one (SIGKILL) and restart it
seconds later, make one answer 503 to everything for a while (its health
check still passes: only outlier detection sees it), or make one slow.

Checks, then prints the figures (for bench/RESULTS.md):
- every request got a response (h2load: 0 failed, 0 errored, 0 timeout);
- the client-visible error rate (non-2xx) stays under --max-error-rate;
- retries stay within the budget: at most 20 % of requests, and no
  request was refused by the budget while under its minimum;
- no endpoint is flooded after it recovers: in the 5 s after a restarted
  backend answers again, its share of requests is at most its fair share.

Only 127.0.0.1 is used; every process started here is stopped by PID;
everything is bounded in time.
"""

import argparse
import http.server
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BACKENDS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- backend mode -----------------------------------------------------------

def backend(name, port, log_path):
    """An HTTP/1.1 keep-alive server. GET /__mode?m=ok|fail|slow switches
    behaviour; every served request is logged as `epoch_seconds` lines, so
    the driver can compute shares over time."""
    mode = {"m": "ok"}
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/__mode"):
                mode["m"] = self.path.split("m=", 1)[-1]
                return self.reply(200, b"mode set\n")
            if self.path == "/healthz":
                return self.reply(200, b"ok\n")
            with lock:
                log.write(f"{time.time():.3f}\n")
            if mode["m"] == "fail":
                return self.reply(503, b"failing\n")
            if mode["m"] == "slow":
                time.sleep(0.2)
            self.reply(200, name.encode() + b"\n")

        def reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


# --- driver -----------------------------------------------------------------

class Backend:
    def __init__(self, work, index):
        self.name = f"b{index}"
        self.port = free_port()
        self.log = os.path.join(work, f"{self.name}.hits")
        self.proc = None
        self.restarts = []  # times it answered again after a kill

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "backend", self.name, str(self.port), self.log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not start")

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def mode(self, m):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__mode?m={m}", timeout=2).read()
        except OSError:
            pass

    def hits(self):
        try:
            with open(self.log) as f:
                return [float(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--rps", type=int, default=10, help="requests per second per client")
    ap.add_argument("--max-error-rate", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="fulcrum-chaos.")
    backends = [Backend(work, i) for i in range(BACKENDS)]
    procs = []
    try:
        for b in backends:
            b.start()
        listen, admin = free_port(), free_port()
        endpoints = ", ".join(f'{{ address = "127.0.0.1:{b.port}" }}' for b in backends)
        config = os.path.join(work, "fulcrum.toml")
        with open(config, "w") as f:
            f.write(f"""
[admin]
address = "127.0.0.1:{admin}"
[runtime]
workers = 1
[[listeners]]
name = "public"
address = "127.0.0.1:{listen}"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [{endpoints}]
request_timeout = "5s"
[clusters.health_check]
path = "/healthz"
interval = "1s"
""")
        lb = subprocess.Popen([args.bin, "run", "--config", config],
                              stdout=open(os.path.join(work, "fulcrum.out"), "w"),
                              stderr=open(os.path.join(work, "fulcrum.log"), "w"))
        procs.append(lb)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        load = subprocess.Popen(
            ["h2load", "--h1", "-c", str(args.clients), "--rps", str(args.rps),
             "-D", str(args.duration), "-T", "10", f"http://127.0.0.1:{listen}/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(load)
        events = chaos(rng, backends, args.duration)
        out, _ = load.communicate(timeout=args.duration + 60)
        report(args, out, backends, admin, events, work)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for b in backends:
            b.kill()


def chaos(rng, backends, duration):
    """Breaks backends at random until `duration` is over; at most two broken."""
    start = time.time()
    broken = {}  # backend index -> (what, until)
    events = []
    while time.time() - start < duration - 8:
        now = time.time()
        for i, (what, until) in list(broken.items()):
            if now >= until:
                recover(backends[i], what)
                del broken[i]
                events.append((round(now - start, 1), backends[i].name, "recovered"))
        if len(broken) < 2 and rng.random() < 0.5:
            i = rng.choice([i for i in range(len(backends)) if i not in broken])
            what = rng.choice(["kill", "fail", "slow"])
            b = backends[i]
            if what == "kill":
                b.kill()
            else:
                b.mode(what)
            broken[i] = (what, now + rng.uniform(3, 8))
            events.append((round(now - start, 1), b.name, what))
        time.sleep(rng.uniform(1, 3))
    for i, (what, _) in broken.items():
        recover(backends[i], what)
        events.append((round(time.time() - start, 1), backends[i].name, "recovered"))
    return events


def recover(b, what):
    """Undoes one breakage: a killed backend restarts, the others answer normally."""
    if what == "kill":
        b.start()
        b.restarts.append(time.time())
    else:
        b.mode("ok")


def report(args, out, backends, admin, events, work):
    def num(pattern):
        m = re.search(pattern, out)
        return int(m.group(1)) if m else None

    total = num(r"requests: (\d+) total")
    succeeded = num(r"(\d+) succeeded")
    failed = num(r"(\d+) failed")
    errored = num(r"(\d+) errored")
    timeout = num(r"(\d+) timeout")
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    ok2xx, s5xx = (int(status.group(1)), int(status.group(4))) if status else (0, 0)
    retries = metric(admin, "fulcrum_upstream_retries_total")
    overflow = metric(admin, "fulcrum_upstream_retry_overflow_total")
    ejections = metric(admin, "fulcrum_outlier_ejections_total")
    # h2load counts a non-2xx response as `failed`; `errored` and `timeout`
    # are requests that got no response at all.
    error_rate = failed / total if total else 1.0
    # Share of each restarted backend in the 5 s after it answered again.
    all_hits = sorted(t for b in backends for t in b.hits())
    shares = []
    for b in backends:
        mine = b.hits()
        for t0 in b.restarts:
            window = [t for t in all_hits if t0 <= t < t0 + 5]
            if len(window) >= 50:
                own = sum(1 for t in mine if t0 <= t < t0 + 5)
                shares.append(own / len(window))
    fair = 1 / BACKENDS
    figures = {
        "seed": args.seed, "duration_s": args.duration,
        "rate_rps": args.clients * args.rps, "requests": total,
        "2xx": ok2xx, "5xx": s5xx, "failed": failed, "errored": errored, "timeout": timeout,
        "error_rate": round(error_rate, 5), "retries": retries,
        "retry_share": round(retries / total, 4) if total else None,
        "retry_budget_refusals": overflow, "ejections": ejections,
        "chaos_events": len(events),
        "max_share_5s_after_restart": round(max(shares), 3) if shares else None,
        "fair_share": fair,
    }
    print("chaos events:", events)
    print("chaos soak figures:", json.dumps(figures))
    problems = []
    if not total or errored or timeout:
        problems.append(f"requests without a response: {out}")
    if error_rate > args.max_error_rate:
        problems.append(f"error rate {error_rate:.4f} above {args.max_error_rate}")
    if total and retries > 0.2 * total:
        problems.append(f"retries {retries} are more than 20 % of {total} requests")
    if shares and max(shares) > fair:
        problems.append(f"a recovered endpoint took {max(shares):.2f} of requests in its first 5 s (fair share {fair})")
    if problems:
        for line in open(os.path.join(work, "fulcrum.log")).readlines()[-30:]:
            print("fulcrum.log:", line.rstrip())
        sys.exit("chaos soak: FAIL: " + "; ".join(problems))
    print("chaos soak: ok")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "backend":
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        backend(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
