//! Errors users can act on: 404/502/503/504 with a reason header, and malformed
//! requests that get a 4xx without harming other connections.

mod support;

use std::io::{Read, Write};

use support::*;

fn config(cluster_extra: &str, endpoint: &str) -> String {
    app_config(
        1,
        "",
        &format!("{cluster_extra}\nendpoints = [{{ address = \"{endpoint}\" }}]"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_refused_is_502_with_reason() {
    let closed = support::l4::closed_port();
    let proxy = Proxy::start(&config("", &closed.addr.to_string()));
    let r = get(&h1_client(), &proxy.url("public", "/")).await;
    assert_eq!(r.status.as_u16(), 502);
    assert_eq!(
        r.header("x-fulcrum-reason"),
        Some("upstream_connect_failure")
    );
    assert!(
        r.body.contains("could not connect to 127.0.0.1:"),
        "{}",
        r.body
    );
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_before_response_is_502_with_reason() {
    let b = Backend::start("reset", Behavior::Reset);
    let proxy = Proxy::start(&config("", &b.addr.to_string()));
    let r = get(&h1_client(), &proxy.url("public", "/")).await;
    assert_eq!(r.status.as_u16(), 502);
    assert_eq!(r.header("x-fulcrum-reason"), Some("upstream_reset"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_response_within_request_timeout_is_504() {
    let b = Backend::start("hole", Behavior::BlackHole);
    let proxy = Proxy::start(&config("request_timeout = \"300ms\"", &b.addr.to_string()));
    let r = get(&h1_client(), &proxy.url("public", "/")).await;
    assert_eq!(r.status.as_u16(), 504);
    assert_eq!(r.header("x-fulcrum-reason"), Some("upstream_timeout"));
    assert!(
        r.body.contains("did not respond within 300 ms"),
        "{}",
        r.body
    );
    let metrics = get(&h1_client(), &proxy.admin_url("/metrics")).await.body;
    assert!(
        metrics.contains(
            r#"fulcrum_upstream_errors_total{cluster="app",reason="upstream_timeout"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_request_gets_400_and_other_connections_carry_on() {
    let b = Backend::start("ok", Behavior::Echo);
    let proxy = Proxy::start(&config("", &b.addr.to_string()));
    let client = h1_client();
    // A healthy keep-alive connection before, during and after the bad one.
    assert_eq!(
        get(&client, &proxy.url("public", "/"))
            .await
            .status
            .as_u16(),
        200
    );
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n",
        b"\x16\x03\x01\x00\xff\x01\x00",
    ] {
        let mut s = std::net::TcpStream::connect(proxy.listener("public")).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(garbage).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
            "{reply}"
        );
        assert_eq!(
            get(&client, &proxy.url("public", "/"))
                .await
                .status
                .as_u16(),
            200
        );
    }
}
