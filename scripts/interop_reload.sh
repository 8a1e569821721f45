#!/usr/bin/env bash
# Live configuration under a real load generator: h2load (h2c and HTTP/1.1)
# runs against fulcrum while the config is reloaded 20 times through the
# admin API (a weight, a route, a listener and a cluster come and go), then
# SIGTERM. Every request must succeed. Loopback
# only; every process is stopped by PID; every load run is bounded by count.
# Usage: interop_reload.sh BIN ORIGIN (ORIGIN: host:port of an HTTP server).
set -euo pipefail
BIN=$1
ORIGIN=$2
WORK=$(mktemp -d -t fulcrum-reload.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "interop-reload: FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f"; tail -n 30 "$f"; done >&2; exit 1; }
pass() { echo "interop-reload: ok: $*"; }
wait_line() { # file pattern
  for _ in $(seq 1 300); do grep -m1 -o "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

version() { # n: odd versions add a weight, a route, a listener and a cluster
  cat <<TOML
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
shutdown_delay = "10s"
drain_timeout = "20s"
[[listeners]]
name = "public"
address = "127.0.0.1:0"
TOML
  if [ $(($1 % 2)) = 1 ]; then
    printf '[[listeners.routes]]\npath_prefix = "/odd"\ncluster = "app"\n'
  fi
  printf '[[listeners.routes]]\ncluster = "app"\n'
  if [ $(($1 % 2)) = 1 ]; then
    printf '[[listeners]]\nname = "extra"\naddress = "127.0.0.1:0"\n[[listeners.routes]]\ncluster = "extra"\n'
    printf '[[clusters]]\nname = "app"\nendpoints = [{ address = "%s", weight = 3 }]\n' "$ORIGIN"
    printf '[[clusters]]\nname = "extra"\nendpoints = [{ address = "%s" }]\n' "$ORIGIN"
  else
    printf '[[clusters]]\nname = "app"\nendpoints = [{ address = "%s" }]\n' "$ORIGIN"
  fi
}

version 0 >"$WORK/fulcrum.toml"
"$BIN" run --config "$WORK/fulcrum.toml" >"$WORK/lb.out" 2>"$WORK/lb.log" &
LB_PID=$!; PIDS+=("$LB_PID")
LB=$(wait_line "$WORK/lb.out" 'listener public on http://[0-9.:]*' | sed 's|.*http://||') || fail "fulcrum did not start"
ADMIN=$(wait_line "$WORK/lb.out" 'admin on http://[0-9.:]*' | sed 's|.*http://||') || fail "fulcrum admin did not start"

for proto in h2c h1; do
  flag=""; [ "$proto" = h1 ] && flag="--h1"
  h2load $flag -n 10000 -c 4 -m 4 "http://$LB/" >"$WORK/h2load-$proto.log" 2>&1 &
  LOAD=$!; PIDS+=("$LOAD")
  for i in $(seq 1 20); do
    version "$i" >"$WORK/fulcrum.toml"
    code=$(curl -sS -o "$WORK/reload.json" -w '%{http_code}' -X POST "http://$ADMIN/reload") || fail "reload $i"
    [ "$code" = 200 ] || fail "reload $i answered $code: $(cat "$WORK/reload.json")"
    sleep 0.05
  done
  wait "$LOAD" || fail "h2load $proto exited with an error: $(tail -5 "$WORK/h2load-$proto.log")"
  grep -q '10000 succeeded, 0 failed, 0 errored' "$WORK/h2load-$proto.log" \
    || fail "h2load $proto during reloads: $(grep -E 'requests:|status codes' "$WORK/h2load-$proto.log")"
  pass "h2load $proto: 10000 requests through 20 reloads, 0 failed"
done
gen=$(curl -sS "http://$ADMIN/config" | grep -o '"generation": [0-9]*' | grep -o '[0-9]*$')
[ "$gen" = 41 ] || fail "generation $gen after 40 reloads"

# A bad config is refused with its diagnostics; the old one keeps serving.
version 0 | sed "s/^workers = 2$/workers = 0/" >"$WORK/fulcrum.toml"
code=$(curl -sS -o "$WORK/refused.json" -w '%{http_code}' -X POST "http://$ADMIN/reload")
[ "$code" = 400 ] || fail "a bad config answered $code"
grep -q 'runtime.workers' "$WORK/refused.json" || fail "the refusal does not name the field: $(cat "$WORK/refused.json")"
curl -sS --fail "http://$LB/" >/dev/null || fail "serving after a refused reload"
pass "a bad config is refused (400, names runtime.workers); the old one serves"

# SIGTERM: /ready fails at once, and for shutdown_delay new connections are
# still served (a load balancer in front has not noticed yet).
kill -TERM "$LB_PID"
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/ready")" = 503 ] && break
  sleep 0.05
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/ready")" = 503 ] || fail "/ready did not turn 503 after SIGTERM"
h2load -n 4000 -c 4 -m 4 "http://$LB/" >"$WORK/h2load-term.log" 2>&1 || true
grep -q '4000 succeeded, 0 failed, 0 errored' "$WORK/h2load-term.log" \
  || fail "h2load during shutdown_delay: $(grep -E 'requests:' "$WORK/h2load-term.log")"
wait "$LB_PID" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "fulcrum exited with $rc after SIGTERM"
pass "SIGTERM: /ready 503 at once, 4000 requests on new connections during shutdown_delay, exit 0"
