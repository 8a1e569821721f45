//! fulcrum's own HTTP/1.1 upstream client against a scripted origin that
//! speaks raw HTTP/1.1 on a real socket: keep-alive reuse, origins that close
//! idle connections, every response framing (length, chunked with trailers,
//! until close, none for HEAD), interim responses, invalid responses, and how
//! request bodies are framed on the way up.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::*;

/// An origin that reads each request raw and answers from a script keyed by
/// path. Records every request's bytes and counts connections.
struct RawOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawOrigin {
    fn start() -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                std::thread::spawn(move || serve(stream, r));
            }
        });
        RawOrigin {
            addr,
            connections,
            requests,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn last_request(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

/// Reads one request (head, then a body by content-length or chunked) as text.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if lower.contains("transfer-encoding: chunked") {
        while !body.ends_with(b"0\r\n\r\n") {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).ok()?;
            if line.is_empty() {
                return None;
            }
            body.extend_from_slice(&line);
        }
    }
    Some(head + &String::from_utf8_lossy(&body))
}

fn serve(stream: TcpStream, requests: Arc<Mutex<Vec<String>>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        requests.lock().unwrap().push(request.clone());
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let reply: Vec<u8> = match path.as_str() {
            // Answers, then closes without saying so: the pooled connection is dead.
            "/close-after" => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            "/chunked" => {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n\
                5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-checksum: 42\r\n\r\n"
                    .to_vec()
            }
            "/eof" => b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(),
            "/garbage" => b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(),
            "/continue" => {
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"
                    .to_vec()
            }
            "/head" => b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec(),
            "/raw" => {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                    request.len()
                )
                .into_bytes();
                r.extend_from_slice(request.as_bytes());
                r
            }
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        };
        if writer.write_all(&reply).is_err() {
            return;
        }
        if matches!(path.as_str(), "/close-after" | "/eof" | "/garbage") {
            return;
        }
    }
}

fn proxy_for(origin: &RawOrigin) -> Proxy {
    Proxy::start(&app_config(
        1,
        "",
        &format!("endpoints = [{{ address = \"{}\" }}]", origin.addr),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_reuses_one_upstream_connection() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    for client in [h1_client(), h2c_client(), fresh_client()] {
        for _ in 0..10 {
            let r = get(&client, &proxy.url("public", "/")).await;
            assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ok"));
        }
    }
    assert_eq!(
        origin.connections(),
        1,
        "30 sequential requests, one upstream connection"
    );
    let opened = proxy_metric(
        &proxy,
        "fulcrum_upstream_connections_total{cluster=\"app\"}",
    )
    .await;
    assert_eq!(opened, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_closing_idle_connections_costs_no_request() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    let client = h1_client();
    for i in 0..30 {
        let r = get(&client, &proxy.url("public", "/close-after")).await;
        assert_eq!(
            (r.status.as_u16(), r.body.as_str()),
            (200, "ok"),
            "request {i}"
        );
    }
    assert_eq!(origin.connections(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_responses_stream_with_their_trailers() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    let r = get(&h1_client(), &proxy.url("public", "/chunked")).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "hello, world"));
    // HTTP/2 always carries trailers.
    let req = Request::get(proxy.url("public", "/chunked"))
        .body(empty())
        .unwrap();
    let resp = h2c_client().request(req).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers forwarded");
    assert_eq!(trailers.get("x-checksum").unwrap(), "42");
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello, world"));
    // The connection went back to the pool after the last chunk.
    let r = get(&h1_client(), &proxy.url("public", "/")).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(origin.connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_delimited_by_close_is_forwarded_and_its_connection_dropped() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    for _ in 0..3 {
        let r = get(&h2c_client(), &proxy.url("public", "/eof")).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "until the end"));
    }
    assert_eq!(origin.connections(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn interim_responses_are_skipped_and_head_has_no_body() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    let client = h1_client();
    let r = get(&client, &proxy.url("public", "/continue")).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "done"));
    let head = Request::head(proxy.url("public", "/head"))
        .body(empty())
        .unwrap();
    let r = send(&client, head).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.body, "");
    // Both connections stay usable: nothing waits for a body that never comes.
    let r = get(&client, &proxy.url("public", "/")).await;
    assert_eq!(r.body, "ok");
    assert_eq!(origin.connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_response_is_502_upstream_protocol_error() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    let r = get(&h1_client(), &proxy.url("public", "/garbage")).await;
    assert_eq!(r.status.as_u16(), 502);
    assert_eq!(
        r.header("x-fulcrum-reason"),
        Some("upstream_protocol_error")
    );
    assert!(
        r.body.contains("sent an invalid HTTP response"),
        "{}",
        r.body
    );
    let errors = proxy_metric(
        &proxy,
        "fulcrum_upstream_errors_total{cluster=\"app\",reason=\"upstream_protocol_error\"}",
    )
    .await;
    assert_eq!(errors, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_are_framed_by_the_proxy() {
    let origin = RawOrigin::start();
    let proxy = proxy_for(&origin);
    let url = proxy.url("public", "/raw");
    // A known length stays a length, whatever the client claimed about framing.
    for client in [h1_client(), h2c_client()] {
        let req = Request::post(&url)
            .body(Full::new(Bytes::from_static(b"hello")).boxed())
            .unwrap();
        let r = send(&client, req).await;
        assert!(r.body.contains("content-length: 5\r\n"), "{}", r.body);
        assert!(!r.body.contains("transfer-encoding"), "{}", r.body);
        assert!(r.body.ends_with("\r\n\r\nhello"), "{}", r.body);
    }
    // An unknown length (chunked HTTP/1.1 upload, HTTP/2 without content-length) goes up chunked.
    for client in [h1_client(), h2c_client()] {
        let req = Request::post(&url).body(upload_body(100_000)).unwrap();
        let r = send(&client, req).await;
        assert!(
            r.body.contains("transfer-encoding: chunked\r\n"),
            "{}",
            &r.body[..300]
        );
        assert!(r.body.ends_with("\r\n0\r\n\r\n"));
        let (_, body) = r.body.split_once("\r\n\r\n").unwrap();
        let payload = body.matches('x').count();
        assert_eq!(payload, 100_000);
    }
    // No body: no framing header on a GET, `content-length: 0` on a bodiless POST.
    let r = get(&h1_client(), &url).await;
    assert!(
        !r.body.to_ascii_lowercase().contains("content-length"),
        "{}",
        r.body
    );
    let r = send(&h1_client(), Request::post(&url).body(empty()).unwrap()).await;
    assert!(r.body.contains("content-length: 0\r\n"), "{}", r.body);
    assert!(origin.last_request().starts_with("POST /raw HTTP/1.1\r\n"));
}
