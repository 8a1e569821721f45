//! WebSocket through the proxy. A client opens one with an HTTP/1.1
//! `Upgrade: websocket` request (RFC 6455 4.1) or, on HTTP/2, an extended
//! CONNECT with `:protocol = websocket` (RFC 8441); either way the origin
//! gets an RFC 6455 opening handshake over HTTP/1.1 on a connection of its
//! own. When the origin answers 101, the client gets 101 (HTTP/1.1) or 200
//! (HTTP/2) and the bytes of both sides are copied until either closes, an
//! error ends it, or nothing moves for the listener's `tunnel_idle_timeout`.
//! Any other answer is an ordinary response, and the client's connection
//! stays an ordinary HTTP connection.
//!
//! The tunnel runs on the client connection's own executor (see
//! `streams.rs`), so it holds the connection's `max_connections` permit,
//! counts as an open connection, and is waited for by a drain.

use base64::Engine as _;
use bytes::BytesMut;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::body::ProxyBody;
use super::error::ProxyError;
use super::headers;
use super::streams::StreamExecutor;
use crate::cluster::transport::Stream;
use crate::l4::copy;
use crate::telemetry::metrics::{GaugeGuard, WebSocketMetrics};

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
/// RFC 6455 1.3: appended to the key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// How the client asked for the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// HTTP/1.1 `GET` with `Connection: upgrade` and `Upgrade: websocket`.
    Http1,
    /// HTTP/2 extended CONNECT, `:protocol = websocket` (RFC 8441).
    Http2,
}

/// Whether `req` opens a WebSocket, and how. An HTTP/1.1 request that
/// names another protocol in `Upgrade` (h2c, TLS) is an ordinary request:
/// `Upgrade` is hop-by-hop and removed on the way.
pub fn requested<B: http_body::Body>(req: &Request<B>) -> Option<Handshake> {
    if is_extended_connect(req) {
        return Some(Handshake::Http2);
    }
    // RFC 6455 4.1: a GET, HTTP/1.1 or later, with no body.
    let h1_upgrade = req.version() == Version::HTTP_11
        && req.method() == Method::GET
        && req.body().is_end_stream()
        && has_token(req.headers(), &CONNECTION, "upgrade")
        && has_token(req.headers(), &UPGRADE, "websocket");
    h1_upgrade.then_some(Handshake::Http1)
}

/// An HTTP/2 extended CONNECT for a WebSocket (RFC 8441 4): the one CONNECT
/// fulcrum accepts, because its bytes are WebSocket frames to a routed
/// origin, not a tunnel to anywhere.
pub fn is_extended_connect<B>(req: &Request<B>) -> bool {
    req.method() == Method::CONNECT
        && req.version() == Version::HTTP_2
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// A WebSocket request on its way to an HTTP/1.1 origin.
pub struct Opening {
    pub handshake: Handshake,
    /// The key fulcrum sent for an HTTP/2 client (which sends none), to
    /// check the origin's `Sec-WebSocket-Accept` against.
    key: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
}

impl Opening {
    /// Turns the client's request into the origin's opening handshake: a
    /// GET with `Connection: upgrade` and `Upgrade: websocket` (both were
    /// removed with the other hop-by-hop fields) and, for an HTTP/2 client,
    /// a fresh `Sec-WebSocket-Key`. `parts.headers` must already be
    /// rewritten for the upstream.
    pub fn prepare(
        parts: &mut http::request::Parts,
        handshake: Handshake,
    ) -> Result<Self, ProxyError> {
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| ProxyError::BadRequest("the connection cannot be upgraded".into()))?;
        parts.method = Method::GET;
        let h = &mut parts.headers;
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        let key = match handshake {
            Handshake::Http1 => None,
            Handshake::Http2 => {
                let key = HeaderValue::from_str(
                    &base64::engine::general_purpose::STANDARD
                        .encode(fastrand::u128(..).to_le_bytes()),
                )
                .map_err(|_| ProxyError::BadRequest("WebSocket key".into()))?;
                h.insert(SEC_WEBSOCKET_KEY, key.clone());
                Some(key)
            }
        };
        Ok(Self {
            handshake,
            key,
            on_upgrade,
        })
    }

    /// The origin switched protocols: the client's answer, and the tunnel
    /// started on the connection's executor. `read_ahead` is what the origin
    /// sent right behind its 101.
    pub fn switched(
        self,
        origin: Response<()>,
        upstream: Switched,
        streams: &StreamExecutor,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (parts, ()) = origin.into_parts();
        let mut fields = parts.headers;
        headers::remove_hop_by_hop(&mut fields);
        let status = match self.handshake {
            Handshake::Http1 => {
                fields.insert(CONNECTION, HeaderValue::from_static("upgrade"));
                fields.insert(UPGRADE, HeaderValue::from_static("websocket"));
                StatusCode::SWITCHING_PROTOCOLS
            }
            Handshake::Http2 => {
                // The origin proves it speaks WebSocket by answering the
                // key fulcrum made up; the HTTP/2 client never sees either.
                let accepted = fields.remove(SEC_WEBSOCKET_ACCEPT);
                let expected = self.key.as_ref().map(|k| accept_for(k.as_bytes()));
                let proven = matches!((&accepted, &expected),
                    (Some(a), Some(e)) if a.as_bytes() == e.as_bytes());
                if !proven {
                    return Err(ProxyError::UpstreamProtocol {
                        endpoint: upstream.endpoint,
                        detail: "101 without the Sec-WebSocket-Accept for the key sent".into(),
                    });
                }
                StatusCode::OK
            }
        };
        let mut resp = Response::new(ProxyBody::local(""));
        *resp.status_mut() = status;
        *resp.headers_mut() = fields;
        upstream.metrics.upgrades.inc();
        hyper::rt::Executor::execute(streams, run(self.on_upgrade, upstream));
        Ok(resp)
    }
}

