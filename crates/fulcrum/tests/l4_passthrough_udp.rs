//! TLS passthrough routed by SNI, and UDP sessions, through the real binary.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use support::Proxy;
use support::l4::*;

/// A TLS 1.3-style ClientHello record as RFC 8446 lays it out, with an SNI
/// extension when `sni` is given.
fn client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend([0x00, 0x02, 0x13, 0x01]); // one cipher suite
    body.extend([0x01, 0x00]); // null compression
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let n = name.as_bytes();
        let list = 3 + n.len();
        ext.extend([0x00, 0x00]);
        ext.extend(((list + 2) as u16).to_be_bytes());
        ext.extend((list as u16).to_be_bytes());
        ext.push(0); // host_name
        ext.extend((n.len() as u16).to_be_bytes());
        ext.extend(n);
    }
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut handshake = vec![0x01];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// Sends `hello` in two TCP segments (split inside the record), half-closes,
/// and returns the reply.
fn send_split(addr: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let cut = hello.len() / 2;
    // Refused connections may be closed under our feet: errors are fine here,
    // the reply (or its absence) is what the test checks.
    let _ = s.write_all(&hello[..cut]);
    std::thread::sleep(Duration::from_millis(30));
    let _ = s.write_all(&hello[cut..]);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut out);
    out
}

#[test]
fn tls_passthrough_routes_by_sni_and_forwards_the_hello_untouched() {
    let a = TcpBackend::start("a", TcpMode::Collect);
    let b = TcpBackend::start("b", TcpMode::Collect);
    let fallback = TcpBackend::start("fallback", TcpMode::Collect);
    let config = format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
[[listeners]]
name = "tls"
address = "127.0.0.1:0"
protocol = "tls_passthrough"
cluster = "fallback"
[[listeners.routes]]
host = "a.example.com"
cluster = "a"
[[listeners.routes]]
host = "*.example.org"
cluster = "b"
[[listeners]]
name = "strict"
address = "127.0.0.1:0"
protocol = "tls_passthrough"
[[listeners.routes]]
host = "a.example.com"
cluster = "a"
[[clusters]]
name = "a"
endpoints = [{{ address = "{}" }}]
[[clusters]]
name = "b"
endpoints = [{{ address = "{}" }}]
[[clusters]]
name = "fallback"
endpoints = [{{ address = "{}" }}]
"#,
        a.addr, b.addr, fallback.addr
    );
    let proxy = Proxy::start(&config);
    let tls = proxy.listener("tls");
    for (sni, want) in [
        (Some("a.example.com"), "a"),
        (Some("A.Example.COM"), "a"),
        (Some("www.example.org"), "b"),
        (Some("deep.www.example.org"), "b"),
        (Some("example.org"), "fallback"),
        (Some("other.net"), "fallback"),
        (None, "fallback"),
    ] {
        let hello = client_hello(sni);
        let reply = send_split(tls, &hello);
        let mut expected = format!("{want}:").into_bytes();
        expected.extend_from_slice(&hello);
        assert_eq!(
            reply, expected,
            "SNI {sni:?} must reach {want} byte for byte"
        );
    }
    // Without a default cluster an unknown name is refused, as is plain text.
    let strict = proxy.listener("strict");
    assert_eq!(
        send_split(strict, &client_hello(Some("a.example.com")))[..2],
        *b"a:"
    );
    assert!(send_split(strict, &client_hello(Some("b.example.com"))).is_empty());
    assert!(send_split(strict, b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n").is_empty());
    // An absurd record length is refused at once, not waited for.
    let mut s = TcpStream::connect(strict).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(closed_by_peer(&mut s));
    let refused = |reason: &str| {
        metric(
            proxy.admin,
            &format!(
                "fulcrum_downstream_connections_refused_total{{listener=\"strict\",reason=\"{reason}\"}}"
            ),
        )
    };
    wait_until("refusals counted", || {
        refused("no_route") == 1.0 && refused("not_tls") == 2.0
    });
}

fn udp_config(listener_extra: &str, cluster_extra: &str, endpoints: &[SocketAddr]) -> String {
    l4_config(
        "udp",
        "dns",
        "resolvers",
        listener_extra,
        cluster_extra,
        endpoints,
    )
}

#[test]
fn udp_sessions_stick_to_one_endpoint_and_replies_come_from_the_listener() {
    let backends: Vec<_> = (0..3)
        .map(|i| UdpBackend::start(&format!("u{i}")))
        .collect();
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let proxy = Proxy::start(&udp_config("", "policy = \"round_robin\"", &addrs));
    let lb = proxy.listener("dns");
    let mut used = HashSet::new();
    for client in 0..6 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (first, from) = udp_ask(&socket, lb, format!("q{client}").as_bytes()).unwrap();
        assert_eq!(
            from, lb,
            "the reply comes from the address the client sent to"
        );
        let name = first.split(':').next().unwrap().to_string();
        assert_eq!(first, format!("{name}:q{client}"));
        for n in 0..5 {
            let (again, _) = udp_ask(&socket, lb, format!("q{client}.{n}").as_bytes()).unwrap();
            assert!(
                again.starts_with(&format!("{name}:")),
                "a session stays on its endpoint"
            );
        }
        used.insert(name);
    }
    assert_eq!(
        used.len(),
        3,
        "sessions spread over the endpoints: {used:?}"
    );
    let admin = proxy.admin;
    assert_eq!(
        metric(admin, "fulcrum_udp_sessions_total{listener=\"dns\"}"),
        6.0
    );
    assert!(
        metric(
            admin,
            "fulcrum_downstream_received_bytes_total{listener=\"dns\"}"
        ) > 0.0
    );
}

#[test]
fn udp_sessions_are_capped_and_expire_when_idle() {
    let backend = UdpBackend::start("u0");
    let proxy = Proxy::start(&udp_config(
        "max_sessions = 2\nidle_timeout = \"1s\"",
        "",
        &[backend.addr],
    ));
    let lb = proxy.listener("dns");
    let one = UdpSocket::bind("127.0.0.1:0").unwrap();
    let two = UdpSocket::bind("127.0.0.1:0").unwrap();
    let three = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(udp_ask(&one, lb, b"1").is_some());
    assert!(udp_ask(&two, lb, b"2").is_some());
    three.send_to(b"3", lb).unwrap();
    let admin = proxy.admin;
    wait_until("the third session is refused", || {
        metric(
            admin,
            "fulcrum_udp_dropped_datagrams_total{listener=\"dns\",reason=\"max_sessions\"}",
        ) >= 1.0
    });
    // Idle sessions expire and free their slots.
    wait_until("sessions expire", || {
        metric(admin, "fulcrum_udp_active_sessions{listener=\"dns\"}") == 0.0
    });
    assert!(
        udp_ask(&three, lb, b"3").is_some(),
        "a freed slot takes a new session"
    );
}
