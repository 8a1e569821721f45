//! TCP listeners through the real binary: forwarding with half-close,
//! balancing, connect retry, caps, idle timeout, PROXY protocol both ways,
//! 5-tuple hashing agreeing across instances, and draining.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use fulcrum_wire::proxy_protocol;
use support::Proxy;
use support::l4::*;

fn tcp_config(listener_extra: &str, cluster_extra: &str, endpoints: &[SocketAddr]) -> String {
    l4_config(
        "tcp",
        "tcp",
        "backends",
        listener_extra,
        cluster_extra,
        endpoints,
    )
}

#[test]
fn forwards_both_ways_and_carries_the_reply_after_the_clients_fin() {
    let b = TcpBackend::start("b0", TcpMode::Collect);
    let proxy = Proxy::start(&tcp_config("", "", &[b.addr]));
    let reply = tcp_exchange(proxy.listener("tcp"), b"ping over tcp");
    assert_eq!(reply, b"b0:ping over tcp");
    // Several MiB one way, checked byte for byte at the backend.
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let reply = tcp_exchange(proxy.listener("tcp"), &big);
    assert_eq!(reply.len(), 3 + big.len());
    assert_eq!(&reply[3..], &big[..]);
    let admin = proxy.admin;
    wait_until("bytes counted", || {
        metric(
            admin,
            "fulcrum_downstream_received_bytes_total{listener=\"tcp\"}",
        ) >= (13 + big.len()) as f64
    });
    assert!(
        metric(
            admin,
            "fulcrum_downstream_sent_bytes_total{listener=\"tcp\"}"
        ) >= (16 + big.len()) as f64
    );
    let ep = format!("{{cluster=\"backends\",endpoint=\"{}\"}}", b.addr);
    assert_eq!(
        metric(admin, &format!("fulcrum_upstream_flows_total{ep}")),
        2.0
    );
    assert!(
        metric(
            admin,
            &format!("fulcrum_upstream_connect_duration_seconds_count{ep}")
        ) >= 2.0
    );
}

#[test]
fn echo_streams_in_both_directions_at_once() {
    let b = TcpBackend::start("echo", TcpMode::Echo);
    let proxy = Proxy::start(&tcp_config("", "", &[b.addr]));
    let mut s = TcpStream::connect(proxy.listener("tcp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(read_line(&mut s), "echo");
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut writer = s.try_clone().unwrap();
    let sent = payload.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    w.join().unwrap();
    assert_eq!(back, payload);
}

#[test]
fn round_robin_spreads_connections_and_least_request_counts_flows() {
    let b: Vec<_> = (0..3)
        .map(|i| TcpBackend::start(&format!("b{i}"), TcpMode::Collect))
        .collect();
    let addrs: Vec<_> = b.iter().map(|b| b.addr).collect();
    let proxy = Proxy::start(&tcp_config("", "policy = \"round_robin\"", &addrs));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let reply = String::from_utf8(tcp_exchange(proxy.listener("tcp"), b"x")).unwrap();
        let name = reply.split(':').next().unwrap().to_string();
        *seen.entry(name).or_default() += 1;
    }
    // Round robin is exact across workers (one shared sequence).
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n == 10), "{seen:?}");
}

#[test]
fn a_refused_connect_moves_on_to_the_next_endpoint() {
    let live = TcpBackend::start("live", TcpMode::Collect);
    let dead = closed_port();
    let proxy = Proxy::start(&tcp_config(
        "",
        "policy = \"round_robin\"\nconnect_attempts = 2",
        &[dead.addr, live.addr],
    ));
    for _ in 0..10 {
        assert_eq!(tcp_exchange(proxy.listener("tcp"), b"hi"), b"live:hi");
    }
    let failures = metric(
        proxy.admin,
        &format!(
            "fulcrum_upstream_connect_failures_total{{cluster=\"backends\",endpoint=\"{}\"}}",
            dead.addr
        ),
    );
    assert_eq!(
        failures, 5.0,
        "round robin tried the dead endpoint first every other time"
    );
}

#[test]
fn all_connects_failing_closes_the_client_and_counts_it() {
    let (a, b) = (closed_port(), closed_port());
    let proxy = Proxy::start(&tcp_config("", "connect_attempts = 3", &[a.addr, b.addr]));
    let mut s = TcpStream::connect(proxy.listener("tcp")).unwrap();
    assert!(closed_by_peer(&mut s));
    wait_until("refusal counted", || {
        metric(
            proxy.admin,
            "fulcrum_downstream_connections_refused_total{listener=\"tcp\",reason=\"upstream_connect_failure\"}",
        ) == 1.0
    });
}

