//! Resource bounds under attack (docs/limits.md): raw-socket clients send
//! what no well-behaved client would (oversized heads, too many fields or
//! streams, rapid reset, CONTINUATION, PING and SETTINGS floods, an HPACK
//! bomb, heads and bodies trickled byte by byte). Each test checks that the
//! attack is cut off, that the origin never saw it, that fulcrum's memory
//! stays bounded, and that an ordinary client is served meanwhile.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::raw::*;
use support::*;

struct Edge {
    origin: RecordingOrigin,
    proxy: Proxy,
}

/// One listener with small limits so each is cheap to reach.
fn edge() -> Edge {
    let origin = RecordingOrigin::start();
    let config = format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
[[listeners]]
name = "public"
address = "127.0.0.1:0"
request_header_timeout = "1s"
request_body_timeout = "1s"
max_request_header_size = 8192
max_request_headers = 20
http2_max_concurrent_streams = 8
[[listeners.routes]]
cluster = "origin"
[[clusters]]
name = "origin"
endpoints = [{{ address = "{}" }}]
"#,
        origin.addr
    );
    let proxy = Proxy::start(&config);
    Edge { origin, proxy }
}

impl Edge {
    fn addr(&self) -> SocketAddr {
        self.proxy.listener("public")
    }

    /// An ordinary request on a fresh connection still works.
    fn still_serves(&self) {
        let reply = h1_exchange(
            self.addr(),
            b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        assert_eq!(reply.statuses(), vec![200], "{}", reply.text());
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proxy.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// One series from `/metrics` (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        let url = self.proxy.admin_url("/metrics");
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/metrics");
        let reply = h1_exchange(
            addr.parse().unwrap(),
            b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        reply
            .text()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    fn attack_targets(&self) -> usize {
        self.origin
            .targets()
            .iter()
            .filter(|t| t.starts_with("/attack"))
            .count()
    }
}

/// What a large attack may add to fulcrum's resident memory: far below
/// what the attack would cost if it were buffered (tens of MiB).
const MEMORY_BOUND_KIB: u64 = 16 * 1024;

fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "http".into()),
        (":authority", "a".into()),
        (":path", path.into()),
    ]
}

fn fields<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

// ---- HTTP/1.1 ----