/// The upstream side of a switched connection and what its tunnel needs.
pub struct Switched {
    pub stream: Stream,
    pub read_ahead: BytesMut,
    /// Keeps the upstream connection counted as open.
    pub open: crate::cluster::pool::Open,
    pub endpoint: String,
    pub idle_timeout: std::time::Duration,
    pub metrics: WebSocketMetrics,
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 4.2.2): base64 of the SHA-1
/// of the key and the protocol's GUID.
pub fn accept_for(key: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// One WebSocket's life after the switch.
async fn run(on_upgrade: OnUpgrade, upstream: Switched) {
    let Switched {
        stream,
        read_ahead,
        open,
        endpoint,
        idle_timeout,
        metrics,
    } = upstream;
    let client = match on_upgrade.await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(%endpoint, error = %e, "client connection was not upgraded");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    if !read_ahead.is_empty() && client.write_all(&read_ahead).await.is_err() {
        return;
    }
    let _active = GaugeGuard::new(&metrics.active);
    let started = crate::clock::now();
    let (outcome, moved) = copy::tunnel(client, stream, idle_timeout).await;
    metrics.duration.observe(crate::clock::elapsed(started));
    drop(open);
    tracing::debug!(%endpoint, ?outcome, to_upstream = moved.to_upstream, to_client = moved.to_client, "WebSocket closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, method: Method, fields: &[(&str, &str)]) -> Request<String> {
        let mut r = Request::builder()
            .method(method)
            .version(version)
            .uri("/chat");
        for (k, v) in fields {
            r = r.header(*k, *v);
        }
        r.body(String::new()).expect("valid request")
    }

    #[test]
    fn rfc6455_example_accept() {
        // RFC 6455 1.3's worked example.
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_a_websocket_get_upgrade_is_a_websocket() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert_eq!(
            requested(&req(Version::HTTP_11, Method::GET, &ws)),
            Some(Handshake::Http1)
        );
        assert_eq!(requested(&req(Version::HTTP_11, Method::POST, &ws)), None);
        assert_eq!(requested(&req(Version::HTTP_10, Method::GET, &ws)), None);
        assert_eq!(
            requested(&req(
                Version::HTTP_11,
                Method::GET,
                &[("upgrade", "websocket")]
            )),
            None,
            "Connection must name upgrade"
        );
        assert_eq!(
            requested(&req(
                Version::HTTP_11,
                Method::GET,
                &[("connection", "upgrade"), ("upgrade", "h2c")]
            )),
            None
        );
        let mut with_body = req(Version::HTTP_11, Method::GET, &ws);
        *with_body.body_mut() = "x".into();
        assert_eq!(requested(&with_body), None);
    }

    #[test]
    fn extended_connect_needs_the_websocket_protocol() {
        let mut r = req(Version::HTTP_2, Method::CONNECT, &[]);
        assert_eq!(requested(&r), None);
        r.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(requested(&r), Some(Handshake::Http2));
        let mut other = req(Version::HTTP_2, Method::CONNECT, &[]);
        other
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        assert!(!is_extended_connect(&other));
    }
}
