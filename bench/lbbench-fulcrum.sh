#!/usr/bin/env bash
# Wrapper that lets the shared reference tool (lbbench.py, a separate benchmark that is not part of this repository) run
# fulcrum as its custom subject. lbbench fills in the placeholders:
#
#   python3 lbbench.py l7 --quick \
#     --proxy-cmd 'bench/lbbench-fulcrum.sh {port} {h2port} {backends} {workers} {mode} {rundir}' \
#     --proxy-port 18090 --proxy-h2-port 18090 --proxy-name fulcrum
#
# It writes a fulcrum config (one listener: HTTP/1.1 and h2c on the same port, one
# round-robin cluster over {backends}) and execs the binary, so the PID lbbench
# started is fulcrum itself. FULCRUM_BIN overrides the binary path.
set -euo pipefail
port=$1 h2port=$2 backends=$3 workers=$4 mode=$5 rundir=$6
if [ "$mode" != http ]; then
    echo "lbbench-fulcrum.sh: only mode http (L7) is supported, got $mode" >&2
    exit 2
fi
if [ "$h2port" != "$port" ]; then
    echo "lbbench-fulcrum.sh: fulcrum serves h2c on the HTTP/1.1 port; pass --proxy-h2-port $port" >&2
fi
here=$(cd "$(dirname "$0")" && pwd)
bin=${FULCRUM_BIN:-$here/../target/release/fulcrum}
endpoints=$(tr ',' '\n' <<<"$backends" | sed 's/.*/{ address = "&" }/' | paste -sd, - | sed 's/,/, /g')
conf=$rundir/fulcrum-$$.toml
cat >"$conf" <<CONF
[admin]
address = "127.0.0.1:0"

[runtime]
workers = $workers
log_level = "warn"
drain_timeout = "3s"

[[listeners]]
name = "bench"
address = "127.0.0.1:$port"

[[listeners.routes]]
cluster = "origins"

[[clusters]]
name = "origins"
policy = "round_robin"
idle_timeout = "60s"
endpoints = [$endpoints]
CONF
exec "$bin" run --config "$conf"
