#!/usr/bin/env bash
# TLS interop: real clients against a fulcrum TLS listener, and fulcrum
# re-encrypting to a real OpenSSL server.
#   curl --http2 / --http1.1 with --resolve (SNI) and --cacert (verification)
#   openssl s_server -www as a TLS origin that requires a client certificate
#   openssl s_client -sess_out / -sess_in (session resumption, TLS 1.3 and 1.2)
#   openssl s_client -early_data (TLS 1.3 0-RTT: GET served early, POST 425)
#   h2load over TLS (ALPN h2), bounded by request count
# The origin is fulcrum's own demo (plain HTTP). Certificates are made here
# with openssl and deleted with the work directory. Everything is on
# loopback; every process started here is stopped by PID.
set -euo pipefail
BIN=${1:-target/release/fulcrum}
WORK=$(mktemp -d -t fulcrum-tls.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "interop-tls: FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f"; tail -n 30 "$f"; done >&2; exit 1; }
pass() { echo "interop-tls: ok: $*"; }
wait_line() { # file pattern
  for _ in $(seq 1 300); do grep -m1 -o "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
for tool in openssl curl h2load timeout; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install openssl curl nghttp2-client)"
done

# Two self-signed certificates: ECDSA P-256 for a.example.test, RSA 2048 for *.b.example.test.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=a.example.test" -addext "subjectAltName=DNS:a.example.test" \
  -keyout "$WORK/a.key" -out "$WORK/a.pem" >"$WORK/openssl-req.log" 2>&1 || fail "openssl req (a)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
  -subj "/CN=*.b.example.test" -addext "subjectAltName=DNS:*.b.example.test" \
  -keyout "$WORK/b.key" -out "$WORK/b.pem" >>"$WORK/openssl-req.log" 2>&1 || fail "openssl req (b)"

# The re-encryption origin's CA and leaf (for origin.example.test), and the
# client certificate fulcrum presents to it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=interop origin CA" -addext "basicConstraints=critical,CA:TRUE" \
  -keyout "$WORK/origin-ca.key" -out "$WORK/origin-ca.pem" >>"$WORK/openssl-req.log" 2>&1 || fail "openssl req (origin CA)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=origin.example.test" -keyout "$WORK/origin.key" -out "$WORK/origin.csr" >>"$WORK/openssl-req.log" 2>&1 || fail "openssl req (origin)"
printf 'subjectAltName=DNS:origin.example.test\nbasicConstraints=CA:FALSE\n' >"$WORK/origin.ext"
openssl x509 -req -in "$WORK/origin.csr" -CA "$WORK/origin-ca.pem" -CAkey "$WORK/origin-ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/origin.ext" -out "$WORK/origin.pem" >>"$WORK/openssl-req.log" 2>&1 || fail "openssl x509 (origin)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=fulcrum.example.test" -keyout "$WORK/fulcrum-client.key" -out "$WORK/fulcrum-client.pem" \
  >>"$WORK/openssl-req.log" 2>&1 || fail "openssl req (client)"
# OpenSSL's test server, TLS only, client certificate required; -www answers
# every request with a status page. It prints the port the kernel gave it.
openssl s_server -accept 127.0.0.1:0 -cert "$WORK/origin.pem" -key "$WORK/origin.key" \
  -Verify 1 -CAfile "$WORK/fulcrum-client.pem" -www </dev/null >"$WORK/s_server.out" 2>"$WORK/s_server.log" &
PIDS+=("$!")
OS_PORT=$(wait_line "$WORK/s_server.out" 'ACCEPT 127.0.0.1:[0-9]*' | sed 's/.*://') || fail "openssl s_server did not start"

"$BIN" demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1 >"$WORK/origin.out" 2>"$WORK/origin.log" &
PIDS+=("$!")
ORIGIN=$(wait_line "$WORK/origin.out" 'listener demo on http://[0-9.:]*' | sed 's|.*http://||') || fail "origin (fulcrum demo) did not start"

