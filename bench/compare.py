#!/usr/bin/env python3
"""compare.py -- fulcrum vs HAProxy vs NGINX on one small Linux box (stdlib only).

    python3 bench/compare.py [--rounds 3] [--duration 10] [--quick]
                             [--scenarios h1,h1paced,h1close,h2c]
                             [--subjects fulcrum,haproxy,nginx]

For every round, subject and scenario it starts the subject fresh (pinned to
CPU 0, one worker/thread), checks that it answers 200 and spreads requests over
the three NGINX origins, warms it up, then measures a bounded load run (wrk or
h2load, pinned to CPU 1 with the origins) and the CPU time of every process in
the subject's process tree (/proc/PID/stat utime+stime) over the measured
window. It reports req/s, p50/p99 latency, errors, and CPU microseconds per
request -- the figure to trust on a 2-core machine -- as medians over rounds,
with the spread and the ratio to HAProxy. The round order rotates so that a
slow drift of the machine does not favour one subject.

Output: a markdown table on stdout and in bench/last-run.md; raw per-run
records (JSON lines), generated configs and logs in the run directory under
/tmp/fulcrum-bench/. Only 127.0.0.1 is used. Every process started here is
stopped by its PID (also on Ctrl-C). See bench/README.md.
"""

import argparse
import atexit
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

SCENARIOS = ["h1", "h1paced", "h1close", "h2c"]
SUBJECTS = ["fulcrum", "haproxy", "nginx"]
REFERENCE = "haproxy"
ORIGIN_PORTS = [18101, 18102, 18103]
# subject -> (HTTP/1.1 port, h2c port). HAProxy: h2c prior knowledge is detected on
# the plain bind; the second bind (`proto h2`) is only a fallback if that check fails.
# NGINX 1.22 cannot serve h1 and h2c on one cleartext port, hence port+1.
PORTS = {"fulcrum": (18090, 18090), "haproxy": (18080, 18081), "nginx": (18085, 18086)}

