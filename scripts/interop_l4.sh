#!/usr/bin/env bash
# Real-client interop for the L4 listeners: fulcrum's tcp, tls_passthrough and
# udp listeners in front of real servers, driven by their own clients:
#   tcp              redis-server <- redis-benchmark, redis-cli
#   tcp              PostgreSQL   <- psql, pgbench
#   tls_passthrough  two openssl s_server (SNI routing) <- curl, openssl s_client
#   udp              dnsmasq      <- dig
# Everything runs on 127.0.0.1. Every process started here is stopped by PID
# (PostgreSQL by pg_ctl stop); every load run is bounded by count and timeout.
# Debian packages: redis-server redis-tools postgresql dnsmasq-base
# bind9-dnsutils openssl curl (.ci/run installs them).
set -euo pipefail
BIN=${1:-target/release/fulcrum}
PATH=$PATH:/usr/sbin:/sbin # dnsmasq lives in /usr/sbin
WORK=$(mktemp -d -t fulcrum-interop-l4.XXXXXX)
PGDIR="" # PostgreSQL's own temp dir (owned by the postgres user)
PG_CTL=""
PIDS=()

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  if [ -n "$PG_CTL" ]; then
    as_pg "$PG_CTL" stop -D "$PGDIR/data" -m fast -w -t 15 >/dev/null 2>&1 || {
      pid=$(head -n1 "$PGDIR/data/postmaster.pid" 2>/dev/null || true)
      [ -z "$pid" ] || kill -QUIT "$pid" 2>/dev/null || true
    }
  fi
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  rm -rf "$WORK"
  [ -z "$PGDIR" ] || rm -rf "$PGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "interop: FAIL: $*" >&2
  for f in "$WORK"/*.out "$WORK"/*.log ${PGDIR:+"$PGDIR"/*.log}; do
    [ -f "$f" ] || continue
    echo "--- $f"; tail -n 30 "$f"
  done >&2
  exit 1
}
pass() { echo "interop: ok: $*"; }

# Waits for a line in a file (fulcrum and s_server print their bound addresses).
wait_line() { # file pattern
  for _ in $(seq 1 300); do grep -m1 -o "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# Retries a command every 0.1 s while the server process is alive.
wait_ready() { # pid tries command...
  local pid=$1 n=$2; shift 2
  for _ in $(seq 1 "$n"); do
    kill -0 "$pid" 2>/dev/null || return 1
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
# A port for a server that cannot bind port 0: 20000-31999 (below Linux's
# default ephemeral range, so outgoing connections do not take it) and not
# bound by any TCP or UDP socket now. Servers are started one after the other,
# so a port picked later never equals one already in use.
pick_port() {
  local p hex
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    hex=$(printf ':%04X ' "$p")
    grep -qs "$hex" /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 || { echo "$p"; return 0; }
  done
  return 1
}
# Sum of the samples of a metric whose labels contain every given label="value".
metric() { # name label="value"...
  local name=$1; shift
  curl -sS --fail --max-time 5 "http://$ADMIN/metrics" | awk -v n="$name" -v want="$*" '
    index($0, n "{") == 1 {
      ok = 1; k = split(want, w, " ")
      for (i = 1; i <= k; i++) if (index($0, w[i]) == 0) ok = 0
      if (ok) s += $NF
    }
    END { printf "%d\n", s }'
}
# Polls a metric until it reaches min (counters of a flow may land when it closes).
wait_metric() { # min name label="value"...
  local min=$1 v=0; shift
  for _ in $(seq 1 50); do
    v=$(metric "$@") || v=0
    [ "$v" -ge "$min" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  echo "$v"; return 1
}
as_pg() { # runs a command as the postgres user (initdb refuses root)
  if [ "$(id -u)" = 0 ]; then (cd "$PGDIR" && runuser -u postgres -- "$@"); else (cd "$PGDIR" && "$@"); fi
}

for tool in redis-server redis-cli redis-benchmark dnsmasq dig openssl curl timeout; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install redis-server redis-tools postgresql dnsmasq-base bind9-dnsutils openssl curl)"
done
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1)
{ [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pgbench" ]; } \
  || fail "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || fail "no postgres user to run initdb as (apt-get install postgresql)"
fi

# --- Backends --------------------------------------------------------------

REDIS_PORT=$(pick_port) || fail "no free port for redis-server"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  </dev/null >"$WORK/redis.log" 2>&1 &
REDIS=$!; PIDS+=("$REDIS")
redis_ping() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping)" = PONG ]; }
wait_ready "$REDIS" 100 redis_ping "$REDIS_PORT" || fail "redis-server did not start on 127.0.0.1:$REDIS_PORT"

PGDIR=$(mktemp -d /tmp/fulcrum-interop-pg.XXXXXX) # /tmp: the postgres user can reach it
[ "$(id -u)" != 0 ] || chown postgres: "$PGDIR"
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
  >"$WORK/initdb.log" 2>&1 || fail "initdb"
PG_PORT=$(pick_port) || fail "no free port for PostgreSQL"
PG_CTL=$PGBIN/pg_ctl
as_pg "$PG_CTL" start -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PGDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  >"$WORK/pg_ctl.log" 2>&1 || fail "pg_ctl start (PostgreSQL on 127.0.0.1:$PG_PORT)"

for s in a b; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$s.example.test" -addext "subjectAltName=DNS:$s.example.test" \
    -keyout "$WORK/$s.key" -out "$WORK/$s.pem" >"$WORK/openssl-req.log" 2>&1 || fail "openssl req ($s)"
  openssl s_server -accept 127.0.0.1:0 -cert "$WORK/$s.pem" -key "$WORK/$s.key" -www \
    </dev/null >"$WORK/s_server-$s.out" 2>"$WORK/s_server-$s.log" &
  PIDS+=("$!")
done
TLS_A_PORT=$(wait_line "$WORK/s_server-a.out" 'ACCEPT 127.0.0.1:[0-9]*' | sed 's/.*://') || fail "s_server a did not start"
TLS_B_PORT=$(wait_line "$WORK/s_server-b.out" 'ACCEPT 127.0.0.1:[0-9]*' | sed 's/.*://') || fail "s_server b did not start"

DNS_PORT=$(pick_port) || fail "no free port for dnsmasq"
dnsmasq --no-daemon --conf-file=/dev/null --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --address=/fulcrum.test/192.0.2.53 --pid-file="$WORK/dnsmasq.pid" \
  --log-queries --log-facility=- </dev/null >"$WORK/dnsmasq.log" 2>&1 &
DNSMASQ=$!; PIDS+=("$DNSMASQ")
dns_ok() { [ "$(dig @127.0.0.1 -p "$1" fulcrum.test +short +time=1 +tries=1)" = 192.0.2.53 ]; }
wait_ready "$DNSMASQ" 100 dns_ok "$DNS_PORT" || fail "dnsmasq did not answer on 127.0.0.1:$DNS_PORT"
pass "backends up: redis-server :$REDIS_PORT, PostgreSQL :$PG_PORT, s_server a :$TLS_A_PORT b :$TLS_B_PORT, dnsmasq :$DNS_PORT"

# --- fulcrum ---------------------------------------------------------------

cat >"$WORK/fulcrum.toml" <<EOF
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
shutdown_delay = "0s"

[[listeners]]
name = "redis"
address = "127.0.0.1:0"
protocol = "tcp"
cluster = "redis"

[[listeners]]
name = "postgres"
address = "127.0.0.1:0"
protocol = "tcp"
cluster = "postgres"

# No default cluster: a ClientHello whose SNI matches no route is closed.
[[listeners]]
name = "tls"
address = "127.0.0.1:0"
protocol = "tls_passthrough"
[[listeners.routes]]
host = "a.example.test"
cluster = "tls-a"
[[listeners.routes]]
host = "b.example.test"
cluster = "tls-b"

# A default cluster and a wildcard route.
[[listeners]]
name = "tls-default"
address = "127.0.0.1:0"
protocol = "tls_passthrough"
cluster = "tls-a"
[[listeners.routes]]
host = "*.b.example.test"
cluster = "tls-b"

[[listeners]]
name = "dns"
address = "127.0.0.1:0"
protocol = "udp"
cluster = "dns"

[[clusters]]
name = "redis"
policy = "maglev"
endpoints = [{ address = "127.0.0.1:$REDIS_PORT" }]

[[clusters]]
name = "postgres"
policy = "least_request"
endpoints = [{ address = "127.0.0.1:$PG_PORT" }]

[[clusters]]
name = "tls-a"
endpoints = [{ address = "127.0.0.1:$TLS_A_PORT" }]

[[clusters]]
name = "tls-b"
endpoints = [{ address = "127.0.0.1:$TLS_B_PORT" }]

[[clusters]]
name = "dns"
endpoints = [{ address = "127.0.0.1:$DNS_PORT" }]
EOF
"$BIN" check --config "$WORK/fulcrum.toml" >"$WORK/check.log" 2>&1 || fail "fulcrum check rejected the L4 config"
"$BIN" run --config "$WORK/fulcrum.toml" >"$WORK/fulcrum.out" 2>"$WORK/fulcrum.log" &
FULCRUM=$!; PIDS+=("$FULCRUM")
lb() { wait_line "$WORK/fulcrum.out" "listener $1 on $2://[0-9.:]*" | sed 's|.*://||; s|.*:||'; }
LB_REDIS=$(lb redis tcp) || fail "fulcrum: no redis listener"
LB_PG=$(lb postgres tcp) || fail "fulcrum: no postgres listener"
LB_TLS=$(lb tls tcp) || fail "fulcrum: no tls listener"
LB_TLSD=$(lb tls-default tcp) || fail "fulcrum: no tls-default listener"
LB_DNS=$(lb dns udp) || fail "fulcrum: no dns listener"
ADMIN=$(wait_line "$WORK/fulcrum.out" 'admin on http://[0-9.:]*' | sed 's|.*http://||') || fail "fulcrum admin did not start"

# --- 1. Redis over the tcp listener -----------------------------------------

out=$(timeout 60 redis-benchmark -h 127.0.0.1 -p "$LB_REDIS" -n 20000 -c 20 -t set,get -q 2>&1) \
  || fail "redis-benchmark through fulcrum exited non-zero: $out"
rates=$(echo "$out" | tr '\r' '\n' | grep -E '^(SET|GET): [0-9.]+ requests per second' || true)
for t in SET GET; do
  echo "$rates" | awk -v t="$t:" '$1 == t && $2 > 0 { f = 1 } END { exit !f }' \
    || fail "redis-benchmark through fulcrum: no $t rate in: $out"
done
! echo "$out" | grep -qi 'error' || fail "redis-benchmark through fulcrum reported errors: $out"
pass "redis-benchmark -n 20000 -c 20 -t set,get: $(echo "$rates" | awk '{printf "%s %s rps  ", $1, $2}')"

val="fulcrum-$$-$RANDOM"
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$LB_REDIS" set fulcrum:k "$val" 2>&1) || fail "redis-cli set: $got"
[ "$got" = OK ] || fail "redis-cli set through fulcrum answered: $got"
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$LB_REDIS" get fulcrum:k 2>&1) || fail "redis-cli get: $got"
[ "$got" = "$val" ] || fail "redis-cli get through fulcrum answered '$got', want '$val'"
got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" get fulcrum:k 2>&1) || fail "redis-cli get (direct): $got"
[ "$got" = "$val" ] || fail "redis-server itself has '$got' for the key set through fulcrum, want '$val'"
pass "redis-cli set/get through fulcrum (and the value is in redis-server)"

flows=$(wait_metric 22 fulcrum_upstream_flows_total "cluster=\"redis\"" "endpoint=\"127.0.0.1:$REDIS_PORT\"") \
  || fail "metrics: fulcrum_upstream_flows_total for the redis endpoint is $flows, want >= 22"
rx=$(wait_metric 400000 fulcrum_downstream_received_bytes_total "listener=\"redis\"") \
  || fail "metrics: fulcrum_downstream_received_bytes_total{listener=redis} is $rx, want >= 400000 (40000 commands)"
pass "metrics: $flows flows to the redis endpoint, $rx bytes received on the redis listener"

# --- 2. PostgreSQL over the tcp listener ------------------------------------

export PGCONNECT_TIMEOUT=5 PGUSER=postgres PGDATABASE=postgres
psql_lb() { timeout 20 "$PGBIN/psql" -X -h 127.0.0.1 -p "$LB_PG" -Atc "$1" 2>&1; }
got=$(psql_lb 'select 1') || fail "psql select 1 through fulcrum: $got"
[ "$got" = 1 ] || fail "psql select 1 through fulcrum answered: $got"
got=$(psql_lb 'select inet_server_port()') || fail "psql through fulcrum: $got"
[ "$got" = "$PG_PORT" ] || fail "psql through fulcrum reached a server on port '$got', want $PG_PORT"
pass "psql -h 127.0.0.1 -p LB -c 'select 1' through fulcrum"

out=$(timeout 60 "$PGBIN/pgbench" -h 127.0.0.1 -p "$LB_PG" -i -q 2>&1) || fail "pgbench -i through fulcrum: $out"
out=$(timeout 60 "$PGBIN/pgbench" -h 127.0.0.1 -p "$LB_PG" -c 4 -j 2 -t 200 2>&1) || fail "pgbench through fulcrum: $out"
echo "$out" | grep -q 'number of transactions actually processed: 800/800' || fail "pgbench through fulcrum: $out"
if echo "$out" | grep -q 'number of failed transactions'; then
  echo "$out" | grep -q 'number of failed transactions: 0 ' || fail "pgbench through fulcrum: $out"
fi
tps=$(echo "$out" | awk '/^tps = / { print $3; exit }')
pass "pgbench -i, then -c 4 -j 2 -t 200: 800/800 transactions, tps $tps"

# --- 3. TLS passthrough, routed by SNI --------------------------------------

for s in a b; do
  other=$([ "$s" = a ] && echo b || echo a)
  url="https://$s.example.test:$LB_TLS/"
  pin="$s.example.test:$LB_TLS:127.0.0.1"
  body=$(curl -sS --fail --max-time 10 --resolve "$pin" --cacert "$WORK/$s.pem" "$url" 2>&1) \
    || fail "curl $url with $s's certificate as CA: $body"
  echo "$body" | grep -q -- "-cert $WORK/$s.pem" || fail "curl $url: answered by the wrong s_server: $body"
  rc=0; err=$(curl -sS --max-time 10 --resolve "$pin" --cacert "$WORK/$other.pem" -o /dev/null "$url" 2>&1) || rc=$?
  [ "$rc" = 60 ] || fail "curl $url with $other's certificate as CA: exit $rc, want 60 (verification failure): $err"
done
pass "curl https://{a,b}.example.test through passthrough: each verifies only against its own server's certificate"

out=$(timeout 10 openssl s_client -connect "127.0.0.1:$LB_TLS" -servername b.example.test </dev/null 2>&1) || true
echo "$out" | grep -Eq '^subject=.*CN ?= ?b\.example\.test' || fail "openssl s_client -servername b.example.test: $out"
pass "openssl s_client -servername b.example.test: subject CN=b.example.test"

rc=0; err=$(curl -sS --max-time 10 -k --resolve "c.example.test:$LB_TLS:127.0.0.1" -o /dev/null "https://c.example.test:$LB_TLS/" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "curl with an SNI no route matches (c.example.test) succeeded; want the connection closed"
[ "$rc" != 28 ] || fail "curl with an SNI no route matches (c.example.test) timed out; want the connection closed: $err"
refused=$(wait_metric 1 fulcrum_downstream_connections_refused_total "listener=\"tls\"" 'reason="no_route"') \
  || fail "metrics: no fulcrum_downstream_connections_refused_total{listener=tls,reason=no_route} after an unrouted SNI"
pass "SNI c.example.test (no route, no default cluster): connection closed (curl exit $rc), refused no_route=$refused"

for sni_want in other.example.test:a x.b.example.test:b; do
  sni=${sni_want%:*} want=${sni_want#*:}
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$LB_TLSD" -servername "$sni" </dev/null 2>&1) || true
  echo "$out" | grep -Eq "^subject=.*CN ?= ?$want\\.example\\.test" || fail "s_client -servername $sni on tls-default, want server $want: $out"
done
pass "tls-default: unmatched SNI goes to the default cluster, *.b.example.test to b"

# --- 4. DNS over the udp listener -------------------------------------------

for i in $(seq 1 20); do
  got=$(dig @127.0.0.1 -p "$LB_DNS" fulcrum.test +short +time=2 +tries=2 2>&1) || fail "dig query $i through fulcrum: $got"
  [ "$got" = 192.0.2.53 ] || fail "dig query $i through fulcrum answered '$got', want 192.0.2.53"
done
answered=$(grep -c 'query\[A\] fulcrum.test' "$WORK/dnsmasq.log" || true)
[ "$answered" -ge 21 ] || fail "dnsmasq logged $answered queries, want >= 21 (1 direct + 20 through fulcrum)"
sessions=$(wait_metric 1 fulcrum_udp_sessions_total "listener=\"dns\"") \
  || fail "metrics: fulcrum_udp_sessions_total{listener=dns} is 0 after 20 queries"
pass "dig through the udp listener: 20/20 answered 192.0.2.53 by dnsmasq ($sessions udp sessions)"

# --- fulcrum stops cleanly ----------------------------------------------------

curl -sS --fail --max-time 5 "http://$ADMIN/clusters" >"$WORK/clusters.json" || fail "admin /clusters"
grep -q "127.0.0.1:$REDIS_PORT" "$WORK/clusters.json" || fail "/clusters does not list the redis endpoint"
kill -TERM "$FULCRUM"
for _ in $(seq 1 100); do kill -0 "$FULCRUM" 2>/dev/null || break; sleep 0.1; done
kill -0 "$FULCRUM" 2>/dev/null && fail "fulcrum still running 10 s after SIGTERM with no client flows open"
wait "$FULCRUM" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "fulcrum exited with $rc after SIGTERM"
pass "SIGTERM: clean exit 0"
echo "interop: L4 all passed"
