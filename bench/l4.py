#!/usr/bin/env python3
"""l4.py -- fulcrum vs HAProxy vs NGINX as L4 TCP proxies on one small box (stdlib only).

    python3 bench/l4.py [--rounds 3] [--duration 8] [--quick]
                        [--scenarios bulk,bulkrev,connrate]
                        [--subjects fulcrum,haproxy,haproxy-nosplice,nginx]

The L4 sibling of compare.py (whose process, /proc and CPU-accounting helpers it
imports). Every subject is one worker pinned to CPU 0 in front of one origin;
the load generator and the origin share CPU 1; only 127.0.0.1 is used.

  bulk      iperf3 -c through the proxy to `iperf3 -s`, one stream, client -> server
  bulkrev   the same with -R (server -> client)
  connrate  wrk -t1 -c50 with `Connection: close` through the proxy to an NGINX
            origin (`return 200 "ok\\n"`): one new TCP connection (client side and
            origin side) per request

Per run: start the subject fresh -> check it forwards (bulk: a 1 s iperf3 run that
also serves as warm-up; connrate: 30 requests, each on a new connection, all
`200 ok`, then a --warmup s wrk run) -> CPU snapshot -> bounded load run -> CPU
snapshot -> stop the subject by PID. Reported per scenario x subject, as medians
over interleaved rounds (subject order rotated every round): Gbit/s and proxy
CPU seconds per GB moved (bulk), connections/s and proxy CPU microseconds per
connection (connrate), the spread over rounds and the ratio to HAProxy.

Output: a markdown table on stdout and in bench/last-run-l4.md; raw records
(JSON lines), configs and logs under /tmp/fulcrum-bench/l4-<time>/. Every
process started here is stopped by its PID (also on Ctrl-C). See bench/README.md.
The fulcrum binary is not built here: build it first (cargo build --release
--bin fulcrum); it is copied into the run directory before anything starts.
"""

import argparse
import atexit
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing compare
import compare as C  # noqa: E402  -- process control, /proc snapshots, wrk, summaries

HOST = C.HOST
log = C.log

SCENARIOS = ["bulk", "bulkrev", "connrate"]
SUBJECTS = ["fulcrum", "haproxy", "haproxy-nosplice", "nginx"]
REFERENCE = "haproxy"
PORTS = {"fulcrum": 18190, "haproxy": 18180, "haproxy-nosplice": 18181, "nginx": 18185}
HTTP_ORIGIN_PORT = 18201   # NGINX origin for connrate
IPERF_PORT = 18202         # iperf3 -s for bulk / bulkrev
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

TOOLS = {"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk", "iperf3": "iperf3", "taskset": "util-linux"}


# ---------------------------------------------------------------- setup

def ensure_tools():
    missing = sorted({pkg for t, pkg in TOOLS.items() if not shutil.which(t)})
    if not os.path.exists(STREAM_MODULE):
        missing.append("libnginx-mod-stream")
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing packages; install: apt-get install -y {' '.join(missing)}")
    log(f"installing {missing} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", *missing], check=True, env=env)
    if [t for t in TOOLS if not shutil.which(t)] or not os.path.exists(STREAM_MODULE):
        raise SystemExit("tools still missing after apt-get")


def listening(port):
    """True if something listens on HOST:port (read from /proc/net/tcp: connecting would
    send a stray connection through the proxy to the origin, which iperf3 -s dislikes)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in list(f)[1:])
    except OSError:
        return False


def wait_listening(port, child, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end and child.alive():
        if listening(port):
            return True
        time.sleep(0.05)
    return False


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return "(no log)"


def fds_of(root):
    """(open fds, of which pipes) over the process tree of root."""
    fds = pipes = 0
    for p in C.tree(root):
        try:
            names = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in names:
            fds += 1
            try:
                if os.readlink(f"/proc/{p}/fd/{fd}").startswith("pipe:"):
                    pipes += 1
            except OSError:
                pass
    return fds, pipes


# ---------------------------------------------------------------- configs

def fulcrum_conf(port, oport):
    return f"""[admin]
address = "127.0.0.1:0"

[runtime]
workers = 1
log_level = "warn"
drain_timeout = "3s"