TOOLS = {"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client",
         "curl": "curl", "taskset": "util-linux"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc helpers

def read_stat(pid):
    """(ppid, starttime, utime+stime, cutime+cstime) in ticks, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    v = s[s.rindex(")") + 2:].split()  # v[0] is field 3 (state) of proc(5)
    return int(v[1]), int(v[19]), int(v[11]) + int(v[12]), int(v[13]) + int(v[14])


def all_procs():
    """{pid: (ppid, starttime, self ticks, reaped-children ticks)} for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st:
                out[int(d)] = st
    return out


def tree(root, procs=None):
    """root and all its descendants."""
    procs = procs if procs is not None else all_procs()
    kids = {}
    for pid, st in procs.items():
        kids.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in procs:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def sched_ns(pid):
    """Sum of sum_exec_runtime (ns) over the live threads of pid: a precise cross-check."""
    tot = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                    tot += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return tot


def cpu_times():
    """(monotonic, {cpuN: (idle+iowait ticks, steal ticks, total ticks)})."""
    t = time.monotonic()
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *v = line.split()
                v = [int(x) for x in v[:8]]
                out[name] = (v[3] + v[4], v[7], sum(v))
    return t, out


class Snapshot:
    """CPU state of the machine at one instant, for a before/after difference."""

    def __init__(self, roots):
        self.procs = all_procs()
        self.cpu = cpu_times()
        t = os.times()  # this script, incl. the children it has reaped (wrk, curl, h2load checks)
        self.self_s = t.user + t.system + t.children_user + t.children_system
        self.groups = {}
        for name, pids in roots.items():
            members = set()
            for r in pids:
                members.update(tree(r, self.procs))
            self.groups[name] = members
        # schedstat of the subject's tree only (the figure we report)
        self.subject_ns = sum(sched_ns(p) for p in self.groups.get("subject", ()))
        # per-thread ticks of the subject (which thread does the work)
        self.threads = {}
        for p in self.groups.get("subject", ()):
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for t in tids:
                try:
                    with open(f"/proc/{p}/task/{t}/stat") as f:
                        st = f.read()
                except OSError:
                    continue
                name = st[st.index("(") + 1:st.rindex(")")]
                v = st[st.rindex(")") + 2:].split()
                self.threads[int(t)] = (name, int(v[11]) + int(v[12]))

    def ticks(self, pids):
        return {p: self.procs[p] for p in pids if p in self.procs}


def foreign_cpu(before, after, ours):
    """CPU seconds used between two snapshots by processes we did not start.

    A live process counts with Δ(utime+stime+cutime+cstime), so work of children that
    were born and reaped in the window is included through their parent. A process that
    was alive at `before` and is gone at `after` lands whole in its reaper's cutime, so its
    `before` total is subtracted again (otherwise a long-running build step that ends in
    the window would count its whole life). Returns (seconds, top names)."""
    tot, top = 0, []
    for p, a in after.procs.items():
        if p in ours:
            continue
        name = comm(p)
        if name.startswith("ksoftirqd"):
            continue  # softirq work deferred from our own loopback traffic
        b = before.procs.get(p)
        if b and b[1] == a[1]:
            d = (a[2] + a[3]) - (b[2] + b[3])
        elif not b or b[1] != a[1]:
            d = a[2] + a[3]
        if d > 0:
            tot += d
            top.append((d, f"{name}[{p}]"))
    for p, b in before.procs.items():
        a = after.procs.get(p)
        if p not in ours and (a is None or a[1] != b[1]):
            tot -= b[2] + b[3]
    return max(0, tot) / CLK_TCK, [n for _, n in sorted(top, reverse=True)[:3]]


def cpu_busy(before, after):
    """Per-CPU busy share (wall - idle: the NO_HZ idle counters are precise) and steal."""
    wall = after.cpu[0] - before.cpu[0]
    busy = {}
    for k, (idle_b, steal_b, tot_b) in before.cpu[1].items():
        idle_a, steal_a, tot_a = after.cpu[1][k]
        busy_s = max(0.0, wall - (idle_a - idle_b) / CLK_TCK)
        dt = tot_a - tot_b
        busy[k] = {"busy_s": busy_s, "busy_pct": round(100.0 * busy_s / wall, 1) if wall else 0.0,
                   "steal_pct": round(100.0 * (steal_a - steal_b) / dt, 2) if dt else 0.0}
    return wall, busy


def window(before, after):
    """CPU used between two snapshots: per group (seconds), foreign processes, per-CPU busy.
    Our own reaped children (wrk, checks) are in this script's self_s."""
    res = {}
    ours = {os.getpid()}
    for name, members_after in after.groups.items():
        members = members_after | before.groups.get(name, set())
        ours |= members
        tot = 0
        for p in members:
            a, b = after.procs.get(p), before.procs.get(p)
            if a and b and a[1] == b[1]:
                tot += a[2] - b[2]
            elif a and not b:
                tot += a[2]
            # gone before `after`: its last interval is lost (does not happen to live servers)
        res[name] = tot / CLK_TCK
    res["subject_sched_s"] = (after.subject_ns - before.subject_ns) / 1e9
    threads = {}
    for t, (name, ticks) in after.threads.items():
        d = ticks - before.threads.get(t, (name, 0))[1]
        threads[name] = round(threads.get(name, 0.0) + d / CLK_TCK, 2)
    res["subject_threads"] = threads
    wall, busy = cpu_busy(before, after)
    foreign_s, top = foreign_cpu(before, after, ours)
    # Bound it by the busy time our own processes do not explain (each estimate errs
    # upwards in a different corner case).
    ours_s = sum(res[k] for k in after.groups) + after.self_s - before.self_s
    residual = max(0.0, sum(c["busy_s"] for c in busy.values()) - ours_s)
    foreign_s = min(foreign_s, residual)
    res["wall_s"] = wall
    res["foreign_s"] = foreign_s
    res["foreign_pct"] = round(100.0 * foreign_s / (wall * NCPU), 1) if wall else 0.0
    res["foreign_top"] = top
    res["cpus"] = busy
    return res


def wait_quiet(ours_roots, limit_pct, max_wait):
    """Wait (up to max_wait s) until processes we did not start use < limit_pct of the
    machine over a 1 s sample. Returns the last measured foreign %."""
    end = time.time() + max_wait
    said = False
    while True:
        b = Snapshot(ours_roots)
        time.sleep(1.0)
        a = Snapshot(ours_roots)
        w = window(b, a)
        if w["foreign_pct"] <= limit_pct or time.time() >= end:
            if said:
                log(f"  machine {'quiet' if w['foreign_pct'] <= limit_pct else 'still busy, going on'} "
                    f"(foreign {w['foreign_pct']}%)")
            return w["foreign_pct"]
        if not said:
            log(f"  waiting for the machine to be quiet: foreign CPU {w['foreign_pct']}% {w['foreign_top']}")
            said = True


# ---------------------------------------------------------------- process control

LIVE = {}  # pid -> Child; everything we started and have not stopped yet


class Child:
    """A process we started. Stopped by PID (its descendants by their PIDs)."""

    def __init__(self, name, argv, cpus=None, logpath=None, pipe=False):
        self.name = name
        self.argv = (["taskset", "-c", cpus] if cpus is not None else []) + argv
        self.logf = open(logpath, "ab") if logpath else None
        self.logpath = logpath
        if pipe:  # a load generator: we parse its output (stderr merged)
            out, err = subprocess.PIPE, subprocess.STDOUT
        else:     # a server: output to its log file
            out = self.logf or subprocess.DEVNULL
            err = subprocess.STDOUT if self.logf else subprocess.DEVNULL
        self.p = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid
        st = read_stat(self.pid)
        self.start = st[1] if st else None
        LIVE[self.pid] = self

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=10.0):
        """SIGTERM to the process and its descendants, SIGKILL after `grace` s.
        Returns the exit code (None if it had to be killed)."""
        rc = self.p.poll()
        if rc is None:
            procs = all_procs()
            members = [(p, procs[p][1]) for p in tree(self.pid, procs)]
            for p, _ in members:
                _kill(p, signal.SIGTERM)
            try:
                rc = self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                rc = None
            for p, start in members:  # leftovers, only if the PID still names the same process
                st = read_stat(p)
                if st and st[1] == start:
                    _kill(p, signal.SIGKILL)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log(f"warning: {self.name} (pid {self.pid}) did not exit")
        LIVE.pop(self.pid, None)
        if self.logf:
            self.logf.close()
            self.logf = None
        return rc


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all():
    for c in list(LIVE.values()):
        try:
            c.stop(grace=3.0)
        except Exception as e:  # noqa: BLE001 -- cleanup must go on
            log(f"warning: stopping {c.name}: {e}")


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_log_line(child, pattern, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if not child.alive():
            return False
        try:
            with open(child.logpath, errors="replace") as f:
                if re.search(pattern, f.read()):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def sh(argv, timeout=30):
    """Run a short command, return stdout+stderr text ('' if missing)."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---------------------------------------------------------------- setup

def ensure_tools():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if not missing:
        return
    pkgs = sorted({TOOLS[t] for t in missing})
    if os.geteuid() != 0:
        raise SystemExit(f"missing tools {missing}; install: apt-get install -y {' '.join(pkgs)}")
    log(f"installing {pkgs} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", *pkgs], check=True, env=env)
    still = [t for t in TOOLS if not shutil.which(t)]
    if still:
        raise SystemExit(f"still missing after apt-get: {still}")


def build_fulcrum(a):
    binary = a.fulcrum_bin or os.path.join(REPO, "target", "release", "fulcrum")
    if a.no_build or a.fulcrum_bin:
        if not os.path.exists(binary):
            raise SystemExit(f"fulcrum binary not found: {binary}")
        return binary, "not built by this run"
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    log("building fulcrum: cargo build --release --bin fulcrum (waits for the cargo lock if needed)")
    r = subprocess.run([cargo, "build", "--release", "--bin", "fulcrum"], cwd=REPO)
    if r.returncode != 0:
        if os.path.exists(binary):
            log("WARNING: cargo build failed; using the existing binary")
            return binary, "cargo build FAILED, existing binary used"
        raise SystemExit("cargo build failed and there is no fulcrum binary")
    return binary, "built by this run (cargo build --release --bin fulcrum)"


def machine_info(binary):
    def first(text):
        return text.splitlines()[0] if text else "?"
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = f.read().strip()
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split()[1]
        mem = f"{int(mem) // 1024} MiB"
    except (OSError, IndexError, ValueError):
        mem = "?"
    git = sh(["git", "-C", REPO, "log", "-1", "--format=%h %cd %s", "--date=iso"])
    dirty = sh(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    try:
        mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(binary)))
    except OSError:
        mtime = "?"
    return {
        "nproc": sh(["nproc"]), "kernel": sh(["uname", "-r"]), "cpu": model, "memory": mem,
        "os": first(sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        "haproxy": first(sh(["haproxy", "-v"])), "nginx": first(sh(["nginx", "-v"])),
        "wrk": first(sh(["wrk", "-v"])), "h2load": first(sh(["h2load", "--version"])),
        "fulcrum": f"{binary} (mtime {mtime}); repo HEAD {first(git)}" + (" + uncommitted changes" if dirty else ""),
        "loadavg_start": load,
    }


# ---------------------------------------------------------------- configs

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def nginx_temp_paths(d):
    return "\n".join(f"    {k}_temp_path {d}/tmp-{k};" for k in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def origin_conf(d, n, port):
    return f"""# origin {n}: one NGINX worker answering a fixed 200 from memory
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 10000000;   # default 1000 turns keep-alive into connection churn
    keepalive_timeout 300s;
{nginx_temp_paths(d)}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{ return 200 "hello from origin{n}\\n"; }}
    }}
}}
"""


def nginx_argv(d, conf):
    # -p: own prefix; -e: own error log from the very start (never the system's);
    # -g 'daemon off;': stays in the foreground as the PID we started.
    return ["nginx", "-p", d + "/", "-e", f"{d}/error.log", "-c", conf, "-g", "daemon off;"]


def fulcrum_conf(port):
    endpoints = ", ".join(f'{{ address = "{HOST}:{p}" }}' for p in ORIGIN_PORTS)
    return f"""[admin]