# The annotated example, with certificates where it expects them and the origin's address.
mkdir -p "$WORK/certs"
cp "$WORK/a.pem" "$WORK/certs/a.example.test.pem"; cp "$WORK/a.key" "$WORK/certs/a.example.test.key"
cp "$WORK/b.pem" "$WORK/certs/b.example.test.pem"; cp "$WORK/b.key" "$WORK/certs/b.example.test.key"
openssl rand -base64 48 >"$WORK/certs/tickets.keys"
cp "$WORK/origin-ca.pem" "$WORK/fulcrum-client.pem" "$WORK/fulcrum-client.key" "$WORK/certs/"
sed -e 's|^address = "127.0.0.1:9901"|address = "127.0.0.1:0"|' \
    -e 's|^address = "0.0.0.0:8443"|address = "127.0.0.1:0"|' \
    -e 's|^address = "0.0.0.0:8080"|address = "127.0.0.1:0"|' \
    -e "s|127.0.0.1:8080|$ORIGIN|" -e "s|127.0.0.1:9443|127.0.0.1:$OS_PORT|" examples/tls.toml >"$WORK/tls.toml"
"$BIN" check --config "$WORK/tls.toml" >"$WORK/check.log" 2>&1 || fail "fulcrum check on the TLS config"
"$BIN" run --config "$WORK/tls.toml" >"$WORK/lb.out" 2>"$WORK/lb.log" &
LB_PID=$!; PIDS+=("$LB_PID")
LB=$(wait_line "$WORK/lb.out" 'listener https on https://[0-9.:]*' | sed 's|.*https://||') || fail "fulcrum (TLS) did not start"
ADMIN=$(wait_line "$WORK/lb.out" 'admin on http://[0-9.:]*' | sed 's|.*http://||') || fail "fulcrum admin did not start"
PORT=${LB##*:}
PLAIN=$(wait_line "$WORK/lb.out" 'listener http on http://[0-9.:]*' | sed 's|.*http://||') || fail "the redirecting listener did not start"

for proto in http2 http1.1; do
  out=$(curl -sS --fail --$proto --cacert "$WORK/a.pem" --resolve "a.example.test:$PORT:127.0.0.1" \
    -w '\n%{http_version}' "https://a.example.test:$PORT/hello") || fail "curl --$proto https://a.example.test"
  want=$([ "$proto" = http2 ] && echo 2 || echo 1.1)
  [ "$(echo "$out" | tail -n1)" = "$want" ] || fail "curl --$proto negotiated HTTP/$(echo "$out" | tail -n1)"
  echo "$out" | head -n1 | grep -q 'hello from' || fail "curl --$proto: unexpected body: $out"
  pass "curl --$proto --resolve a.example.test: HTTP/$want, verified against a.pem"
done
curl -sS --fail --http2 --cacert "$WORK/b.pem" --resolve "x.b.example.test:$PORT:127.0.0.1" \
  -o /dev/null "https://x.b.example.test:$PORT/" || fail "curl https://x.b.example.test (RSA wildcard)"
if curl -sS --cacert "$WORK/a.pem" --resolve "x.b.example.test:$PORT:127.0.0.1" -o /dev/null \
  "https://x.b.example.test:$PORT/" 2>/dev/null; then
  fail "x.b.example.test verified against a.pem: wrong certificate served"
fi
pass "curl https://x.b.example.test: the RSA wildcard certificate, verified; a.pem does not verify it"

hdrs=$(curl -sS -o /dev/null -D - -H 'Host: a.example.test' "http://$PLAIN/x?y=1") || fail "curl http:// (redirect)"
echo "$hdrs" | grep -q '^HTTP/1.1 301' || fail "plain listener: no 301: $hdrs"
echo "$hdrs" | grep -qi '^location: https://a.example.test:8443/x?y=1' || fail "plain listener: wrong Location: $hdrs"
hdrs=$(curl -sS --http2 --cacert "$WORK/a.pem" --resolve "a.example.test:$PORT:127.0.0.1" -o /dev/null -D - "https://a.example.test:$PORT/") || fail "curl https (hsts)"
echo "$hdrs" | grep -qi '^strict-transport-security: max-age=31536000; includeSubDomains' || fail "no HSTS header: $hdrs"
pass "redirect: http:// -> 301 https://a.example.test:8443/x?y=1; HSTS on https responses"

# Re-encryption: the request goes on to openssl s_server over TLS, verified
# against origin-ca.pem as origin.example.test, with fulcrum's client certificate.
out=$(curl -sS --fail --http2 --cacert "$WORK/a.pem" --resolve "a.example.test:$PORT:127.0.0.1" \
  "https://a.example.test:$PORT/secure/x") || fail "curl https://a.example.test/secure/ (re-encrypted to s_server)"
echo "$out" | grep -q 'Ciphers supported in s_server binary' || fail "/secure/ did not reach openssl s_server: $out"
echo "$out" | grep -q 'no client certificate available' && fail "s_server saw no client certificate"
metrics=$(curl -sS --fail "http://$ADMIN/metrics")
echo "$metrics" | grep -q '^fulcrum_upstream_tls_handshakes_total{cluster="secure",version="TLSv1.3",kind="full"} [1-9]' \
  || fail "no upstream TLS handshake counted: $(echo "$metrics" | grep upstream_tls)"
pass "re-encryption: curl -> fulcrum -> openssl s_server (TLS 1.3, CA-verified, SNI origin.example.test, client certificate)"

for v in tls1_3 tls1_2; do
  # The sleep keeps stdin open so a TLS 1.3 ticket (sent after the handshake) arrives.
  (sleep 1) | timeout 10 openssl s_client -connect "$LB" -servername a.example.test -$v \
    -sess_out "$WORK/sess-$v" >"$WORK/s_client-$v-1.log" 2>&1 || true
  [ -s "$WORK/sess-$v" ] || fail "openssl s_client -$v: no session saved"
  (sleep 1) | timeout 10 openssl s_client -connect "$LB" -servername a.example.test -$v \
    -sess_in "$WORK/sess-$v" >"$WORK/s_client-$v-2.log" 2>&1 || true
  grep -q '^Reused, ' "$WORK/s_client-$v-2.log" || fail "openssl s_client -$v -sess_in: session not reused: $(grep -E '^(New|Reused)' "$WORK/s_client-$v-2.log")"
  pass "openssl s_client -$v -sess_out/-sess_in: $(grep -m1 '^Reused, ' "$WORK/s_client-$v-2.log")"
done

# A second instance with the same ticket-key file resumes the first one's sessions.
"$BIN" run --config "$WORK/tls.toml" >"$WORK/lb2.out" 2>"$WORK/lb2.log" &
LB2_PID=$!; PIDS+=("$LB2_PID")
LB2=$(wait_line "$WORK/lb2.out" 'listener https on https://[0-9.:]*' | sed 's|.*https://||') || fail "second fulcrum did not start"
for v in tls1_3 tls1_2; do
  (sleep 1) | timeout 10 openssl s_client -connect "$LB" -servername a.example.test -$v \
    -sess_out "$WORK/sess2-$v" >"$WORK/s_client2-$v-1.log" 2>&1 || true
  (sleep 1) | timeout 10 openssl s_client -connect "$LB2" -servername a.example.test -$v \
    -sess_in "$WORK/sess2-$v" >"$WORK/s_client2-$v-2.log" 2>&1 || true
  grep -q '^Reused, ' "$WORK/s_client2-$v-2.log" || fail "-$v: a session from instance 1 was not resumed by instance 2 (same session_ticket_keys)"
  pass "openssl s_client -$v: session from instance 1 resumed by instance 2 (shared session_ticket_keys)"
done

out=$(h2load -n 2000 -c 10 -m 10 "https://$LB/" 2>&1) || fail "h2load over TLS: $out"
echo "$out" | grep -q '2000 succeeded, 0 failed' || fail "h2load over TLS: $out"
echo "$out" | grep -q 'Application protocol: h2' || fail "h2load did not negotiate h2: $out"
pass "h2load over TLS (ALPN h2): 2000 requests, 0 failed"
out=$(h2load --h1 -n 1000 -c 10 "https://$LB/" 2>&1) || fail "h2load --h1 over TLS: $out"
echo "$out" | grep -q '1000 succeeded, 0 failed' || fail "h2load --h1 over TLS: $out"
pass "h2load --h1 over TLS (ALPN http/1.1): 1000 requests, 0 failed"

metrics=$(curl -sS --fail "http://$ADMIN/metrics")
resumed=$(echo "$metrics" | awk -F' ' '/^fulcrum_downstream_tls_handshakes_total\{.*kind="resumed"/ {s+=$2} END {print s+0}')
[ "$resumed" -ge 2 ] || fail "metrics count $resumed resumed handshakes, expected >= 2"
echo "$metrics" | grep -q '^fulcrum_tls_certificate_expiry_timestamp_seconds{listener="https",certificate=".*a.example.test.pem"} [0-9]' \
  || fail "no certificate expiry gauge for a.example.test.pem"
pass "metrics: $resumed resumed handshakes, certificate expiry exported"

# 0-RTT: a listener with early_data = true; s_client resumes and sends its
# request as early data (-early_data). A GET is served before the handshake
# completes; a POST is answered 425 Too Early.
cat >"$WORK/early.toml" <<EOF
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
shutdown_delay = "0s"
[[listeners]]
name = "early"
address = "127.0.0.1:0"
[listeners.tls]
certificates = [{ cert = "$WORK/a.pem", key = "$WORK/a.key" }]
early_data = true
[[listeners.routes]]
cluster = "origin"
[[clusters]]
name = "origin"
endpoints = [{ address = "$ORIGIN" }]
EOF
"$BIN" run --config "$WORK/early.toml" >"$WORK/lb3.out" 2>"$WORK/lb3.log" &
LB3_PID=$!; PIDS+=("$LB3_PID")
LB3=$(wait_line "$WORK/lb3.out" 'listener early on https://[0-9.:]*' | sed 's|.*https://||') || fail "fulcrum (early_data) did not start"
ADMIN3=$(wait_line "$WORK/lb3.out" 'admin on http://[0-9.:]*' | sed 's|.*http://||') || fail "fulcrum (early_data) admin did not start"
for method in GET POST; do
  (sleep 1) | timeout 10 openssl s_client -connect "$LB3" -servername a.example.test -tls1_3 \
    -sess_out "$WORK/sess-early-$method" >"$WORK/s_client-early-$method-1.log" 2>&1 || true
  grep -q 'Max Early Data: 16384' "$WORK/s_client-early-$method-1.log" \
    || fail "the ticket allows no early data: $(grep -i 'early data' "$WORK/s_client-early-$method-1.log")"
  printf '%s /early HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$method" >"$WORK/early-$method.req"
  (sleep 1) | timeout 10 openssl s_client -connect "$LB3" -servername a.example.test -tls1_3 -ign_eof \
    -sess_in "$WORK/sess-early-$method" -early_data "$WORK/early-$method.req" >"$WORK/s_client-early-$method-2.log" 2>&1 || true
  grep -q 'Early data was accepted' "$WORK/s_client-early-$method-2.log" \
    || fail "$method: early data not accepted: $(grep -iE 'early data|Reused|New,' "$WORK/s_client-early-$method-2.log")"
done
grep -q '^HTTP/1.1 200' "$WORK/s_client-early-GET-2.log" || fail "GET in early data: no 200: $(grep '^HTTP' "$WORK/s_client-early-GET-2.log")"
grep -q '^HTTP/1.1 425' "$WORK/s_client-early-POST-2.log" || fail "POST in early data: no 425: $(grep '^HTTP' "$WORK/s_client-early-POST-2.log")"
metrics=$(curl -sS --fail "http://$ADMIN3/metrics")
echo "$metrics" | grep -q '^fulcrum_downstream_early_data_requests_total{listener="early",outcome="forwarded"} 1' \
  || fail "early GET not counted as forwarded: $(echo "$metrics" | grep early_data)"
pass "openssl s_client -early_data (0-RTT): GET answered 200 (forwarded with Early-Data: 1), POST 425 Too Early"
kill -TERM "$LB3_PID"
wait "$LB3_PID" || fail "early_data instance: exit status $? after SIGTERM"

kill -TERM "$LB2_PID"
wait "$LB2_PID" || fail "second instance: exit status $? after SIGTERM"
kill -TERM "$LB_PID"
wait "$LB_PID" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "fulcrum exited with $rc after SIGTERM"
pass "SIGTERM: clean exit 0"
echo "interop-tls: all passed"