[[listeners]]
name = "bench"
address = "{HOST}:{port}"
protocol = "tcp"
cluster = "origin"

[[clusters]]
name = "origin"
policy = "round_robin"
endpoints = [{{ address = "{HOST}:{oport}" }}]
"""


def haproxy_conf(d, port, oport, splice):
    # `option splice-auto` does not engage on loopback (HAProxy 2.6 here: 0 pipes ever
    # allocated, same CPU/GB as without splice), so splicing is forced both ways.
    opts = ("    # zero-copy: kernel splice(2) through a pipe, both directions\n"
            "    option splice-request\n    option splice-response\n") if splice else ""
    return f"""global
    nbthread 1
    # fds needed ~ 2 x maxconn + 2 x maxpipes (maxconn/4) must stay under ulimit -n
    maxconn 4000
    pidfile {d}/haproxy.pid

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    maxconn 4000
{opts}
frontend fe
    bind {HOST}:{port}
    default_backend origin

backend origin
    balance roundrobin
    server o1 {HOST}:{oport}
"""


def nginx_stream_conf(d, port, oport):
    return f"""load_module {STREAM_MODULE};
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
stream {{
    upstream up {{
        server {HOST}:{oport};
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
        proxy_pass up;
        proxy_connect_timeout 5s;
        proxy_timeout 60s;
    }}
}}
"""


def http_origin_conf(d, port):
    return f"""# connrate origin: one NGINX worker answering a fixed 200 from memory
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 10000000;
{C.nginx_temp_paths(d)}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def start_subject(a, subject, oport, tag):
    d = os.path.join(a.rundir, tag)
    os.makedirs(d, exist_ok=True)
    port = PORTS[subject]
    logpath = os.path.join(d, "stdout.log")
    if subject == "fulcrum":
        conf = C.write(os.path.join(d, "fulcrum.toml"), fulcrum_conf(port, oport))
        c = C.Child(tag, [a.binary, "run", "--config", conf], a.proxy_cpus, logpath)
        if not C.wait_log_line(c, r"fulcrum: listener bench on tcp://"):
            rc = c.stop()
            raise RuntimeError(f"fulcrum did not report its tcp listener (exit {rc}); {logpath}:\n{tail(logpath)}")
    elif subject.startswith("haproxy"):
        conf = C.write(os.path.join(d, "haproxy.cfg"), haproxy_conf(d, port, oport, subject == "haproxy"))
        c = C.Child(tag, ["haproxy", "-db", "-f", conf], a.proxy_cpus, logpath)
    elif subject == "nginx":
        conf = C.write(os.path.join(d, "nginx.conf"), nginx_stream_conf(d, port, oport))
        c = C.Child(tag, C.nginx_argv(d, conf), a.proxy_cpus, logpath)
    else:
        raise SystemExit(f"unknown subject {subject}")
    if not wait_listening(port, c):
        rc = c.stop()
        raise RuntimeError(f"{subject} does not listen on {port} (exit {rc}); {logpath}:\n{tail(logpath)}")
    return c, port, d


# ---------------------------------------------------------------- load

def iperf(a, port, seconds, reverse, name="iperf3"):
    """Start one iperf3 client run (pinned with the origin; bounded by -t and run_to_end)."""
    argv = ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J", "--connect-timeout", "3000"]
    if reverse:
        argv.append("-R")
    c = C.Child(name, argv, a.loadgen_cpus, pipe=True)
    return c


def parse_iperf(out, rc):
    try:
        j = json.loads(out[out.index("{"):out.rindex("}") + 1])
    except ValueError:
        raise RuntimeError(f"iperf3 gave no JSON (rc={rc}): {out[-600:]}")
    if j.get("error"):
        raise RuntimeError(f"iperf3 (rc={rc}): {j['error']}")
    recv, sent = j["end"]["sum_received"], j["end"]["sum_sent"]
    if not recv.get("bytes"):
        raise RuntimeError(f"iperf3 moved no bytes (rc={rc}): {out[-600:]}")
    return {"bytes": recv["bytes"], "bytes_sent": sent["bytes"], "seconds": round(recv["seconds"], 3),
            "gbit_s": round(recv["bits_per_second"] / 1e9, 3), "retransmits": sent.get("retransmits", 0)}