address = "127.0.0.1:0"

[runtime]
workers = 1
log_level = "warn"
drain_timeout = "3s"

[[listeners]]
name = "bench"
address = "{HOST}:{port}"   # HTTP/1.1 and h2c prior knowledge on the same port

[[listeners.routes]]
cluster = "origins"

[[clusters]]
name = "origins"
policy = "round_robin"
idle_timeout = "60s"
endpoints = [{endpoints}]
"""


def haproxy_conf(d, port, h2port):
    servers = "\n".join(f"    server o{i} {HOST}:{p}" for i, p in enumerate(ORIGIN_PORTS, 1))
    return f"""global
    nbthread 1
    maxconn 4000
    pidfile {d}/haproxy.pid
    # no log directive: no request logging (NGINX runs with access_log off)

defaults
    mode http
    option http-keep-alive
    # always: idle server connections serve any request, also the first of a client
    # connection (the default "safe" would open a server connection per first request)
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 300s
    maxconn 4000

frontend fe
    # HTTP/1.1 and h2c prior knowledge (HAProxy detects the HTTP/2 preface)
    bind {HOST}:{port}
    # fallback used only if h2c is not detected on the port above
    bind {HOST}:{h2port} proto h2
    default_backend origins

backend origins
    balance roundrobin
{servers}
"""


def nginx_proxy_conf(d, port, h2port):
    servers = "\n".join(f"        server {HOST}:{p};" for p in ORIGIN_PORTS)
    loc = """        location / {
            proxy_pass http://origins;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }"""
    return f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
{nginx_temp_paths(d)}
    upstream origins {{
{servers}
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
{loc}
    }}
    # NGINX 1.22: a cleartext `listen ... http2` is h2c-only, so h2c gets its own port
    server {{
        listen {HOST}:{h2port} http2 backlog=4096;
{loc}
    }}
}}
"""


PACED_LUA = """-- written by bench/compare.py: every connection waits {ms} ms after each
-- response before sending its next request, so the offered load is about
-- connections / (delay + latency) for every subject (near-equal load).
delay = function()
  return {ms}
