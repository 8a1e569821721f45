#!/usr/bin/env python3
"""tls.py -- TLS termination: fulcrum vs HAProxy vs NGINX on one small box (stdlib only).

    python3 bench/tls.py [--rounds 3] [--duration 8] [--quick]
                         [--scenarios full-ecdsa-13,full-ecdsa-12,full-rsa-13,full-rsa-12,
                                      resumed-12,resumed-13,h2,h1,reencrypt]
                         [--subjects fulcrum,haproxy,nginx]

The TLS sibling of compare.py (whose process, /proc and CPU-accounting helpers it
imports). Every subject is one worker pinned to CPU 0, terminating TLS in front of
three NGINX origins; the client and the origins share CPU 1; only 127.0.0.1 is used.

  full-<key>-<ver>  `openssl s_time -new`: a full handshake per connection, no
                    request (key: ECDSA P-256 or RSA 2048; ver: TLS 1.3 or 1.2)
  resumed-12        `openssl s_time -reuse`: every connection resumes one TLS 1.2
                    session (ECDSA certificate).
  resumed-13        bench/resume13.py (Python's ssl, OpenSSL): every connection
                    resumes one TLS 1.3 session by its ticket (PSK + ECDHE).
                    s_time cannot: it never reads the TLS 1.3 ticket, which
                    arrives after the handshake.
  h2                h2load -c10 -m10 over TLS 1.3 (ALPN h2): requests on
                    established connections
  h1                wrk -c50 over TLS (HTTP/1.1 keep-alive)
  reencrypt         wrk -c50 plain HTTP/1.1 to the subject, which re-encrypts to the
                    origins over TLS (verified against a CA, SNI, kept-alive): the
                    cost of TLS towards the upstream

One s_time process cannot keep a server core busy (the client's half of a
handshake costs about as much as the server's), so handshakes/s is the client's
rate for every subject; what differs, and what the report compares, is the
subject's CPU per handshake (and so its capacity: 1e6 / µs per handshake on one
core). For h2/h1 it is CPU per request, as in compare.py.

Output: a markdown table on stdout and in bench/last-run-tls.md; raw records under
/tmp/fulcrum-bench/tls-<time>/. Every process started here is stopped by PID.
Build fulcrum first (cargo build --release --bin fulcrum).
"""

import argparse
import atexit
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import compare as C  # noqa: E402

HOST = C.HOST
log = C.log
SCENARIOS = ["full-ecdsa-13", "full-ecdsa-12", "full-rsa-13", "full-rsa-12",
             "resumed-12", "resumed-13", "h2", "h1", "reencrypt"]
SUBJECTS = ["fulcrum", "haproxy", "nginx"]
REFERENCE = "haproxy"
PORTS = {"fulcrum": 18390, "haproxy": 18380, "nginx": 18385}
# The origins answer over TLS on their port + this (reencrypt scenario).
TLS_ORIGIN_OFFSET = 100
ORIGIN_NAME = "origin.bench.test"


def key_of(scenario):
    return "rsa" if "-rsa-" in scenario else "ecdsa"


def make_certs(d):
    """A self-signed ECDSA P-256 and an RSA 2048 certificate for bench.example.test."""
    out = {}
    for kind, args in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                       ("rsa", ["-newkey", "rsa:2048"])):
        cert, key = os.path.join(d, f"{kind}.pem"), os.path.join(d, f"{kind}.key")
        subprocess.run(["openssl", "req", "-x509", *args, "-nodes", "-days", "2",
                        "-subj", "/CN=bench.example.test",
                        "-addext", "subjectAltName=DNS:bench.example.test",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        combined = os.path.join(d, f"{kind}-combined.pem")
        with open(combined, "w") as f:
            f.write(open(cert).read() + open(key).read())
        out[kind] = (cert, key, combined)
    # The origins' TLS certificate, issued by a CA the subjects verify against
    # (a self-signed CA:TRUE certificate is not a valid end-entity for webpki).
    ca, ca_key = os.path.join(d, "origin-ca.pem"), os.path.join(d, "origin-ca.key")
    leaf, leaf_key = os.path.join(d, "origin.pem"), os.path.join(d, "origin.key")
    csr, ext = os.path.join(d, "origin.csr"), os.path.join(d, "origin.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bench origin CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-keyout", ca_key, "-out", ca],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", *ec, "-subj", f"/CN={ORIGIN_NAME}",
                    "-keyout", leaf_key, "-out", csr], check=True, capture_output=True)
    C.write(ext, f"subjectAltName=DNS:{ORIGIN_NAME}\nbasicConstraints=CA:FALSE\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", leaf],
                   check=True, capture_output=True)
    out["origin"] = (leaf, leaf_key, ca)
    return out