def one_run(a, subject, scenario, rnd, http_origin):
    tag = f"r{rnd}-{subject}-{scenario}"
    rec = {"subject": subject, "scenario": scenario, "round": rnd}
    bulk = scenario in ("bulk", "bulkrev")
    server = None
    if bulk:  # a fresh iperf3 server per run: a failed test cannot leave it busy for the next
        d = os.path.join(a.rundir, tag)
        os.makedirs(d, exist_ok=True)
        server = C.Child("iperf3-server", ["iperf3", "-s", "-B", HOST, "-p", str(IPERF_PORT)],
                         a.loadgen_cpus, os.path.join(d, "iperf3-server.log"))
        if not wait_listening(IPERF_PORT, server):
            server.stop()
            raise RuntimeError(f"iperf3 -s did not listen on {IPERF_PORT}")
        origin = server
    else:
        origin = http_origin
    child = None
    try:
        child, port, d = start_subject(a, subject, IPERF_PORT if bulk else HTTP_ORIGIN_PORT, tag)
        time.sleep(0.2)
        roots = {"subject": [child.pid], "origins": [origin.pid]}
        mid = {}

        def sample():
            mid["fds"], mid["pipes"] = fds_of(child.pid)

        if bulk:
            rev = scenario == "bulkrev"
            # check + warm-up in one: a short unmeasured iperf3 run must move bytes
            c = iperf(a, port, max(1, a.warmup), rev, "iperf3-warmup")
            out, rc = C.run_to_end(c, max(1, a.warmup) + 15)
            try:
                rec["check"] = parse_iperf(out, rc)
            except RuntimeError as e:
                raise RuntimeError(f"forwarding check failed: {e}; subject log:\n{tail(child.logpath)}")
            before = C.Snapshot(roots)
            c = iperf(a, port, a.duration, rev)
            timer = threading.Timer(a.duration / 2, sample)
            timer.start()
            out, rc = C.run_to_end(c, a.duration + 20)
            after = C.Snapshot(dict(roots, loadgen=[c.pid]))
            timer.cancel()
            res = parse_iperf(out, rc)
            res.update({"errors": 0, "tput": res["gbit_s"]})
        else:
            seen = C.check_h1(port)
            rec["check"] = seen
            if seen != {"200 ok": 30}:
                raise RuntimeError(f"forwarding check failed (want 30 x `200 ok`): {seen}; "
                                   f"subject log:\n{tail(child.logpath)}")
            timer = threading.Timer(a.warmup + a.duration / 2, sample)
            timer.start()
            res, before, after = C.measure_wrk(a, port, "h1close", roots)
            timer.cancel()
            res["tput"] = res["rps"]
        w = C.window(before, after)
        rec.update(res)
        cpu = w["subject"]
        if bulk:
            gb = res["bytes"] / 1e9
            rec["cpu_metric"] = round(cpu / gb, 4)                       # s per GB
            rec["cpu_metric_sched"] = round(w["subject_sched_s"] / gb, 4)
        else:
            n = max(res["requests"], 1)
            rec["cpu_metric"] = round(1e6 * cpu / n, 2)                  # µs per connection
            rec["cpu_metric_sched"] = round(1e6 * w["subject_sched_s"] / n, 2)
        rec.update({
            "wall_s": round(w["wall_s"], 3),
            "proxy_cpu_s": round(cpu, 3),
            "proxy_cpu_s_sched": round(w["subject_sched_s"], 3),
            "proxy_core_pct": round(100.0 * cpu / w["wall_s"], 1),
            "origin_cpu_s": round(w["origins"], 3),
            "cpu0_busy_pct": w["cpus"].get("cpu0", {}).get("busy_pct"),
            "cpu1_busy_pct": w["cpus"].get("cpu1", {}).get("busy_pct"),
            "steal_pct": max((x["steal_pct"] for x in w["cpus"].values()), default=0.0),
            "foreign_pct": w["foreign_pct"], "foreign_top": w["foreign_top"],
            "proxy_threads_cpu_s": w["subject_threads"],
            "fds_mid": mid.get("fds"), "pipes_mid": mid.get("pipes"),
        })
        if not child.alive():
            raise RuntimeError(f"{subject} died during the run; {child.logpath}:\n{tail(child.logpath)}")
    finally:
        if child is not None:
            rec["exit_code"] = child.stop()
            warn = tail(child.logpath, 5)
            if warn and warn != "(no log)" and not warn.startswith("fulcrum: listener"):
                rec["subject_log_tail"] = warn
        if server is not None:
            server.stop()
    return rec