end
"""


# ---------------------------------------------------------------- subjects

def start_subject(subject, run, binary, rundir, tag):
    """Start one subject pinned to the proxy CPU. Returns (Child, h1 port, h2c port)."""
    d = os.path.join(rundir, tag)
    os.makedirs(d, exist_ok=True)
    port, h2port = PORTS[subject]
    logpath = os.path.join(d, "stdout.log")
    if subject == "fulcrum":
        conf = write(os.path.join(d, "fulcrum.toml"), fulcrum_conf(port))
        c = Child(tag, [binary, "run", "--config", conf], run.proxy_cpus, logpath)
        if not wait_log_line(c, r"fulcrum: listener bench on http://"):
            raise RuntimeError(f"fulcrum did not report its listener; see {logpath}")
    elif subject == "haproxy":
        conf = write(os.path.join(d, "haproxy.cfg"), haproxy_conf(d, port, h2port))
        c = Child(tag, ["haproxy", "-db", "-f", conf], run.proxy_cpus, logpath)
    elif subject == "nginx":
        conf = write(os.path.join(d, "nginx.conf"), nginx_proxy_conf(d, port, h2port))
        c = Child(tag, nginx_argv(d, conf), run.proxy_cpus, logpath)
    else:
        raise SystemExit(f"unknown subject {subject}")
    for p in sorted({port, h2port}):
        if not wait_port(p):
            c.stop()
            raise RuntimeError(f"{subject} does not listen on {p}; see {d}")
    return c, port, h2port


# ---------------------------------------------------------------- checks

def check_h1(port, n=30):
    """n requests, each on a new connection with Connection: close -> {body: count}."""
    seen = {}
    for _ in range(n):
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            key = f"{r.status} {body}"
        except (OSError, http.client.HTTPException) as e:
            key = f"ERR {type(e).__name__}"
        finally:
            conn.close()
        seen[key] = seen.get(key, 0) + 1
    return seen


def check_h2c(port, n=30):
    """(ok, detail): n h2load requests all 2xx, and curl over one h2c connection sees all origins."""
    out = sh(["h2load", "-n", str(n), "-c", "1", "-m", "1", f"http://{HOST}:{port}/"], timeout=20)
    m = re.search(r"status codes: (\d+) 2xx", out)
    if not (m and int(m.group(1)) == n):
        return False, "h2load: " + " | ".join(out.splitlines()[-8:])
    # one curl per request (curl 7.88 fails on reusing a prior-knowledge connection
    # for several URLs: "Error in the HTTP2 framing layer", with every server)
    seen = {}
    for _ in range(2 * len(ORIGIN_PORTS)):
        body = sh(["curl", "-sS", "--max-time", "5", "--http2-prior-knowledge",
                   "-w", " %{http_version} %{http_code}", f"http://{HOST}:{port}/"]).strip()
        seen[body] = seen.get(body, 0) + 1
    good = [b for b in seen if b.startswith("hello from origin") and b.endswith(" 2 200")]
    if len(good) != len(ORIGIN_PORTS) or len(seen) != len(ORIGIN_PORTS):
        return False, f"curl --http2-prior-knowledge spread: {seen}"
    return True, seen


# ---------------------------------------------------------------- load generators

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def wrk_argv(run, port, scenario, seconds):
    argv = ["wrk", "-t", "1", "-c", str(run.conns), "-d", f"{seconds}s", "--latency", "--timeout", "5s"]
    if scenario == "h1paced":
        argv += ["-s", run.paced_lua]
    if scenario == "h1close":
        argv += ["-H", "Connection: close"]
    return argv + [f"http://{HOST}:{port}/"]


def run_to_end(child, timeout):
    """Wait for a load generator; kill it (by PID) if it overruns. Returns (stdout, rc)."""
    try:
        out, _ = child.p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.stop(grace=1.0)
        out, _ = child.p.communicate()
    LIVE.pop(child.pid, None)
    return (out or b"").decode(errors="replace"), child.p.returncode


def parse_wrk(out, rc):
    req = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", out, re.M)
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M)
    if not (req and rps):
        raise RuntimeError(f"wrk failed (rc={rc}): {out[-600:]}")
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = [int(x) for x in sock.groups()] if sock else [0, 0, 0, 0]
    return {"requests": int(req.group(1)), "rps": float(rps.group(1)),
            "p50_us": to_us(lat["50"]) if "50" in lat else None,
            "p99_us": to_us(lat["99"]) if "99" in lat else None,
            "errors": sum(errs), "err_detail": dict(zip(["connect", "read", "write", "timeout"], errs)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def measure_wrk(run, port, scenario, roots):
    # warm-up: same load, not measured (fills the upstream pools, wakes caches)
    if run.warmup > 0:
        c = Child("wrk-warmup", wrk_argv(run, port, scenario, run.warmup), run.loadgen_cpus, pipe=True)
        out, rc = run_to_end(c, run.warmup + 20)
        parse_wrk(out, rc)
    before = Snapshot(roots)
    c = Child("wrk", wrk_argv(run, port, scenario, run.duration), run.loadgen_cpus, pipe=True)
    roots = dict(roots, loadgen=[c.pid])
    # wrk is our child: once reaped, its CPU is in our own cutime, so it cannot look foreign
    out, rc = run_to_end(c, run.duration + 20)
    after = Snapshot(roots)
    res = parse_wrk(out, rc)
    return res, before, after


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(1, -(-len(sorted_vals) * p // 100))  # ceil(n*p/100)
    return sorted_vals[int(min(k, len(sorted_vals))) - 1]


def measure_h2load(run, port, roots, tag):
    """One h2load process: --warm-up-time, then -D seconds measured. The CPU window is
    bounded by h2load's own phase messages, so it matches the requests it counts."""
    logfile = os.path.join(run.rundir, f"{tag}-h2load.log")
    argv = ["h2load", "-t", "1", "-c", str(run.h2_clients), "-m", str(run.h2_streams),
            "-D", str(run.duration), f"--warm-up-time={run.warmup}", "--log-file", logfile,
            f"http://{HOST}:{port}/"]
    c = Child("h2load", argv, run.loadgen_cpus, pipe=True)
    roots = dict(roots, loadgen=[c.pid])
    lines, snaps = [], {}
    killer = threading.Timer(run.warmup + run.duration + 20, lambda: _kill(c.pid, signal.SIGKILL))
    killer.start()
    try:
        for raw in c.p.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if "Warm-up phase is over" in line and "before" not in snaps:
                snaps["before"] = Snapshot(roots)
            elif "Main benchmark duration is over" in line and "after" not in snaps:
                snaps["after"] = Snapshot(roots)
        c.p.wait()
    finally:
        killer.cancel()
        LIVE.pop(c.pid, None)
    out = "".join(lines)
    if "before" not in snaps or "after" not in snaps:
        raise RuntimeError(f"h2load phases not seen (rc={c.p.returncode}): {out[-600:]}")
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    sc = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and r):
        raise RuntimeError(f"h2load failed (rc={c.p.returncode}): {out[-600:]}")
    lat = []
    try:
        with open(logfile) as f:
            for line in f:  # start time (us since epoch) \t status \t duration (us)
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
        os.remove(logfile)
    except OSError:
        pass
    lat.sort()
    res = {"requests": int(r.group(3)), "rps": float(m.group(3)),
           "p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "latency_samples": len(lat),
           "errors": int(r.group(5)) + int(r.group(6)) + int(r.group(7)),
           "non2xx": sum(int(x) for x in sc.groups()[1:]) if sc else 0}
    return res, snaps["before"], snaps["after"]


