#!/usr/bin/env bash
# Real-client interop: drives the fulcrum binary with curl (HTTP/1.1 and
# HTTP/2 prior knowledge), h2load (also across 40 config reloads and a
# SIGTERM, and through a 60 s chaos soak) and Python websockets. Everything
# runs on loopback; every process started here is stopped by PID; every load
# run is bounded by count or time.
set -euo pipefail
BIN=${1:-target/release/fulcrum}
WORK=$(mktemp -d -t fulcrum-interop.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "interop: FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f"; tail -n 30 "$f"; done >&2; exit 1; }
pass() { echo "interop: ok: $*"; }

# Waits for a line in a file (the binary prints its bound addresses at start).
wait_line() { # file pattern
  for _ in $(seq 1 300); do grep -m1 -o "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# 1. The demo: built-in backends behind the load balancer.
"$BIN" demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 2 >"$WORK/demo.out" 2>"$WORK/demo.log" &
DEMO=$!; PIDS+=("$DEMO")
LB=$(wait_line "$WORK/demo.out" 'listener demo on http://[0-9.:]*' | sed 's|.*http://||') || fail "demo did not start"
ADMIN=$(wait_line "$WORK/demo.out" 'admin on http://[0-9.:]*' | sed 's|.*http://||') || fail "demo admin did not start"

seen=""
for i in $(seq 1 30); do
  body=$(curl -sS --fail "http://$LB/hello") || fail "curl HTTP/1.1 request $i"
  seen="$seen $(echo "$body" | awk '{print $3}')"
done
backends=$(echo "$seen" | tr ' ' '\n' | sort -u | grep -c . || true)
[ "$backends" -ge 2 ] || fail "30 requests reached only $backends backend(s): $seen"
pass "curl HTTP/1.1: 30 requests spread over $backends backends"

ver=$(curl -sS --fail --http2-prior-knowledge -o /dev/null -w '%{http_version}' "http://$LB/") || fail "curl h2c"
[ "$ver" = 2 ] || fail "curl --http2-prior-knowledge negotiated HTTP/$ver"
pass "curl --http2-prior-knowledge: HTTP/2"

hdrs=$(curl -sS -D - -o /dev/null "http://$LB/") || fail "curl headers"
echo "$hdrs" | grep -qi '^x-request-id: ' || fail "no x-request-id in response"
pass "x-request-id returned"

if command -v h2load >/dev/null; then
  out=$(h2load -n 2000 -c 10 -m 10 "http://$LB/" 2>&1) || fail "h2load h2c: $out"
  echo "$out" | grep -q '2000 succeeded, 0 failed' || fail "h2load h2c: $out"
  pass "h2load h2c: 2000 requests, 0 failed"
  out=$(h2load --h1 -n 2000 -c 10 "http://$LB/" 2>&1) || fail "h2load h1: $out"
  echo "$out" | grep -q '2000 succeeded, 0 failed' || fail "h2load h1: $out"
  pass "h2load HTTP/1.1: 2000 requests, 0 failed"
else
  fail "h2load is not installed (apt-get install nghttp2-client)"
fi

curl -sS --fail "http://$ADMIN/metrics" | grep -q '^fulcrum_upstream_requests_total{' || fail "metrics lack fulcrum_upstream_requests_total"
curl -sS --fail "http://$ADMIN/ready" >/dev/null || fail "/ready not 200"
curl -sS --fail "http://$ADMIN/clusters" | grep -q '"healthy": true' || fail "/clusters shows no healthy endpoint"
pass "admin: /metrics /ready /clusters"

# Reloads and SIGTERM under h2load, with the demo as the origin.
bash scripts/interop_reload.sh "$BIN" "$LB"

kill -TERM "$DEMO"
wait "$DEMO" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "demo exited with $rc after SIGTERM"
pass "SIGTERM: clean exit 0"

# 2. Every example config passes `fulcrum check` (tls.toml needs certificate
# files; scripts/interop_tls.sh makes them and checks and runs it).
for f in examples/*.toml; do
  [ "$f" = examples/tls.toml ] && continue
  "$BIN" check --config "$f" >/dev/null || fail "fulcrum check $f"
done
pass "fulcrum check examples/*.toml"

# 3. L4 listeners (tcp, tls_passthrough, udp) with real servers and clients.
bash scripts/interop_l4.sh "$BIN"

# 4. TLS termination with curl, openssl s_client and h2load.
bash scripts/interop_tls.sh "$BIN"
# 5. WebSockets with Python's websockets as client and origin (Debian's
# python3-websockets; the first python3 on PATH may be another install).
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import websockets' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "no python3 with websockets (apt-get install python3-websockets)"
"$PY" scripts/interop_websocket.py "$BIN" || fail "websocket interop"

# 6. Chaos soak: h2load at a steady rate for 60 s while backends are killed,
# fail and slow down at random; failure handling keeps errors under 2 %.
"$PY" scripts/chaos_soak.py "$BIN" --duration 60 || fail "chaos soak"
echo "interop: all passed"