# ---------------------------------------------------------------- summary

def summarize(records, subjects, scenarios):
    summ = {}
    for sc in scenarios:
        for s in subjects:
            rs = [r for r in records if r["subject"] == s and r["scenario"] == sc and "error" not in r]
            e = {"subject": s, "scenario": sc, "runs": len(rs),
                 "failed": sum(1 for r in records if r["subject"] == s and r["scenario"] == sc and "error" in r)}
            if rs:
                cpu = [r["cpu_metric"] for r in rs]
                tput = [r["tput"] for r in rs]
                pipes = [r["pipes_mid"] for r in rs if r.get("pipes_mid") is not None]
                e.update({
                    "tput": C.med(tput), "tput_spread": C.spread(tput), "tput_all": tput,
                    "cpu": C.med(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu), "cpu_spread": C.spread(cpu),
                    "cpu_all": cpu, "cpu_sched": C.med([r["cpu_metric_sched"] for r in rs]),
                    "errors": sum(r.get("errors", 0) for r in rs),
                    "non2xx": sum(r.get("non2xx", 0) for r in rs),
                    "retransmits": sum(r.get("retransmits", 0) for r in rs),
                    "core_pct": C.med([r["proxy_core_pct"] for r in rs]),
                    "cpu1_busy": C.med([r["cpu1_busy_pct"] for r in rs]),
                    "pipes": max(pipes) if pipes else None,
                    "foreign_max": max(r["foreign_pct"] for r in rs),
                    "steal_max": max(r.get("steal_pct", 0.0) for r in rs),
                    "disturbed": sum(1 for r in rs if r.get("disturbed")),
                })
            summ[(s, sc)] = e
    for sc in scenarios:
        ref = summ.get((REFERENCE, sc), {})
        for s in subjects:
            e = summ[(s, sc)]
            e["ratio"] = e["cpu"] / ref["cpu"] if ref.get("cpu") and e.get("cpu") else None
            e["tput_ratio"] = e["tput"] / ref["tput"] if ref.get("tput") and e.get("tput") else None
    return summ


def f_tput(sc, v):
    return f"{v:.2f} Gbit/s" if sc.startswith("bulk") else f"{v:,.0f} conn/s"


def f_cpu(sc, v):
    return f"{v:.3f} s/GB" if sc.startswith("bulk") else f"{v:.1f} µs/conn"