# ---------------------------------------------------------------- one run

def one_run(run, subject, scenario, rnd, binary, origins):
    tag = f"r{rnd}-{subject}-{scenario}"
    rec = {"subject": subject, "scenario": scenario, "round": rnd}
    child, port, h2port = start_subject(subject, run, binary, run.rundir, tag)
    try:
        time.sleep(0.2)
        seen = check_h1(port)
        rec["check"] = seen
        bad = {k: v for k, v in seen.items() if not k.startswith("200 hello from origin")}
        if bad or len(seen) != len(ORIGIN_PORTS):
            raise RuntimeError(f"sanity check failed (want 200 from all {len(ORIGIN_PORTS)} origins): {seen}")
        target = port
        if scenario == "h2c":
            # NGINX: h2c only on its own port; HAProxy: the h1 port first, `proto h2` as fallback
            target = h2port if subject == "nginx" else port
            ok, detail = check_h2c(target)
            if not ok and h2port != target:
                log(f"  note: {subject}: no h2c on {port} ({detail}); trying {h2port}")
                ok, detail = check_h2c(h2port)
                target = h2port
            if not ok:
                raise RuntimeError(f"h2c check failed on {target}: {detail}")
            rec["h2c_port"] = target
        roots = {"subject": [child.pid], "origins": [o.pid for o in origins]}
        if scenario == "h2c":
            res, before, after = measure_h2load(run, target, roots, tag)
        else:
            res, before, after = measure_wrk(run, port, scenario, roots)
        w = window(before, after)
        rec.update(res)
        n = max(res["requests"], 1)
        rec.update({
            "wall_s": round(w["wall_s"], 3),
            "proxy_cpu_s": round(w["subject"], 3),
            "proxy_cpu_s_sched": round(w["subject_sched_s"], 3),
            "cpu_us_per_req": round(1e6 * w["subject"] / n, 2),
            "cpu_us_per_req_sched": round(1e6 * w["subject_sched_s"] / n, 2),
            "proxy_core_pct": round(100.0 * w["subject"] / w["wall_s"], 1),
            "origins_cpu_us_per_req": round(1e6 * w["origins"] / n, 2),
            "cpu0_busy_pct": w["cpus"].get("cpu0", {}).get("busy_pct"),
            "cpu1_busy_pct": w["cpus"].get("cpu1", {}).get("busy_pct"),
            "steal_pct": max((c["steal_pct"] for c in w["cpus"].values()), default=0.0),
            "foreign_pct": w["foreign_pct"], "foreign_top": w["foreign_top"],
            "proxy_threads_cpu_s": w["subject_threads"],
        })
        if not child.alive():
            raise RuntimeError(f"{subject} died during the run; see {run.rundir}/{tag}")
    finally:
        rc = child.stop()
        rec["exit_code"] = rc
    return rec