#[test]
fn h1_head_over_the_size_limit_is_431_and_never_forwarded() {
    let e = edge();
    let big = "x".repeat(9000);
    let reply = h1_exchange(
        e.addr(),
        format!("GET /attack HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(reply.statuses(), vec![431], "{}", reply.text());
    assert_eq!(e.attack_targets(), 0);
    e.still_serves();
}

#[test]
fn h1_too_many_fields_is_431_and_never_forwarded() {
    let e = edge();
    let many: String = (0..30).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    let reply = h1_exchange(
        e.addr(),
        format!("GET /attack HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(reply.statuses(), vec![431], "{}", reply.text());
    assert_eq!(e.attack_targets(), 0);
    // At the limit is fine: Host, Connection and 18 more.
    let ok: String = (0..18).map(|i| format!("X-F{i}: {i}\r\n")).collect();
    let reply = h1_exchange(
        e.addr(),
        format!("GET /ok HTTP/1.1\r\nHost: a\r\n{ok}Connection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(reply.statuses(), vec![200], "{}", reply.text());
}

#[test]
fn h1_slow_head_is_cut_off_and_others_are_served_meanwhile() {
    let e = edge();
    let mut slow = TcpStream::connect(e.addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // One byte at a time, never finishing the head; a bounded loop.
    let mut cut_off = false;
    for b in b"GET /attack HTTP/1.1\r\nHost: a\r\nX-Slow: "
        .iter()
        .chain([b'x'; 200].iter())
    {
        if slow.write_all(&[*b]).is_err() {
            cut_off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if peer_closed(&mut slow) {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "a head trickled for 10 s outlived request_header_timeout (1 s)"
    );
    e.still_serves();
    assert_eq!(e.attack_targets(), 0);
}

/// Whether the peer has closed (EOF or reset), without blocking for long.
fn peer_closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let closed = match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => true, // a response (408) before the close
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn h1_slow_body_gets_408_and_the_connection_closes() {
    let e = edge();
    let mut slow = TcpStream::connect(e.addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"POST /attack-body HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nfirst")
        .unwrap();
    // Then nothing: the body stalls past request_body_timeout.
    let mut got = Vec::new();
    let _ = slow.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_body_timeout"), "{text}");
    e.still_serves();
}

// ---- HTTP/2 ----

#[test]
fn h2_header_list_over_the_size_limit_is_refused() {
    let e = edge();
    let mut c = H2Client::cleartext(e.addr());
    let mut f = get("/attack");
    f.push(("x-big", "y".repeat(9000)));
    c.headers(1, &fields(&f), true);
    let out = c.outcome(1);
    assert!(
        out.status == Some(431) || out.reset.is_some() || out.goaway.is_some(),
        "{out:?}"
    );
    assert_eq!(e.attack_targets(), 0);
    e.still_serves();
}

#[test]
fn h2_slow_body_gets_408_on_its_stream() {
    let e = edge();
    let mut c = H2Client::cleartext(e.addr());
    let mut f = get("/attack-body");
    f[0].1 = "POST".into();
    f.push(("content-length", "1000".into()));
    c.headers(1, &fields(&f), false);
    c.data(1, b"first", false);
    // Then nothing: the body stalls past request_body_timeout.
    let out = c.outcome(1);
    assert_eq!(out.status, Some(408), "{out:?}");
    let reason = out.headers.iter().find(|(n, _)| n == "x-fulcrum-reason");
    assert_eq!(
        reason.map(|(_, v)| v.as_str()),
        Some("request_body_timeout")
    );
    e.still_serves();
    assert_eq!(
        e.metric(
            "fulcrum_local_replies_total{listener=\"public\",reason=\"request_body_timeout\"}"
        ),
        1.0
    );
    // The client stalled, not the origin: no upstream error is counted.
    assert_eq!(
        e.metric(
            "fulcrum_upstream_errors_total{cluster=\"origin\",reason=\"request_body_timeout\"}"
        ),
        0.0
    );
}

#[test]
fn h2_too_many_fields_is_431() {
    let e = edge();
    let mut c = H2Client::cleartext(e.addr());
    let mut f = get("/attack");
    for i in 0..30 {
        f.push(("x-f", i.to_string()));
    }
    c.headers(1, &fields(&f), true);
    let out = c.outcome(1);
    assert_eq!(out.status, Some(431), "{out:?}");
    assert_eq!(e.attack_targets(), 0);
}

#[test]
fn h2_advertises_and_enforces_max_concurrent_streams() {
    let e = edge();
    let mut c = H2Client::cleartext(e.addr());
    let settings = c.server_settings();
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) and SETTINGS_MAX_HEADER_LIST_SIZE (0x6).
    assert!(settings.contains(&(0x3, 8)), "{settings:?}");
    assert!(settings.contains(&(0x6, 8192)), "{settings:?}");
    // Eight streams left open (bodies never finished), then a ninth.
    for i in 0..9u32 {
        let mut f = get("/attack-open");
        f[0].1 = "POST".into();
        c.headers(1 + 2 * i, &fields(&f), false);
    }
    let out = c.outcome(17);
    // RFC 9113 5.1.2: a stream over the limit is refused.
    assert!(
        out.reset == Some(REFUSED_STREAM) || out.reset == Some(PROTOCOL_ERROR),
        "{out:?}"
    );
}

#[test]
fn h2_rapid_reset_is_stopped_with_goaway() {
    let e = edge();
    let before = e.rss_kib();
    let mut c = H2Client::cleartext(e.addr());
    let attempts = 5000u32;
    for i in 0..attempts {
        let id = 1 + 2 * i;
        c.headers(id, &fields(&get(&format!("/attack/{i}"))), true);
        c.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
    }
    let goaway = c.until_goaway();
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM), "rapid reset not stopped");
    assert!(
        e.attack_targets() < attempts as usize / 10,
        "{} of {attempts} reset streams reached the origin",
        e.attack_targets()
    );
    assert!(e.rss_kib() < before + MEMORY_BOUND_KIB);
    e.still_serves();
}

#[test]
fn h2_continuation_flood_is_stopped() {
    let e = edge();
    let before = e.rss_kib();
    let mut c = H2Client::cleartext(e.addr());
    c.set_write_timeout(Duration::from_secs(2));
    let first = encode_block(&fields(&get("/attack")));
    c.frame(HEADERS, END_STREAM, 1, &first); // no END_HEADERS
    let piece = encode_block(&[("x-c", "1")]);
    for _ in 0..100_000 {
        if !c.try_frame(CONTINUATION, 0, 1, &piece) {
            break;
        }
    }
    let goaway = c.until_goaway();
    assert!(
        goaway.is_some() || c.closed(),
        "CONTINUATION flood not stopped"
    );
    assert_eq!(e.attack_targets(), 0);
    assert!(e.rss_kib() < before + MEMORY_BOUND_KIB);
    e.still_serves();
}

#[test]
fn h2_hpack_bomb_is_refused_without_decoding_it_all() {
    let e = edge();
    let before = e.rss_kib();
    let mut c = H2Client::cleartext(e.addr());
    // One 4000-byte value added to the dynamic table (RFC 7541 6.2.1), then
    // referenced 2000 times (one byte each): 8 MB decoded from 6 KB sent.
    let mut block = encode_block(&fields(&get("/attack")));
    block.push(0x40);
    encode_str(&mut block, b"x-bomb");
    encode_str(&mut block, "b".repeat(4000).as_bytes());
    block.extend(std::iter::repeat_n(0x80 | 62, 2000));
    c.frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
    let out = c.outcome(1);
    assert!(
        out.status == Some(431) || out.reset.is_some() || out.goaway.is_some(),
        "{out:?}"
    );
    assert_eq!(e.attack_targets(), 0);
    assert!(e.rss_kib() < before + MEMORY_BOUND_KIB);
    e.still_serves();
}

#[test]
fn h2_ping_and_settings_floods_stay_bounded() {
    let e = edge();
    let before = e.rss_kib();
    for kind in [PING, SETTINGS] {
        let mut c = H2Client::cleartext(e.addr());
        c.set_write_timeout(Duration::from_secs(2));
        // Never reading the answers: fulcrum must stop reading rather than
        // queue an answer per frame (CVE-2019-9512, -9515).
        let payload: &[u8] = if kind == PING { &[0u8; 8] } else { &[] };
        let mut sent = 0;
        for _ in 0..1_000_000 {
            if !c.try_frame(kind, 0, 0, payload) {
                break;
            }
            sent += 1;
        }
        assert!(sent > 0);
        assert!(
            e.rss_kib() < before + MEMORY_BOUND_KIB,
            "flood of frame type {kind}"
        );
        e.still_serves();
    }
}