def tables(summ, subjects, scenarios):
    out = ["| scenario | subject | throughput (median) | spread | **proxy CPU** (median) | min–max "
           "| **CPU × HAProxy** | throughput × HAProxy | errors | proxy core busy | CPU1 busy "
           "| pipes open | foreign CPU max | steal max |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for sc in scenarios:
        for s in subjects:
            e = summ[(s, sc)]
            if not e.get("runs"):
                out.append(f"| {sc} | {s} | FAILED ({e['failed']} runs) |" + " |" * 11)
                continue
            flag = f" ({e['disturbed']} disturbed)" if e["disturbed"] else ""
            fail = f" ({e['failed']} failed)" if e["failed"] else ""
            if sc.startswith("bulk"):
                errs = f"{e['retransmits']} retr."
                cpu_range = f"{e['cpu_min']:.3f}–{e['cpu_max']:.3f}"
            else:
                errs = f"{e['errors']} / {e['non2xx']}"
                cpu_range = f"{e['cpu_min']:.1f}–{e['cpu_max']:.1f}"
            out.append(
                f"| {sc} | {s}{fail} | {f_tput(sc, e['tput'])} | {C.f_num(e['tput_spread'], '{:.0f}')} % "
                f"| **{f_cpu(sc, e['cpu'])}** | {cpu_range} | **{C.f_num(e['ratio'], '{:.2f}')}** "
                f"| {C.f_num(e['tput_ratio'], '{:.2f}')} | {errs} | {e['core_pct']:.0f} % | {e['cpu1_busy']:.0f} % "
                f"| {C.f_num(e['pipes'])} | {e['foreign_max']:.1f} %{flag} | {e['steal_max']:.1f} % |")
    out += ["", "Proxy CPU per unit of work (median over rounds; ratio to HAProxy with splice in brackets):", "",
            "| scenario | unit | " + " | ".join(subjects) + " |", "|---|---|" + "--:|" * len(subjects)]
    for sc in scenarios:
        cells = []
        for s in subjects:
            e = summ[(s, sc)]
            cells.append("–" if e.get("cpu") is None else
                         (f"{e['cpu']:.3f}" if sc.startswith("bulk") else f"{e['cpu']:.1f}")
                         + f" ({C.f_num(e['ratio'], '{:.2f}')}×)")
        unit = "CPU s/GB" if sc.startswith("bulk") else "CPU µs/conn"
        out.append(f"| {sc} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def render_md(meta, records, subjects, scenarios, runs_path):
    a, info = meta["args"], meta["machine"]
    summ = summarize(records, subjects, scenarios)
    errors = [r for r in records if "error" in r]
    disturbed = [r for r in records if r.get("disturbed")]
    md = [f"## fulcrum vs HAProxy vs NGINX, L4 TCP — {meta['started']}", "",
          "```", meta["command"], "```", "",
          f"rounds={a['rounds']}, {a['duration']} s measured per run after a {a['warmup']} s warm-up (bulk: a "
          f"{max(1, a['warmup'])} s iperf3 run); subject pinned to CPU {a['proxy_cpus']} with one worker/thread; "
          f"load generator (iperf3 client, 1 stream / wrk -t1 -c{a['conns']} `Connection: close`) and the origin "
          f"(iperf3 -s / one NGINX worker) pinned to CPU {a['loadgen_cpus']}. Raw records: `{runs_path}`.", "",
          "Machine:", ""]
    for k in ("nproc", "kernel", "cpu", "memory", "os", "haproxy", "nginx", "wrk", "iperf3", "fulcrum",
              "fulcrum_build", "loadavg_start", "loadavg_end"):
        md.append(f"- {k}: `{info.get(k)}`")
    md += ["", tables(summ, subjects, scenarios), ""]
    md.append("Columns: medians over rounds; spread = (max−min)/median of throughput; bulk throughput = iperf3 "
              "receiver Gbit/s, bulk CPU = Δ(utime+stime) of the subject's process tree over the measured "
              "iperf3 run / GB (10^9 bytes) received; connrate throughput = wrk requests/s = new TCP connections/s "
              "through the proxy (each also opens one to the origin), CPU = Δ(utime+stime) / connections; "
              "× HAProxy = ratio of medians to `haproxy` (mode tcp with forced splice); errors = bulk: TCP "
              "retransmits reported by iperf3, connrate: wrk socket errors / non-2xx; proxy core busy = subject "
              "CPU / wall time; CPU1 busy = load generator + origin core; pipes open = pipe fds held by the "
              "subject at mid-run (splice(2) buffers; max over rounds); foreign CPU = processes this script did "
              "not start, % of the machine; steal = hypervisor steal time on the busier CPU (max over rounds).")
    if errors:
        md += ["", "Failed runs:", ""] + [f"- round {r['round']} {r['subject']} {r['scenario']}: "
                                          + r["error"].replace("\n", "\n  ") for r in errors]
    if disturbed:
        md += ["", f"{len(disturbed)} run(s) exceeded {a['max_foreign_pct']}% foreign CPU or "
               f"{a['max_steal_pct']}% steal after {a['retries']} retries; the least disturbed attempt is used: " +
               ", ".join(f"r{r['round']} {r['subject']} {r['scenario']} foreign {r['foreign_pct']}% "
                         f"{r['foreign_top']} steal {r.get('steal_pct')}%" for r in disturbed)]
    return "\n".join(md) + "\n"


def report(path, out):
    """Re-render the markdown of an earlier run from its runs.jsonl."""
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
    records = [C.pick_best(v) for v in attempts.values()]
    subjects = [s for s in meta["args"]["subjects"].split(",") if s]
    scenarios = [s for s in meta["args"]["scenarios"].split(",") if s]
    text = render_md(meta, records, subjects, scenarios, path)
    print(text)
    with open(out, "w") as f:
        f.write(text)
    log(f"written: {out}")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured load run (default 8)")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured warm-up seconds per run (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round x 3 s, no waiting for a quiet machine, no retries")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list of {','.join(SCENARIOS)}")
    ap.add_argument("--subjects", default=",".join(SUBJECTS), help=f"comma list of {','.join(SUBJECTS)}")
    ap.add_argument("--conns", type=int, default=50, help="connrate: wrk connections (default 50)")
    ap.add_argument("--proxy-cpus", default="0", help="CPU list for the subject (default 0)")
    ap.add_argument("--loadgen-cpus", default="1", help="CPU list for the load generator and origin (default 1)")
    ap.add_argument("--max-foreign-pct", type=float, default=5.0,
                    help="repeat a run when processes we did not start used more than this share of the "
                         "machine during it (default 5)")
    ap.add_argument("--max-steal-pct", type=float, default=10.0, help="also repeat above this steal %% (default 10)")
    ap.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run (default 2)")
    ap.add_argument("--quiet-wait", type=int, default=120,
                    help="before each run, wait up to this many seconds for a quiet machine (default 120)")
    ap.add_argument("--fulcrum-bin", default=os.path.join(REPO, "target", "release", "fulcrum"),
                    help="fulcrum binary (default target/release/fulcrum; copied to the run dir, never built here)")
    ap.add_argument("--out", default=os.path.join(HERE, "last-run-l4.md"), help="markdown output")
    ap.add_argument("--report", metavar="RUNS_JSONL", help="only re-print the table of an earlier run")
    a = ap.parse_args()
    if a.report:
        return report(a.report, a.out)
    if a.quick:
        a.rounds, a.duration, a.retries, a.quiet_wait = 1, 3, 0, 0
    scenarios = [s for s in a.scenarios.split(",") if s]
    subjects = [s for s in a.subjects.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s}; choose from {SCENARIOS}")
    for s in subjects:
        if s not in SUBJECTS:
            raise SystemExit(f"unknown subject {s}; choose from {SUBJECTS}")
    command = "python3 bench/l4.py " + " ".join(sys.argv[1:])
    ensure_tools()
    ports = [HTTP_ORIGIN_PORT, IPERF_PORT] + [PORTS[s] for s in subjects]
    busy = [p for p in ports if not C.port_free(p)]
    if busy:
        raise SystemExit(f"ports in use on {HOST}: {busy} (another benchmark running?)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # children inherit it; HAProxy sizes its fd needs from maxconn and pipes
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    a.rundir = os.path.join("/tmp/fulcrum-bench", "l4-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(a.rundir, exist_ok=True)
    a.binary = None
    note = "fulcrum not measured"
    if "fulcrum" in subjects:
        if not os.path.exists(a.fulcrum_bin):
            raise SystemExit(f"fulcrum binary not found: {a.fulcrum_bin} (cargo build --release --bin fulcrum)")
        a.binary = os.path.join(a.rundir, "fulcrum")  # a private copy: target/ may be rebuilt meanwhile
        shutil.copy2(a.fulcrum_bin, a.binary)
        note = f"not built by this run; copied from {a.fulcrum_bin} to the run dir"
        conf = C.write(os.path.join(a.rundir, "fulcrum-check.toml"), fulcrum_conf(PORTS["fulcrum"], HTTP_ORIGIN_PORT))
        chk = subprocess.run([a.binary, "check", "--config", conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise SystemExit(f"`fulcrum check` rejects the benchmark config:\n{chk.stdout}{chk.stderr}")
    info = C.machine_info(a.binary or "-")
    info.pop("h2load", None)
    info["iperf3"] = C.sh(["iperf3", "--version"]).splitlines()[0] if shutil.which("iperf3") else "?"
    info["fulcrum_build"] = note
    runs_path = os.path.join(a.rundir, "runs.jsonl")
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    log(f"l4: subjects={subjects} scenarios={scenarios} rounds={a.rounds} duration={a.duration}s "
        f"warmup={a.warmup}s -> {a.rundir}")

    signal.signal(signal.SIGINT, C._on_signal)
    signal.signal(signal.SIGTERM, C._on_signal)
    signal.signal(signal.SIGHUP, C._on_signal)
    atexit.register(C.stop_all)
    records, origin = [], None
    with open(runs_path, "w") as rf:
        rf.write(json.dumps({"kind": "meta", "command": command, "started": started, "machine": info,
                             "args": vars(a)}) + "\n")
        try:
            if "connrate" in scenarios:
                d = os.path.join(a.rundir, "origin")
                os.makedirs(d, exist_ok=True)
                conf = C.write(os.path.join(d, "nginx.conf"), http_origin_conf(d, HTTP_ORIGIN_PORT))
                origin = C.Child("origin", C.nginx_argv(d, conf), a.loadgen_cpus, os.path.join(d, "stdout.log"))
                if not wait_listening(HTTP_ORIGIN_PORT, origin):
                    raise SystemExit(f"origin did not start; see {d}")
            total, k = a.rounds * len(subjects) * len(scenarios), 0
            for rnd in range(1, a.rounds + 1):
                shift = (rnd - 1) % len(subjects)
                for subj in subjects[shift:] + subjects[:shift]:  # A B C D, B C D A, ...
                    for sc in scenarios:
                        k += 1
                        if origin is not None and not origin.alive():
                            raise SystemExit(f"origin exited; see {a.rundir}/origin")
                        log(f"[{k}/{total}] round {rnd} {subj:<16} {sc:<8}")
                        best = None
                        for attempt in range(a.retries + 1):
                            if a.quiet_wait > 0:
                                C.wait_quiet({"origins": [origin.pid] if origin else []},
                                             a.max_foreign_pct, a.quiet_wait)
                            try:
                                rec = one_run(a, subj, sc, rnd, origin)
                            except RuntimeError as e:
                                rec = {"subject": subj, "scenario": sc, "round": rnd, "error": str(e)}
                                log(f"  ERROR: {e}")
                            rec["attempt"] = attempt
                            rec["disturbed"] = (rec.get("foreign_pct", 0.0) > a.max_foreign_pct
                                                or rec.get("steal_pct", 0.0) > a.max_steal_pct)
                            rf.write(json.dumps({"kind": "run", **rec}) + "\n")
                            rf.flush()
                            if "error" not in rec:
                                log(f"  {f_tput(sc, rec['tput']):>16}  cpu {f_cpu(sc, rec['cpu_metric'])} "
                                    f"(sched {rec['cpu_metric_sched']})  core {rec['proxy_core_pct']:.0f}%  "
                                    f"cpu0/1 {rec['cpu0_busy_pct']:.0f}/{rec['cpu1_busy_pct']:.0f}%  "
                                    f"errors {rec.get('errors')}  pipes {rec.get('pipes_mid')}  "
                                    f"foreign {rec['foreign_pct']}% {rec['foreign_top']}")
                            best = rec if best is None else C.pick_best([best, rec])
                            if "error" in rec or not rec["disturbed"]:
                                break
                            if attempt < a.retries:
                                log(f"  disturbed (foreign {rec['foreign_pct']}%, steal {rec['steal_pct']}%), repeating")
                                time.sleep(2)
                        records.append(best)
        except KeyboardInterrupt:
            log("interrupted: stopping everything we started")
            C.stop_all()
            raise SystemExit(130)
        finally:
            if origin is not None:
                origin.stop()
            C.stop_all()
        for e in summarize(records, subjects, scenarios).values():
            rf.write(json.dumps({"kind": "summary", **e}) + "\n")
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().strip()
    with open(runs_path, "a") as rf:
        rf.write(json.dumps({"kind": "end", "loadavg_end": info["loadavg_end"],
                             "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}) + "\n")
    text = render_md({"command": command, "started": started, "machine": info, "args": vars(a)},
                     records, subjects, scenarios, runs_path)
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    log(f"written: {a.out}; raw: {runs_path}")


if __name__ == "__main__":
    main()