# ---------------------------------------------------------------- summary

def pick_best(attempts):
    """Of the attempts of one run: a successful one with the least foreign CPU."""
    ok = [r for r in attempts if "error" not in r]
    if not ok:
        return attempts[-1]
    return min(ok, key=lambda r: (r["foreign_pct"] + r.get("steal_pct", 0.0), r["attempt"]))


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def spread(vals):
    vals = [v for v in vals if v is not None]
    if len(vals) < 2:
        return None
    m = statistics.median(vals)
    return 100.0 * (max(vals) - min(vals)) / m if m else None


def summarize(records, subjects, scenarios):
    summ = {}
    for sc in scenarios:
        for s in subjects:
            rs = [r for r in records if r["subject"] == s and r["scenario"] == sc and "error" not in r]
            failed = [r for r in records if r["subject"] == s and r["scenario"] == sc and "error" in r]
            e = {"subject": s, "scenario": sc, "runs": len(rs), "failed": len(failed)}
            if rs:
                cpu = [r["cpu_us_per_req"] for r in rs]
                e.update({
                    "rps": med([r["rps"] for r in rs]), "rps_spread": spread([r["rps"] for r in rs]),
                    "p50_us": med([r["p50_us"] for r in rs]), "p99_us": med([r["p99_us"] for r in rs]),
                    "errors": sum(r["errors"] for r in rs), "non2xx": sum(r["non2xx"] for r in rs),
                    "cpu": med(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu), "cpu_spread": spread(cpu),
                    "cpu_all": cpu,
                    "cpu_sched": med([r["cpu_us_per_req_sched"] for r in rs]),
                    "core_pct": med([r["proxy_core_pct"] for r in rs]),
                    "cpu1_busy": med([r["cpu1_busy_pct"] for r in rs]),
                    "foreign_max": max(r["foreign_pct"] for r in rs),
                    "steal_max": max(r.get("steal_pct", 0.0) for r in rs),
                    "disturbed": sum(1 for r in rs if r.get("disturbed")),
                })
            summ[(s, sc)] = e
    for sc in scenarios:
        ref = summ.get((REFERENCE, sc), {}).get("cpu")
        for s in subjects:
            e = summ[(s, sc)]
            e["ratio"] = (e["cpu"] / ref) if (ref and e.get("cpu")) else None
    return summ


def f_us(v):
    if v is None:
        return "–"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def f_num(v, fmt="{:.0f}"):
    return "–" if v is None else fmt.format(v)