#[test]
fn listener_and_cluster_caps_refuse_cleanly_and_free_slots_on_close() {
    let b = TcpBackend::start("echo", TcpMode::Echo);
    let config = format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
[[listeners]]
name = "capped"
address = "127.0.0.1:0"
protocol = "tcp"
cluster = "a"
max_connections = 2
[[listeners]]
name = "open"
address = "127.0.0.1:0"
protocol = "tcp"
cluster = "b"
[[clusters]]
name = "a"
endpoints = [{{ address = "{0}" }}]
[[clusters]]
name = "b"
max_connections = 1
endpoints = [{{ address = "{0}" }}]
"#,
        b.addr
    );
    let proxy = Proxy::start(&config);
    let open = |name: &str| {
        let s = TcpStream::connect(proxy.listener(name)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let mut first = open("capped");
    let mut second = open("capped");
    assert_eq!(read_line(&mut first), "echo");
    assert_eq!(read_line(&mut second), "echo");
    let mut third = open("capped");
    assert!(
        closed_by_peer(&mut third),
        "past max_connections the connection is closed"
    );
    drop(first);
    wait_until("a slot frees when a flow ends", || {
        let mut again = open("capped");
        read_line(&mut again) == "echo"
    });
    let mut c1 = open("open");
    assert_eq!(read_line(&mut c1), "echo");
    let mut c2 = open("open");
    assert!(
        closed_by_peer(&mut c2),
        "past the cluster's max_connections the flow is refused"
    );
    let refused = |reason: &str| {
        metric(
            proxy.admin,
            &format!(
                "fulcrum_downstream_connections_refused_total{{listener=\"{}\",reason=\"{reason}\"}}",
                if reason == "max_connections" {
                    "capped"
                } else {
                    "open"
                }
            ),
        )
    };
    assert!(refused("max_connections") >= 1.0);
    assert_eq!(refused("cluster_max_connections"), 1.0);
    drop(second);
}

#[test]
fn an_idle_flow_is_closed() {
    let b = TcpBackend::start("echo", TcpMode::Echo);
    let proxy = Proxy::start(&tcp_config("idle_timeout = \"300ms\"", "", &[b.addr]));
    let mut s = TcpStream::connect(proxy.listener("tcp")).unwrap();
    assert_eq!(read_line(&mut s), "echo");
    // Nothing more is sent either way: fulcrum closes the flow.
    assert!(closed_by_peer(&mut s));
}

#[test]
fn proxy_protocol_v1_and_v2_tell_the_backend_the_real_client() {
    for version in ["v1", "v2"] {
        let b = TcpBackend::start("pp", TcpMode::Collect);
        let proxy = Proxy::start(&tcp_config(
            "",
            &format!("proxy_protocol = \"{version}\""),
            &[b.addr],
        ));
        let lb = proxy.listener("tcp");
        let mut s = TcpStream::connect(lb).unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(b"payload").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        let got = b.received.lock().unwrap()[0].clone();
        let (header, consumed) = proxy_protocol::parse(&got).unwrap().unwrap();
        assert_eq!(header.addresses, Some((me, lb)), "{version}");
        assert_eq!(&got[consumed..], b"payload", "{version}");
        if version == "v1" {
            let line = format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
                me.port(),
                lb.port()
            );
            assert!(got.starts_with(line.as_bytes()));
        }
    }
}

#[test]
fn proxy_protocol_is_accepted_only_from_trusted_networks() {
    let b = TcpBackend::start("pp", TcpMode::Collect);
    let trusted = Proxy::start(&tcp_config(
        "accept_proxy_protocol_from = [\"127.0.0.0/8\"]",
        "proxy_protocol = \"v1\"",
        &[b.addr],
    ));
    // A trusted L4 tier says the client is 203.0.113.9: the backend hears the same.
    let client: SocketAddr = "203.0.113.9:41000".parse().unwrap();
    let vip: SocketAddr = "198.51.100.1:5432".parse().unwrap();
    let mut msg = proxy_protocol::encode_v2(client, vip, proxy_protocol::Transport::Stream);
    msg.extend_from_slice(b"hello");
    let reply = tcp_exchange(trusted.listener("tcp"), &msg);
    assert_eq!(
        reply,
        b"pp:PROXY TCP4 203.0.113.9 198.51.100.1 41000 5432\r\nhello"
    );
    // No header, or a broken one, from a trusted peer: closed, nothing forwarded.
    let mut s = TcpStream::connect(trusted.listener("tcp")).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(closed_by_peer(&mut s));
    wait_until("bad header counted", || {
        metric(
            trusted.admin,
            "fulcrum_downstream_connections_refused_total{listener=\"tcp\",reason=\"bad_proxy_header\"}",
        ) == 1.0
    });
    // A peer outside the trusted networks is refused even with a valid header.
    let untrusted = Proxy::start(&tcp_config(
        "accept_proxy_protocol_from = [\"10.0.0.0/8\"]",
        "",
        &[b.addr],
    ));
    let mut s = TcpStream::connect(untrusted.listener("tcp")).unwrap();
    let _ = s.write_all(&msg);
    assert!(closed_by_peer(&mut s));
    wait_until("untrusted counted", || {
        metric(
            untrusted.admin,
            "fulcrum_downstream_connections_refused_total{listener=\"tcp\",reason=\"untrusted_source\"}",
        ) == 1.0
    });
    assert_eq!(
        b.received.lock().unwrap().len(),
        1,
        "nothing else reached the backend"
    );
}