def tls_origin_conf(d, n, port, certs):
    """compare.py's origin, plus the same answer over TLS on port + TLS_ORIGIN_OFFSET."""
    leaf, key, _ = certs["origin"]
    block = f"""    server {{
        listen {HOST}:{port + TLS_ORIGIN_OFFSET} ssl backlog=4096;
        ssl_certificate {leaf};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {{ return 200 "hello from origin{n}\\n"; }}
    }}
"""
    base = C.origin_conf(d, n, port).rstrip()
    return base[: -1] + block + "}\n"


def fulcrum_conf(port, cert, key, reencrypt=None):
    if reencrypt:
        endpoints = ", ".join(f'{{ address = "{HOST}:{p + TLS_ORIGIN_OFFSET}" }}' for p in C.ORIGIN_PORTS)
        listener_tls = ""
        cluster_tls = f'[clusters.tls]\nca = "{reencrypt}"\nsni = "{ORIGIN_NAME}"\n'
    else:
        endpoints = ", ".join(f'{{ address = "{HOST}:{p}" }}' for p in C.ORIGIN_PORTS)
        listener_tls = f'[listeners.tls]\ncertificates = [{{ cert = "{cert}", key = "{key}" }}]\n'
        cluster_tls = ""
    return f"""[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
log_level = "warn"
drain_timeout = "3s"
[[listeners]]
name = "bench"
address = "{HOST}:{port}"
{listener_tls}[[listeners.routes]]
cluster = "origins"
[[clusters]]
name = "origins"
policy = "round_robin"
idle_timeout = "60s"
endpoints = [{endpoints}]
{cluster_tls}"""


def haproxy_conf(d, port, combined, reencrypt=None):
    if reencrypt:
        servers = "\n".join(f"    server o{i} {HOST}:{p + TLS_ORIGIN_OFFSET} ssl verify required ca-file {reencrypt} sni str({ORIGIN_NAME}) alpn http/1.1"
                            for i, p in enumerate(C.ORIGIN_PORTS, 1))
        bind = f"bind {HOST}:{port}"
    else:
        servers = "\n".join(f"    server o{i} {HOST}:{p}" for i, p in enumerate(C.ORIGIN_PORTS, 1))
        bind = f"bind {HOST}:{port} ssl crt {combined} alpn h2,http/1.1"
    return f"""global
    nbthread 1
    maxconn 4000
    pidfile {d}/haproxy.pid
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 300s
    maxconn 4000
frontend fe
    # session cache (tune.ssl.cachesize 20000) and tickets are on by default
    {bind}
    default_backend origins
backend origins
    balance roundrobin
{servers}
"""


