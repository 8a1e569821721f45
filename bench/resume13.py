#!/usr/bin/env python3
"""resume13.py -- TLS 1.3 resumed handshakes in a loop, for bench/tls.py.

    python3 bench/resume13.py HOST PORT SECONDS

`openssl s_time -reuse` cannot resume TLS 1.3 (it never reads the ticket,
which arrives after the handshake), so this client does what a browser does:
one full handshake whose ticket it reads, then, for SECONDS, connections that
each resume that session (PSK + ECDHE, no certificate) and close. Server-side
CPU per resumed handshake is what tls.py compares; this client's own speed
only sets the rate. Prints s_time's summary line so tls.py parses both alike,
and exits 1 if a connection did not resume.
"""

import socket
import ssl
import sys
import time


def main():
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the bench's self-signed certificate
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection((host, port)) as raw, ctx.wrap_socket(raw) as tls:
        # A request and its answer: the tickets arrive with it and are read.
        tls.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        while tls.recv(65536):
            pass
        session = tls.session
    if session is None or not session.has_ticket:
        print("no TLS 1.3 ticket received", file=sys.stderr)
        return 1
    count, not_resumed = 0, 0
    deadline = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        with socket.create_connection((host, port)) as raw:
            with ctx.wrap_socket(raw, session=session) as tls:
                if not tls.session_reused:
                    not_resumed += 1
        count += 1
    elapsed = time.monotonic() - start
    print(f"{count} connections in {max(int(round(elapsed)), 1)} real seconds, resumed: {count - not_resumed}")
    if not_resumed:
        print(f"{not_resumed} of {count} connections were not resumed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
