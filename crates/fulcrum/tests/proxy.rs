//! The L7 data path end to end: real backends, the real binary, real clients.

mod support;

use http::Request;
use support::*;

const TWO_CLUSTERS: &str = r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[listeners.routes]]
host = "api.example.com"
path_prefix = "/v2"
cluster = "api-v2"
[[listeners.routes]]
host = "*.example.com"
cluster = "web"
[[listeners.routes]]
path_prefix = "/static"
cluster = "web"

[[clusters]]
name = "api-v2"
endpoints = [{ address = "{b0}" }]

[[clusters]]
name = "web"
protocol = "http2"
endpoints = [{ address = "{b1}" }]
"#;

fn with_host_header(
    url: &str,
    host: &str,
) -> Request<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>> {
    Request::get(url)
        .header("host", host)
        .body(empty())
        .unwrap()
}

/// GET `path` naming `host` as the authority (`Host` on HTTP/1.1,
/// `:authority` on HTTP/2).
fn with_host(
    host: &str,
    path: &str,
) -> Request<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>> {
    Request::get(format!("http://{host}{path}"))
        .body(empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_and_path_prefix_over_h1_and_h2c() {
    let api = Backend::start("api", Behavior::Echo);
    let web = Backend::start("web", Behavior::Echo);
    let proxy = Proxy::start(&config_with(TWO_CLUSTERS, &[&api, &web]));
    let addr = proxy.listener("public");
    for client in [pinned_client(addr, false), pinned_client(addr, true)] {
        let r = send(&client, with_host("api.example.com", "/v2/users")).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "api"));
        let r = send(&client, with_host("api.example.com", "/v1/users")).await;
        assert_eq!(r.body, "web", "wildcard host route catches other paths");
        let r = send(&client, with_host("www.EXAMPLE.com:8080", "/")).await;
        assert_eq!(r.body, "web", "host match ignores case and port");
        let r = send(&client, with_host("other.org", "/static/app.js")).await;
        assert_eq!(r.body, "web");
        let r = send(&client, with_host("other.org", "/")).await;
        assert_eq!(r.status.as_u16(), 404);
        assert_eq!(r.header("x-fulcrum-reason"), Some("no_route"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_and_request_id_headers_reach_the_backend() {
    let api = Backend::start("api", Behavior::Echo);
    let web = Backend::start("web", Behavior::Echo);
    let proxy = Proxy::start(&config_with(TWO_CLUSTERS, &[&api, &web]));
    let client = h1_client();

    let req = Request::get(proxy.url("public", "/v2/x"))
        .header("host", "api.example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("x-request-id", "req-123")
        .body(empty())
        .unwrap();
    let r = send(&client, req).await;
    assert_eq!(
        r.header("x-request-id"),
        Some("req-123"),
        "client's request id is returned"
    );
    let seen = api.seen.lock().unwrap().last().cloned().unwrap();
    let h = |n: &str| {
        seen.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(h("x-request-id").as_deref(), Some("req-123"));
    assert_eq!(
        h("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(h("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(h("x-forwarded-host").as_deref(), Some("api.example.com"));
    assert_eq!(
        h("host").as_deref(),
        Some("api.example.com"),
        "the original Host is kept"
    );
    assert_eq!(
        h("x-hop"),
        None,
        "headers named in Connection are hop-by-hop"
    );

    // Without a request id, one is generated, sent upstream, and returned to the client.
    let r = send(
        &client,
        with_host_header(&proxy.url("public", "/v2/y"), "api.example.com"),
    )
    .await;
    let id = r
        .header("x-request-id")
        .expect("generated request id")
        .to_string();
    assert_eq!(id.len(), 36);
    let seen = api.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        seen.headers.get("x-request-id").unwrap().to_str().unwrap(),
        id
    );

    // HTTP/2 client to the HTTP/2 (h2c) cluster: :authority becomes Host upstream.
    let r = send(
        &pinned_client(proxy.listener("public"), true),
        with_host("www.example.com", "/"),
    )
    .await;
    assert_eq!(r.body, "web");
    let seen = web.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        seen.headers.get("x-forwarded-host").unwrap(),
        "www.example.com"
    );
}

const IDLE: &str = r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
[[listeners]]
name = "public"
address = "127.0.0.1:0"
idle_timeout = "300ms"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [{ address = "{b0}" }]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_but_busy_ones_are_not() {
    use std::io::{Read, Write};
    let backend = Backend::start("app", Behavior::Echo);
    let proxy = Proxy::start(&config_with(IDLE, &[&backend]));

    // A request that takes longer than the idle timeout still completes: idle means no request in flight.
    let r = get(&h1_client(), &proxy.url("public", "/delay/800")).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "app"));

    let addr = proxy.listener("public");
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut all = Vec::new();
        // The proxy answers, then closes the idle keep-alive connection: read_to_end sees EOF.
        s.read_to_end(&mut all)
            .expect("the idle connection is closed by the proxy");
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("app"), "{text}");
    })
    .await
    .unwrap();
}