#[test]
fn independent_instances_send_each_flow_to_the_same_endpoint() {
    // Two fulcrum processes, as behind one anycast VIP: the L4 tier in front
    // tells each the flow's real 5-tuple with a PROXY header.
    let b: Vec<_> = (0..4)
        .map(|i| TcpBackend::start(&format!("b{i}"), TcpMode::Collect))
        .collect();
    let addrs: Vec<_> = b.iter().map(|b| b.addr).collect();
    for policy in ["maglev", "ring_hash", "rendezvous"] {
        let config = tcp_config(
            "accept_proxy_protocol_from = [\"127.0.0.1/32\"]",
            &format!("policy = \"{policy}\""),
            &addrs,
        );
        let one = Proxy::start(&config);
        let two = Proxy::start(&config);
        let vip: SocketAddr = "198.51.100.1:443".parse().unwrap();
        let mut spread: HashMap<String, usize> = HashMap::new();
        for port in 0..60u16 {
            let client = SocketAddr::from(([192, 0, 2, (port % 7) as u8 + 1], 30_000 + port));
            let mut msg = proxy_protocol::encode_v1(client, vip);
            msg.extend_from_slice(b"x");
            let a = tcp_exchange(one.listener("tcp"), &msg);
            let z = tcp_exchange(two.listener("tcp"), &msg);
            assert_eq!(a, z, "{policy}: flow {client} went to different endpoints");
            // The same flow again on the same instance: the same endpoint.
            assert_eq!(tcp_exchange(one.listener("tcp"), &msg), a, "{policy}");
            *spread
                .entry(String::from_utf8_lossy(&a).into_owned())
                .or_default() += 1;
        }
        assert!(
            spread.len() >= 3,
            "{policy}: flows should spread, got {spread:?}"
        );
    }
}

#[test]
fn sigterm_stops_accepting_and_lets_open_flows_finish() {
    let b = TcpBackend::start("echo", TcpMode::Echo);
    let mut proxy = Proxy::start(&tcp_config("", "", &[b.addr]).replace(
        "workers = 2",
        "workers = 2\ndrain_timeout = \"30s\"\nshutdown_delay = \"0s\"",
    ));
    let lb = proxy.listener("tcp");
    let mut s = TcpStream::connect(lb).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(read_line(&mut s), "echo");
    proxy.terminate();
    wait_until("the listener stops accepting", || {
        TcpStream::connect(lb).is_err()
    });
    // The open flow still works both ways during the drain.
    s.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(proxy.wait().success(), "exit 0 once the last flow ended");
}

#[test]
fn an_http_listener_behind_an_l4_tier_sees_the_real_client() {
    // The two-tier design: an L4 tier in front sends PROXY v2; the HTTP tier
    // uses the client it names for X-Forwarded-For (and source_ip hashing).
    let web = support::Backend::start("web", support::Behavior::Echo);
    let config = support::app_config(1, "", &support::endpoints_line(&[&web])).replace(
        "address = \"127.0.0.1:0\"\n[[listeners.routes]]",
        "address = \"127.0.0.1:0\"\naccept_proxy_protocol_from = [\"127.0.0.1\"]\n[[listeners.routes]]",
    );
    let proxy = Proxy::start(&config);
    let client: SocketAddr = "203.0.113.77:50000".parse().unwrap();
    let vip: SocketAddr = "198.51.100.1:80".parse().unwrap();
    let mut msg = proxy_protocol::encode_v2(client, vip, proxy_protocol::Transport::Stream);
    msg.extend_from_slice(b"GET /hi HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
    // No half-close here: an HTTP server may take the client's FIN as an abort.
    let ask = |bytes: &[u8]| {
        let mut s = TcpStream::connect(proxy.listener("public")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };
    let reply = String::from_utf8(ask(&msg)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let seen = web.seen.lock().unwrap();
    let xff = seen[0].headers.get("x-forwarded-for").unwrap();
    assert_eq!(xff, "203.0.113.77");
    drop(seen);
    // Without a header the connection is refused: a client cannot pose as the L4 tier.
    let reply = ask(b"GET /hi HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
    assert!(reply.is_empty());
    assert_eq!(web.hits(), 1);
}