def tables(summ, subjects, scenarios):
    out = ["| scenario | subject | req/s (median) | req/s spread | p50 | p99 | errors / non-2xx "
           "| **CPU µs/req** (median) | CPU µs/req min–max | **× HAProxy** | proxy core busy | CPU1 busy "
           "| foreign CPU max | steal max |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for sc in scenarios:
        for s in subjects:
            e = summ[(s, sc)]
            if not e.get("runs"):
                out.append(f"| {sc} | {s} | FAILED ({e['failed']} runs) | | | | | | | | | | | |")
                continue
            flag = f" ({e['disturbed']} disturbed)" if e["disturbed"] else ""
            fail = f" ({e['failed']} failed)" if e["failed"] else ""
            out.append(
                f"| {sc} | {s}{fail} | {e['rps']:,.0f} | {f_num(e['rps_spread'], '{:.0f}')} % "
                f"| {f_us(e['p50_us'])} | {f_us(e['p99_us'])} | {e['errors']} / {e['non2xx']} "
                f"| **{e['cpu']:.1f}** | {e['cpu_min']:.1f}–{e['cpu_max']:.1f} "
                f"| **{f_num(e['ratio'], '{:.2f}')}** | {e['core_pct']:.0f} % | {e['cpu1_busy']:.0f} % "
                f"| {e['foreign_max']:.1f} %{flag} | {e['steal_max']:.1f} % |")
    out.append("")
    out.append("CPU µs/request (median over rounds; ratio to HAProxy in brackets):")
    out.append("")
    out.append("| scenario | " + " | ".join(subjects) + " |")
    out.append("|---|" + "--:|" * len(subjects))
    for sc in scenarios:
        cells = []
        for s in subjects:
            e = summ[(s, sc)]
            if e.get("cpu") is None:
                cells.append("–")
            else:
                cells.append(f"{e['cpu']:.1f} ({f_num(e['ratio'], '{:.2f}')}×)")
        out.append(f"| {sc} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured load run (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured warm-up seconds per run (default 2)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round, 3 s runs")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list of {','.join(SCENARIOS)}")
    ap.add_argument("--subjects", default=",".join(SUBJECTS), help=f"comma list of {','.join(SUBJECTS)}")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument("--pace-ms", type=int, default=2, help="h1paced: delay per request per connection (default 2)")
    ap.add_argument("--h2-clients", type=int, default=10, help="h2load connections (default 10)")
    ap.add_argument("--h2-streams", type=int, default=10, help="h2load streams per connection (default 10)")
    ap.add_argument("--proxy-cpus", default="0", help="CPU list for the subject (default 0)")
    ap.add_argument("--loadgen-cpus", default="1", help="CPU list for wrk/h2load and the origins (default 1)")
    ap.add_argument("--max-foreign-pct", type=float, default=5.0,
                    help="repeat a run once when processes we did not start used more than this "
                         "share of the machine during it (default 5)")
    ap.add_argument("--max-steal-pct", type=float, default=10.0,
                    help="also repeat a run when hypervisor steal time on a CPU exceeded this (default 10)")
    ap.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run (default 2)")
    ap.add_argument("--quiet-wait", type=int, default=120,
                    help="before each run, wait up to this many seconds for foreign CPU to drop "
                         "below --max-foreign-pct (default 120; 0 = do not wait)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build; use target/release/fulcrum")
    ap.add_argument("--fulcrum-bin", help="use this fulcrum binary (implies --no-build)")
    ap.add_argument("--out", default=os.path.join(HERE, "last-run.md"), help="markdown output (default bench/last-run.md)")
    ap.add_argument("--report", metavar="RUNS_JSONL",
                    help="only re-print the table of an earlier run from its runs.jsonl (and write --out)")
    a = ap.parse_args()
    if a.report:
        return report(a.report, a.out)
    if a.quick:
        a.rounds, a.duration = 1, 3
    scenarios = [s for s in a.scenarios.split(",") if s]
    subjects = [s for s in a.subjects.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s}; choose from {SCENARIOS}")
    for s in subjects:
        if s not in SUBJECTS:
            raise SystemExit(f"unknown subject {s}; choose from {SUBJECTS}")
    a.origin_cpus = a.loadgen_cpus
    command = "python3 bench/compare.py " + " ".join(sys.argv[1:])
    ensure_tools()

    ports = sorted(set(ORIGIN_PORTS) | {p for s in subjects for p in PORTS[s]})
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise SystemExit(f"ports in use on {HOST}: {busy} (another benchmark running?)")
    try:  # HAProxy sizes its fd needs from maxconn; children inherit this limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass

    a.rundir = os.path.join("/tmp/fulcrum-bench", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(a.rundir, exist_ok=True)
    binary = None
    if "fulcrum" in subjects:
        built, build_note = build_fulcrum(a)
        # a private copy: others may rebuild target/release/fulcrum while we measure
        binary = os.path.join(a.rundir, "fulcrum")
        shutil.copy2(built, binary)
        build_note += f"; copied from {built} to the run dir"
        conf = write(os.path.join(a.rundir, "fulcrum-check.toml"), fulcrum_conf(PORTS["fulcrum"][0]))
        chk = subprocess.run([binary, "check", "--config", conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise SystemExit(f"`fulcrum check` rejects the benchmark config:\n{chk.stdout}{chk.stderr}")
    else:
        build_note = "fulcrum not measured"
    info = machine_info(binary or "-")
    info["fulcrum_build"] = build_note
    a.paced_lua = write(os.path.join(a.rundir, "paced.lua"), PACED_LUA.format(ms=a.pace_ms))
    runs_path = os.path.join(a.rundir, "runs.jsonl")
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    log(f"compare: subjects={subjects} scenarios={scenarios} rounds={a.rounds} duration={a.duration}s "
        f"warmup={a.warmup}s -> {a.rundir}")

    signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (nohup, &)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(stop_all)
    records, origins = [], []
    with open(runs_path, "w") as rf:
        rf.write(json.dumps({"kind": "meta", "command": command, "started": started, "machine": info,
                             "args": {k: v for k, v in vars(a).items()}}) + "\n")
        try:
            for i, p in enumerate(ORIGIN_PORTS, 1):
                d = os.path.join(a.rundir, f"origin{i}")
                os.makedirs(d, exist_ok=True)
                conf = write(os.path.join(d, "nginx.conf"), origin_conf(d, i, p))
                origins.append(Child(f"origin{i}", nginx_argv(d, conf), a.origin_cpus, os.path.join(d, "stdout.log")))
            for p in ORIGIN_PORTS:
                if not wait_port(p):
                    raise SystemExit(f"origin on port {p} did not start; see {a.rundir}")
            total = a.rounds * len(subjects) * len(scenarios)
            k = 0
            for rnd in range(1, a.rounds + 1):
                shift = (rnd - 1) % len(subjects)
                order = subjects[shift:] + subjects[:shift]  # A B C, B C A, C A B, ...
                for subj in order:
                    for sc in scenarios:
                        k += 1
                        dead = [o.name for o in origins if not o.alive()]
                        if dead:
                            raise SystemExit(f"origin(s) {dead} exited; see {a.rundir}")
                        log(f"[{k}/{total}] round {rnd} {subj:<8} {sc:<8}")
                        best = None
                        for attempt in range(a.retries + 1):
                            if a.quiet_wait > 0:
                                wait_quiet({"origins": [o.pid for o in origins]}, a.max_foreign_pct, a.quiet_wait)
                            try:
                                rec = one_run(a, subj, sc, rnd, binary, origins)
                            except RuntimeError as e:
                                rec = {"subject": subj, "scenario": sc, "round": rnd, "error": str(e)}
                                log(f"  ERROR: {e}")
                            rec["attempt"] = attempt
                            rec["disturbed"] = (rec.get("foreign_pct", 0.0) > a.max_foreign_pct
                                                or rec.get("steal_pct", 0.0) > a.max_steal_pct)
                            rf.write(json.dumps({"kind": "run", **rec}) + "\n")
                            rf.flush()
                            if "error" not in rec:
                                log(f"  {rec['rps']:>9,.0f} req/s  cpu {rec['cpu_us_per_req']:6.2f} µs/req "
                                    f"(sched {rec['cpu_us_per_req_sched']:.2f})  core {rec['proxy_core_pct']:.0f}%  "
                                    f"p50 {f_us(rec['p50_us'])} p99 {f_us(rec['p99_us'])}  "
                                    f"err {rec['errors']}/{rec['non2xx']}  cpu0/1 {rec['cpu0_busy_pct']:.0f}/"
                                    f"{rec['cpu1_busy_pct']:.0f}%  foreign {rec['foreign_pct']}% {rec['foreign_top']}")
                            best = rec if best is None else pick_best([best, rec])
                            if "error" in rec or not rec["disturbed"]:
                                break
                            if attempt < a.retries:
                                log(f"  disturbed (foreign CPU {rec['foreign_pct']}%, steal {rec['steal_pct']}%; "
                                    f"limits {a.max_foreign_pct}/{a.max_steal_pct}%), repeating")
                                time.sleep(2)
                        records.append(best)
        except KeyboardInterrupt:
            log("interrupted: stopping everything we started")
            stop_all()
            raise SystemExit(130)
        finally:
            for o in origins:
                o.stop()
            stop_all()
        summ = summarize(records, subjects, scenarios)
        for e in summ.values():
            rf.write(json.dumps({"kind": "summary", **e}) + "\n")

    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().strip()
    with open(runs_path, "a") as rf:
        rf.write(json.dumps({"kind": "end", "loadavg_end": info["loadavg_end"],
                             "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}) + "\n")
    meta = {"command": command, "started": started, "machine": info, "args": vars(a)}
    text = render_md(meta, records, subjects, scenarios, runs_path)
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    log(f"written: {a.out}; raw: {runs_path}")


def render_md(meta, records, subjects, scenarios, runs_path):
    a, info = meta["args"], meta["machine"]
    summ = summarize(records, subjects, scenarios)
    errors = [r for r in records if "error" in r]
    disturbed = [r for r in records if r.get("disturbed")]
    md = [f"## fulcrum vs HAProxy vs NGINX — {meta['started']}", "",
          "```", meta["command"], "```", "",
          f"rounds={a['rounds']}, measured {a['duration']} s per run after {a['warmup']} s warm-up; "
          f"subject pinned to CPU {a['proxy_cpus']} (1 worker/thread), wrk/h2load (1 thread) and the 3 NGINX "
          f"origins pinned to CPU {a['loadgen_cpus']}; wrk -c{a['conns']}, h1paced {a['pace_ms']} ms/request/"
          f"connection, h2load -c{a['h2_clients']} -m{a['h2_streams']}. Raw records: `{runs_path}`.", "",
          "Machine:", ""]
    for k in ("nproc", "kernel", "cpu", "memory", "os", "haproxy", "nginx", "wrk", "h2load", "fulcrum",
              "fulcrum_build", "loadavg_start", "loadavg_end"):
        md.append(f"- {k}: `{info.get(k)}`")
    md += ["", tables(summ, subjects, scenarios), ""]
    md.append("Columns: req/s and latencies are medians over rounds (p50/p99: wrk --latency; h2c: h2load "
              "--log-file); spread = (max−min)/median; CPU µs/req = Δ(utime+stime) of the subject's process "
              "tree over the measured window / requests completed; × HAProxy = ratio of medians; proxy core "
              "busy = subject CPU / wall time; CPU1 busy = the load generator + origins core; foreign CPU = "
              "CPU used by processes this script did not start, % of the whole machine; steal = hypervisor "
              "steal time on the busier CPU (max over rounds).")
    if errors:
        md += ["", "Failed runs:", ""] + [f"- round {r['round']} {r['subject']} {r['scenario']}: {r['error']}"
                                          for r in errors]
    if disturbed:
        md += ["", f"{len(disturbed)} run(s) exceeded {a['max_foreign_pct']}% foreign CPU or "
               f"{a.get('max_steal_pct', '?')}% steal even after {a['retries']} retries (other work on the "
               "machine or its host); the least disturbed attempt is used: " +
               ", ".join(f"r{r['round']} {r['subject']} {r['scenario']} foreign {r['foreign_pct']}% "
                         f"{r['foreign_top']} steal {r.get('steal_pct')}%" for r in disturbed)]
    return "\n".join(md) + "\n"


def report(path, out):
    """Re-render the markdown from a runs.jsonl (the selected attempt of every run)."""
    meta, end, attempts = None, {}, {}
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if j["kind"] == "meta":
                meta = j
            elif j["kind"] == "end":
                end = j
            elif j["kind"] == "run":
                attempts.setdefault((j["round"], j["subject"], j["scenario"]), []).append(j)
    if meta is None:
        raise SystemExit(f"{path}: no meta line")
    meta["machine"]["loadavg_end"] = end.get("loadavg_end", "?")
    records = [pick_best(v) for v in attempts.values()]
    subjects = [s for s in meta["args"]["subjects"].split(",") if s]
    scenarios = [s for s in meta["args"]["scenarios"].split(",") if s]
    text = render_md(meta, records, subjects, scenarios, path)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)
        log(f"written: {out}")


if __name__ == "__main__":
    main()
