//! WebSockets through the real binary: a real client (tokio-tungstenite over
//! HTTP/1.1, and over HTTP/2 extended CONNECT through hyper's client) and a
//! real WebSocket origin. Echo, large messages, many sockets at once, close
//! from either side, an origin that refuses, the idle timeout, a drain.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, StatusCode, Version};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async, connect_async};

/// What the origin saw: each handshake's path and headers, and how many
/// sockets the client closed.
#[derive(Default)]
struct Origin {
    handshakes: Mutex<Vec<(String, HeaderMap)>>,
    closed_by_client: std::sync::atomic::AtomicUsize,
}

/// A WebSocket origin on loopback: echoes every data message; `close-me`
/// makes it close with 1000 "bye"; a handshake for `/refuse` is answered
/// 403 instead of 101.
async fn start_origin() -> (SocketAddr, Arc<Origin>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = Arc::new(Origin::default());
    let seen = origin.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let record = seen.clone();
                // tungstenite's callback type returns its ErrorResponse by value.
                #[allow(clippy::result_large_err)]
                let callback = move |req: &Request, resp: Response| {
                    record
                        .handshakes
                        .lock()
                        .unwrap()
                        .push((req.uri().path().to_string(), req.headers().clone()));
                    if req.uri().path() == "/refuse" {
                        let mut refusal = ErrorResponse::new(Some("no sockets here".into()));
                        *refusal.status_mut() = StatusCode::FORBIDDEN;
                        return Err(refusal);
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = accept_hdr_async(tcp, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Text(t) if t.as_str() == "close-me" => {
                            let _ = ws
                                .close(Some(CloseFrame {
                                    code: CloseCode::Normal,
                                    reason: "bye".into(),
                                }))
                                .await;
                        }
                        Message::Text(_) | Message::Binary(_) => {
                            let echoed = ws.send(msg).await;
                            if echoed.is_err() {
                                return;
                            }
                        }
                        Message::Close(_) => {
                            seen.closed_by_client
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, origin)
}

/// One listener; `/plain` goes to an ordinary HTTP backend, `/h2` to an
/// HTTP/2 cluster, everything else to the WebSocket origin.
fn config(origin: SocketAddr, plain: &Backend, listener_extra: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
drain_timeout = "20s"
shutdown_delay = "0s"
[[listeners]]
name = "public"
address = "127.0.0.1:0"
{listener_extra}
[[listeners.routes]]
path_prefix = "/plain"
cluster = "plain"
[[listeners.routes]]
path_prefix = "/h2"
cluster = "h2"
[[listeners.routes]]
cluster = "ws"
[[clusters]]
name = "ws"
endpoints = [{{ address = "{origin}" }}]
[[clusters]]
name = "plain"
endpoints = [{{ address = "{plain}" }}]
[[clusters]]
name = "h2"
protocol = "http2"
endpoints = [{{ address = "{plain}" }}]
"#,
        plain = plain.addr
    )
}

async fn open_h1(
    addr: SocketAddr,
    path: &str,
) -> WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (ws, resp) = connect_async(format!("ws://{addr}{path}"))
        .await
        .expect("WebSocket handshake through fulcrum");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(resp.headers().contains_key("x-request-id"));
    ws
}

/// A WebSocket over an HTTP/2 extended CONNECT stream (RFC 8441).
async fn open_h2(
    addr: SocketAddr,
    path: &str,
) -> WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // The client may only send :protocol once the server's SETTINGS have
    // enabled it; a hang guard, not a timing assertion.
    let mut resp = None;
    for _ in 0..100 {
        let mut req = http::Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri(format!("http://{addr}{path}"))
            .header("sec-websocket-version", "13")
            .body(Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        match sender.send_request(req).await {
            Ok(r) => {
                resp = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let resp = resp.expect("extended CONNECT accepted");
    assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
    assert!(!resp.headers().contains_key("sec-websocket-accept"));
    let upgraded = hyper::upgrade::on(resp).await.expect("h2 stream upgraded");
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
}

async fn echo<S>(ws: &mut WebSocketStream<S>, msg: Message)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(msg.clone()).await.unwrap();
    let back = ws.next().await.expect("an echo").unwrap();
    assert_eq!(back, msg);
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_websocket_echoes_text_and_large_binary_and_closes_from_both_sides() {
    let (origin_addr, origin) = start_origin().await;
    let plain = Backend::start("plain", Behavior::Echo);
    let proxy = Proxy::start(&config(origin_addr, &plain, ""));
    let addr = proxy.listener("public");

    let mut ws = open_h1(addr, "/chat?room=1").await;
    echo(&mut ws, Message::text("hello")).await;
    // 4 MiB in one message: many TCP segments and WebSocket frames' worth.
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    echo(&mut ws, Message::binary(big)).await;
    // The client closes: the origin sees the close frame, the client its echo.
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    eventually("origin saw the client's close", async || {
        origin
            .closed_by_client
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1
    })
    .await;

    // The origin closes: the client gets its close frame, code and reason.
    let mut ws = open_h1(addr, "/chat").await;
    ws.send(Message::text("close-me")).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected the origin's close frame, got {other:?}"),
    }
    // Reading on sends the client's half of the closing handshake.
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);

    // What the origin got: an RFC 6455 handshake with the path and query,
    // the client's key, and fulcrum's forwarding headers.
    let handshakes = origin.handshakes.lock().unwrap().clone();
    assert_eq!(handshakes.len(), 2);
    let (path, headers) = &handshakes[0];
    assert_eq!(path, "/chat");
    assert_eq!(headers["upgrade"], "websocket");
    assert!(
        headers["connection"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("upgrade")
    );
    assert!(headers.contains_key("sec-websocket-key"));
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["host"], addr.to_string().as_str());

    eventually("upgrades counted, none left open", async || {
        proxy_metric(
            &proxy,
            "fulcrum_websocket_upgrades_total{listener=\"public\"}",
        )
        .await
            == 2.0
            && proxy_metric(&proxy, "fulcrum_websocket_active{listener=\"public\"}").await == 0.0
            && proxy_metric(
                &proxy,
                "fulcrum_websocket_duration_seconds_count{listener=\"public\"}",
            )
            .await
                == 2.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_concurrent_websockets_each_get_their_own_echoes() {
    let (origin_addr, _origin) = start_origin().await;
    let plain = Backend::start("plain", Behavior::Echo);
    let proxy = Proxy::start(&config(origin_addr, &plain, ""));
    let addr = proxy.listener("public");
    let sockets = (0..64).map(|i| async move {
        let mut ws = open_h1(addr, "/many").await;
        for j in 0..20 {
            echo(&mut ws, Message::text(format!("socket {i} message {j}"))).await;
        }
        ws.close(None).await.unwrap();
    });
    futures_util::future::join_all(sockets).await;
    eventually("all 64 counted", async || {
        proxy_metric(
            &proxy,
            "fulcrum_websocket_upgrades_total{listener=\"public\"}",
        )
        .await
            == 64.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_extended_connect_websocket_reaches_an_http1_origin() {
    let (origin_addr, origin) = start_origin().await;
    let plain = Backend::start("plain", Behavior::Echo);
    let proxy = Proxy::start(&config(origin_addr, &plain, ""));
    let addr = proxy.listener("public");

    let mut ws = open_h2(addr, "/over-h2").await;
    echo(&mut ws, Message::text("over h2")).await;
    let big = vec![7u8; 1024 * 1024];
    echo(&mut ws, Message::binary(big)).await;
    ws.send(Message::text("close-me")).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.reason.as_str(), "bye"),
        other => panic!("expected the origin's close frame, got {other:?}"),
    }
    let handshakes = origin.handshakes.lock().unwrap().clone();
    let (path, headers) = &handshakes[0];
    assert_eq!(path, "/over-h2");
    // fulcrum made the HTTP/1.1 handshake: a key of its own, a GET.
    assert!(headers.contains_key("sec-websocket-key"));
    assert_eq!(headers["sec-websocket-version"], "13");
    assert_eq!(headers["upgrade"], "websocket");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upgrade_is_an_ordinary_response_and_the_connection_carries_on() {
    let (origin_addr, _origin) = start_origin().await;
    let plain = Backend::start("plain", Behavior::Echo);
    let proxy = Proxy::start(&config(origin_addr, &plain, ""));
    let addr = proxy.listener("public");

    match connect_async(format!("ws://{addr}/refuse")).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), StatusCode::FORBIDDEN),
        other => panic!("expected the origin's 403, got {other:?}"),
    }

    // On one raw connection: the refused upgrade, then a plain request.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /refuse HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let first = read_response(&mut tcp).await;
    assert!(first.starts_with("HTTP/1.1 403"), "{first}");
    tcp.write_all(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut tcp).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert_eq!(
        plain.hits(),
        1,
        "the second request reached the plain backend"
    );

    // A WebSocket for an HTTP/2 cluster is refused by fulcrum itself.
    match connect_async(format!("ws://{addr}/h2")).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
            assert_eq!(
                resp.headers()["x-fulcrum-reason"],
                "websocket_not_supported"
            );
        }
        other => panic!("expected 501, got {other:?}"),
    }
    assert_eq!(
        proxy_metric(
            &proxy,
            "fulcrum_websocket_upgrades_total{listener=\"public\"}"
        )
        .await,
        0.0
    );
}

/// Reads one whole response: the head, then a Content-Length body or a
/// chunked body up to its last chunk (the origin's refusal has no length, so
/// fulcrum forwards it chunked, and its last chunk may arrive in a later read).
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            if chunked {
                if body.ends_with("0\r\n\r\n") {
                    return text;
                }
                continue;
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_websocket_is_closed_at_the_tunnel_idle_timeout() {
    let (origin_addr, _origin) = start_origin().await;
    let plain = Backend::start("plain", Behavior::Echo);
    let proxy = Proxy::start(&config(origin_addr, &plain, "tunnel_idle_timeout = \"1s\""));
    let mut ws = open_h1(proxy.listener("public"), "/quiet").await;
    echo(&mut ws, Message::text("one message, then silence")).await;
    // A hang guard, not a timing assertion: the socket must end by itself.
    let end = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("fulcrum closed the quiet socket");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_websocket_keeps_working_through_a_drain() {
    let (origin_addr, _origin) = start_origin().await;
    let plain = Backend::start("plain", Behavior::Echo);
    let mut proxy = Proxy::start(&config(origin_addr, &plain, ""));
    let mut ws = open_h1(proxy.listener("public"), "/drain").await;
    echo(&mut ws, Message::text("before")).await;
    proxy.terminate();
    eventually("draining", async || proxy.logs().contains("shutting down")).await;
    echo(&mut ws, Message::text("during the drain")).await;
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let status = tokio::task::spawn_blocking(move || proxy.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