def nginx_conf(d, port, cert, key, reencrypt=None):
    offset = TLS_ORIGIN_OFFSET if reencrypt else 0
    servers = "\n".join(f"        server {HOST}:{p + offset};" for p in C.ORIGIN_PORTS)
    if reencrypt:
        listen = f"listen {HOST}:{port} backlog=4096;"
        upstream = (f"proxy_pass https://origins;\n            proxy_ssl_verify on;\n"
                    f"            proxy_ssl_trusted_certificate {reencrypt};\n"
                    f"            proxy_ssl_server_name on;\n            proxy_ssl_name {ORIGIN_NAME};\n"
                    f"            proxy_ssl_session_reuse on;")
    else:
        listen = (f"listen {HOST}:{port} ssl http2 backlog=4096;\n        ssl_certificate {cert};\n"
                  f"        ssl_certificate_key {key};\n        ssl_protocols TLSv1.2 TLSv1.3;\n"
                  f"        ssl_session_cache shared:SSL:10m;\n        ssl_session_tickets on;")
        upstream = "proxy_pass http://origins;"
    return f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
{C.nginx_temp_paths(d)}
    upstream origins {{
{servers}
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        {listen}
        location / {{
            {upstream}
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_subject(a, subject, scenario, tag):
    d = os.path.join(a.rundir, tag)
    os.makedirs(d, exist_ok=True)
    port = PORTS[subject]
    cert, key, combined = a.certs[key_of(scenario)]
    ca = a.certs["origin"][2] if scenario == "reencrypt" else None
    logpath = os.path.join(d, "stdout.log")
    if subject == "fulcrum":
        conf = C.write(os.path.join(d, "fulcrum.toml"), fulcrum_conf(port, cert, key, ca))
        c = C.Child(tag, [a.binary, "run", "--config", conf], a.proxy_cpus, logpath)
    elif subject == "haproxy":
        conf = C.write(os.path.join(d, "haproxy.cfg"), haproxy_conf(d, port, combined, ca))
        c = C.Child(tag, ["haproxy", "-db", "-f", conf], a.proxy_cpus, logpath)
    else:
        conf = C.write(os.path.join(d, "nginx.conf"), nginx_conf(d, port, cert, key, ca))
        c = C.Child(tag, C.nginx_argv(d, conf), a.proxy_cpus, logpath)
    if not C.wait_port(port):
        rc = c.stop()
        raise RuntimeError(f"{subject} does not listen on {port} (exit {rc}); see {logpath}")
    return c, port


def s_time_argv(port, scenario, seconds):
    if scenario == "resumed-13":
        return [sys.executable, os.path.join(HERE, "resume13.py"), HOST, str(port), str(seconds)]
    ver = "-tls1_3" if scenario.endswith("13") else "-tls1_2"
    mode = "-reuse" if scenario.startswith("resumed") else "-new"
    return ["openssl", "s_time", "-connect", f"{HOST}:{port}", mode, ver, "-time", str(seconds)]


def parse_s_time(out, rc):
    m = re.search(r"^(\d+) connections in (\d+) real seconds", out, re.M)
    if not m:
        raise RuntimeError(f"s_time failed (rc={rc}): {out[-500:]}")
    return {"requests": int(m.group(1)), "seconds": int(m.group(2)), "errors": 0, "non2xx": 0}


def measure(a, port, scenario, roots):
    """(result, before, after) for one bounded load run."""
    if scenario in ("h1", "h2", "reencrypt"):
        if scenario in ("h1", "reencrypt"):
            scheme = "http" if scenario == "reencrypt" else "https"
            argv = ["wrk", "-t", "1", "-c", "50", "-d", f"{a.duration}s", "--timeout", "5s",
                    f"{scheme}://{HOST}:{port}/"]
        else:
            argv = ["h2load", "-t", "1", "-c", "10", "-m", "10", "-D", str(a.duration),
                    "--warm-up-time", "1", f"https://{HOST}:{port}/"]
        before = C.Snapshot(roots)
        c = C.Child(scenario, argv, a.loadgen_cpus, pipe=True)
        out, rc = C.run_to_end(c, a.duration + 30)
        after = C.Snapshot(dict(roots, loadgen=[c.pid]))
        if scenario != "h2":
            res = C.parse_wrk(out, rc)
        else:
            m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
            if not m:
                raise RuntimeError(f"h2load failed (rc={rc}): {out[-500:]}")
            res = {"requests": int(m.group(3)), "errors": int(m.group(4)), "non2xx": 0}
        return res, before, after
    warm = C.Child("s_time-warmup", s_time_argv(port, scenario, 1), a.loadgen_cpus, pipe=True)
    out, rc = C.run_to_end(warm, 20)
    parse_s_time(out, rc)
    before = C.Snapshot(roots)
    c = C.Child("s_time", s_time_argv(port, scenario, a.duration), a.loadgen_cpus, pipe=True)
    out, rc = C.run_to_end(c, a.duration + 30)
    after = C.Snapshot(dict(roots, loadgen=[c.pid]))
    if scenario == "resumed-13" and rc != 0:
        raise RuntimeError(f"resume13.py: a connection did not resume (rc={rc}): {out[-300:]}")
    return parse_s_time(out, rc), before, after


def one_run(a, subject, scenario, rnd, origins):
    tag = f"r{rnd}-{subject}-{scenario}"
    rec = {"subject": subject, "scenario": scenario, "round": rnd}
    child, port = start_subject(a, subject, scenario, tag)
    try:
        time.sleep(0.2)
        roots = {"subject": [child.pid], "origins": [o.pid for o in origins]}
        res, before, after = measure(a, port, scenario, roots)
        w = C.window(before, after)
        n = max(res["requests"], 1)
        rec.update(res)
        rec.update({
            "rate": round(n / w["wall_s"], 1),
            "cpu_us": round(1e6 * w["subject"] / n, 2),
            "proxy_core_pct": round(100.0 * w["subject"] / w["wall_s"], 1),
            "steal_pct": max((x["steal_pct"] for x in w["cpus"].values()), default=0.0),
            "foreign_pct": w["foreign_pct"],
        })
        if not child.alive():
            raise RuntimeError(f"{subject} died during the run; see {child.logpath}")
    finally:
        rec["exit_code"] = child.stop()
    return rec


def paired_ratio(records, scenario, subject):
    """Median over rounds of subject's CPU per request / the reference's in that round."""
    by_round = {}
    for r in records:
        if r["scenario"] == scenario and "cpu_us" in r and r["subject"] in (subject, REFERENCE):
            by_round.setdefault(r["round"], {})[r["subject"]] = r["cpu_us"]
    ratios = [v[subject] / v[REFERENCE] for v in by_round.values()
              if subject in v and REFERENCE in v and v[REFERENCE] > 0]
    return f"{statistics.median(ratios):.2f}" if ratios else "–"


def render(records, subjects, scenarios, command, meta):
    lines = [f"## TLS termination: fulcrum vs HAProxy vs NGINX — {meta['started']}", "",
             "```", command, "```", "",
             f"rounds={meta['rounds']}, {meta['duration']} s per run; subject on CPU 0 (one worker), "
             "client (openssl s_time / h2load / wrk) and three NGINX origins on CPU 1. "
             "Handshake scenarios: one s_time client, so the rate is the client's; compare CPU per "
             "handshake (capacity on one core = 1e6 / µs). × HAProxy compares the medians; 'paired' is the "
             "median of each round's own ratio (both subjects measured in the same round, seconds apart), which a host "
             "with slow phases disturbs less.", "",
             "| scenario | subject | rate (/s, median) | **CPU µs per handshake or request** (median) | min–max | **× HAProxy** | paired | capacity /s on one core | proxy core busy | errors |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    med = {}
    for sc in scenarios:
        for s in subjects:
            rs = [r for r in records if r["subject"] == s and r["scenario"] == sc and "cpu_us" in r]
            if rs:
                med[(sc, s)] = statistics.median(r["cpu_us"] for r in rs)
    for sc in scenarios:
        for s in subjects:
            rs = [r for r in records if r["subject"] == s and r["scenario"] == sc and "cpu_us" in r]
            if not rs:
                lines.append(f"| {sc} | {s} | – | – | – | – | – | – | – | failed |")
                continue
            cpu = med[(sc, s)]
            ref = med.get((sc, REFERENCE))
            ratio = f"{cpu / ref:.2f}" if ref else "–"
            paired = paired_ratio(records, sc, s)
            lo, hi = min(r["cpu_us"] for r in rs), max(r["cpu_us"] for r in rs)
            rate = statistics.median(r["rate"] for r in rs)
            busy = statistics.median(r["proxy_core_pct"] for r in rs)
            errs = sum(r.get("errors", 0) + r.get("non2xx", 0) for r in rs)
            lines.append(f"| {sc} | {s} | {rate:,.0f} | **{cpu:.1f}** | {lo:.1f}–{hi:.1f} | **{ratio}** | {paired} | "
                         f"{1e6 / cpu:,.0f} | {busy:.0f} % | {errs} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="1 round, 3 s runs")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--subjects", default=",".join(SUBJECTS))
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--loadgen-cpus", default="1")
    ap.add_argument("--fulcrum-bin", default=os.path.join(REPO, "target/release/fulcrum"))
    ap.add_argument("--out", default=os.path.join(HERE, "last-run-tls.md"))
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.duration = 1, 3
    scenarios = [s for s in a.scenarios.split(",") if s]
    subjects = [s for s in a.subjects.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s}; pick from {SCENARIOS}")
    for tool in ("openssl", "haproxy", "nginx", "wrk", "h2load", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y openssl haproxy nginx wrk nghttp2-client")
    if not os.path.exists(a.fulcrum_bin):
        raise SystemExit(f"{a.fulcrum_bin} not found: cargo build --release --bin fulcrum")
    a.rundir = os.path.join("/tmp/fulcrum-bench", "tls-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(a.rundir, exist_ok=True)
    a.binary = os.path.join(a.rundir, "fulcrum")
    shutil.copy2(a.fulcrum_bin, a.binary)
    a.certs = make_certs(a.rundir)
    a.origin_cpus = a.loadgen_cpus
    command = "python3 bench/tls.py " + " ".join(sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    atexit.register(C.stop_all)
    origins, records = [], []
    for i, p in enumerate(C.ORIGIN_PORTS, 1):
        d = os.path.join(a.rundir, f"origin{i}")
        os.makedirs(d, exist_ok=True)
        conf = C.write(os.path.join(d, "nginx.conf"), tls_origin_conf(d, i, p, a.certs))
        origins.append(C.Child(f"origin{i}", C.nginx_argv(d, conf), a.origin_cpus, os.path.join(d, "stdout.log")))
    for p in C.ORIGIN_PORTS + [p + TLS_ORIGIN_OFFSET for p in C.ORIGIN_PORTS]:
        if not C.wait_port(p):
            raise SystemExit(f"origin on {p} did not start; see {a.rundir}")
    with open(os.path.join(a.rundir, "runs.jsonl"), "w") as rf:
        for rnd in range(1, a.rounds + 1):
            shift = (rnd - 1) % len(subjects)
            for subj in subjects[shift:] + subjects[:shift]:
                for sc in scenarios:
                    try:
                        rec = one_run(a, subj, sc, rnd, origins)
                        log(f"round {rnd} {subj:8s} {sc:14s} {rec['rate']:>9,.0f}/s  {rec['cpu_us']:7.1f} µs")
                    except RuntimeError as e:
                        rec = {"subject": subj, "scenario": sc, "round": rnd, "error": str(e)}
                        log(f"round {rnd} {subj} {sc}: FAILED: {e}")
                    rf.write(json.dumps(rec) + "\n")
                    records.append(rec)
    for o in origins:
        o.stop()
    md = render(records, subjects, scenarios, command,
                {"started": started, "rounds": a.rounds, "duration": a.duration})
    C.write(a.out, md)
    print(md)
    print(f"written: {a.out}; raw: {a.rundir}/runs.jsonl")


if __name__ == "__main__":
    main()
