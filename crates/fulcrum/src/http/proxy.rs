//! One request through the proxy: route -> cluster -> balancer -> endpoint ->
//! upstream pool (the attempts, with retries, are [`super::attempt`]), then
//! the response streams back. Failures become responses in exactly one
//! place ([`ProxyError::into_response`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;

use super::activity::{Activity, StreamGuard};
use super::attempt::{Attempts, Sent, UpstreamRequest, count_overflow, count_upstream_error};
use super::body::{ClientBody, ProxyBody, RequestBody};
use super::conformance::{self, Authority};
use super::error::ProxyError;
use super::headers;
use super::streams::StreamExecutor;
use super::upstream::h1;
use super::websocket::{self, Opening};
use crate::cluster::breaker::Admitted;
use crate::cluster::{ActiveRequest, Cluster};
use crate::config::{RetryPolicy, UpstreamProtocol};
use crate::route::hash_policy::RequestKey;
use crate::snapshot::{ListenerHandle, ListenerState};
use crate::telemetry::metrics::{Metrics, status_class_index};
use crate::tls::early::HandshakeState;

/// What every request on one downstream connection shares.
pub struct ConnContext {
    /// The listener's settings when the connection was accepted.
    pub listener: Arc<ListenerState>,
    /// The listener itself: each request reads its current route table.
    pub handle: Arc<ListenerHandle>,
    /// The worker serving the connection: its upstream pools are used.
    pub worker: usize,
    pub metrics: Arc<Metrics>,
    pub peer: SocketAddr,
    /// `peer`'s IP as a header value, for `X-Forwarded-For`.
    pub client_ip: HeaderValue,
    /// The client connection is TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The verified client certificate (mTLS), as sent upstream.
    pub client_cert: Option<HeaderValue>,
    /// Where it goes; a client's own value of this header is always removed.
    pub client_cert_header: http::HeaderName,
    /// `Strict-Transport-Security` for responses on a TLS listener.
    pub hsts: Option<HeaderValue>,
    /// The client's TLS 1.3 early data was accepted; requests started while
    /// the handshake is incomplete may be replays (RFC 8470).
    pub early_data: Option<Arc<HandshakeState>>,
    pub activity: Arc<Activity>,
    /// The connection's executor, where WebSocket tunnels run.
    pub streams: StreamExecutor,
}

/// What hyper awaits for one request.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// Serves one request. Everything that needs no waiting (routing, picking
/// the endpoint, rewriting and encoding the request) runs here, before a
/// future exists; only the upstream exchange is async. Why: an async fn
/// keeps its arguments and its callee's whole future in its own state, and
/// each level is memmoved as it is built, so three nested levels holding the
/// request copied about 10 KB per request (see "Moving futures" in
/// docs/architecture.md).
pub fn handle(cx: Arc<ConnContext>, mut req: Request<Incoming>) -> ResponseFuture {
    let stream = cx.activity.start();
    // Before fulcrum adds a field of its own.
    let bounded = within_limits(&cx, &req);
    let request_id = headers::ensure_request_id(req.headers_mut());
    let early = cx.early_data.as_ref().is_some_and(|h| h.incomplete());
    // HTTP/1.x: a local reply sent before the request body was read leaves
    // the connection's next bytes unknown, so that connection closes.
    let h1 = req.version() <= Version::HTTP_11;
    let body_unread = h1 && !http_body::Body::is_end_stream(req.body());
    let reply = match bounded.and_then(|()| conformance::check(&req)) {
        Err(e) => {
            let close = h1 && e.closes_connection();
            local_reply(&cx, e, body_unread || close)
        }
        Ok(authority) => match cx.listener.config.redirect_to_https {
            Some(port) => {
                let mut resp = redirect_to_https(&req, authority.as_ref(), port);
                if body_unread {
                    close_after(&mut resp);
                }
                resp
            }
            // RFC 8470: only a safe method may be acted on before the handshake
            // proves the request is not a replay; the rest is told to retry.
            None if early && !req.method().is_safe() => {
                cx.listener.metrics.early_data("too_early");
                local_reply(&cx, ProxyError::TooEarly, body_unread)
            }
            None => match Outgoing::prepare(&cx, mark_early(early, req), authority, body_unread) {
                Ok(outgoing) => {
                    if early {
                        cx.listener.metrics.early_data("forwarded");
                    }
                    return Box::pin(exchange(cx, outgoing, request_id, stream));
                }
                Err(e) => local_reply(&cx, e, body_unread),
            },
        },
    };
    let resp = finish(&cx, reply, request_id, stream);
    Box::pin(std::future::ready(Ok(resp)))
}

/// Bounds hyper does not apply on every protocol: the field count on
/// HTTP/2 (hyper's HTTP/1.1 reader answers 431 itself).
fn within_limits(cx: &ConnContext, req: &Request<Incoming>) -> Result<(), ProxyError> {
    let limit = cx.listener.config.limits.max_request_headers;
    if req.headers().len() > limit as usize {
        return Err(ProxyError::TooManyHeaderFields { limit });
    }
    Ok(())
}

/// A request forwarded before the client's handshake completed carries
/// `Early-Data: 1`, so the origin can answer 425 if it cannot risk a replay.
fn mark_early(early: bool, mut req: Request<Incoming>) -> Request<Incoming> {
    if early {
        req.headers_mut()
            .insert(headers::EARLY_DATA.clone(), HeaderValue::from_static("1"));
    }
    req
}

/// The downstream response's last touches, for proxied and local replies alike.
fn finish(
    cx: &ConnContext,
    mut resp: Response<ProxyBody>,
    request_id: HeaderValue,
    stream: StreamGuard,
) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(headers::X_REQUEST_ID.clone(), request_id);
    if let Some(hsts) = &cx.hsts {
        resp.headers_mut()
            .entry(http::header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| hsts.clone());
    }
    cx.listener.metrics.responses[status_class_index(resp.status().as_u16())].inc();
    resp.body_mut().track(stream);
    resp
}

/// A reply fulcrum makes itself. `close`: on HTTP/1.x, what follows the
/// request is not known to be a request (an unread body, a refused
/// message), so the connection closes after the reply.
fn local_reply(cx: &ConnContext, e: ProxyError, close: bool) -> Response<ProxyBody> {
    tracing::debug!(error = %e, listener = %cx.listener.config.name, "local reply");
    cx.listener.metrics.local_reply(e.classify().1);
    let mut resp = e.into_response();
    if close {
        close_after(&mut resp);
    }
    resp
}

/// `Connection: close` on an HTTP/1.x reply: hyper writes this response,
/// then closes the connection without parsing what follows as a request.
/// Only ever for HTTP/1.x: HTTP/2 has no connection header fields.
fn close_after(resp: &mut Response<ProxyBody>) {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

/// A routed request on its way to the chosen endpoint.
struct Outgoing {
    /// From the route table the request was routed with.
    cluster: Arc<Cluster>,
    active: ActiveRequest,
    /// What the chosen endpoint's breaker said (a probe reports back).
    admitted: Admitted,
    request: UpstreamRequest,
    method: Method,
    /// The route's own retry policy, if it has one (else the cluster's).
    retry_policy: Option<Arc<RetryPolicy>>,
    /// The request's hash key, for a retry's pick.
    hash: Option<u64>,
    set_cookie: Option<HeaderValue>,
    /// An HTTP/1.x request body is still being read (see `local_reply`).
    body_unread: bool,
}

impl Outgoing {
    /// Route -> cluster -> balancer -> endpoint, and the request rewritten
    /// for it.
    fn prepare(
        cx: &ConnContext,
        req: Request<Incoming>,
        authority: Authority,
        body_unread: bool,
    ) -> Result<Self, ProxyError> {
        let handshake = websocket::requested(&req);
        let (mut parts, body) = req.into_parts();
        // The one read of the current config for this request.
        let table = cx.handle.routes();
        let route = table
            .router
            .route(
                authority.as_ref().and_then(|h| h.to_str().ok()),
                parts.uri.path(),
            )
            .ok_or(ProxyError::NoRoute)?;
        let cluster = table
            .cluster(route.cluster_index)
            .ok_or(ProxyError::NoRoute)?;
        let key = if route.hash_policy.is_empty() {
            RequestKey::default()
        } else {
            route.hash_policy.key(&parts, cx.peer.ip())
        };
        let random = fastrand::u64(..);
        let Some(endpoint) = cluster.pick(random, key.hash) else {
            let e = ProxyError::NoHealthyUpstream {
                cluster: cluster.name().to_string(),
            };
            count_upstream_error(cx, cluster, &e);
            return Err(e);
        };
        let Some(admitted) = cluster.admit(endpoint.clone(), random, key.hash, &mut Vec::new())
        else {
            return Err(ProxyError::CircuitOpen {
                cluster: cluster.name().to_string(),
            });
        };
        let limit = cluster.config.circuit_breakers.max_requests;
        if endpoint.cluster_active_requests() >= u64::from(limit) {
            count_overflow(cx, cluster, "max_requests");
            return Err(ProxyError::Overflow {
                cluster: cluster.name().to_string(),
                breaker: "max_requests",
                limit,
            });
        }
        let retry_policy = route.retry_policy.clone();
        let retries = retry_policy
            .as_deref()
            .unwrap_or(&cluster.config.retry_policy)
            .num_retries
            > 0;
        rewrite_headers(&mut parts.headers, cx, authority);
        let method = parts.method.clone();
        let body = ClientBody::new(body, cx.listener.config.limits.request_body_timeout);
        let request = match (cluster.config.protocol, handshake) {
            (UpstreamProtocol::Http1, Some(handshake)) => {
                let opening = Opening::prepare(&mut parts, handshake)?;
                UpstreamRequest::WebSocket(Box::new((h1::Prepared::upgrade(parts, body), opening)))
            }
            (UpstreamProtocol::Http2, Some(_)) => {
                return Err(ProxyError::WebSocketNotSupported {
                    cluster: cluster.name().to_string(),
                });
            }
            (UpstreamProtocol::Http1, None) => {
                UpstreamRequest::Http1(h1::Prepared::new(parts, body, &cx.client_cert_header))
            }
            (UpstreamProtocol::Http2, None) => {
                let body = RequestBody::new(body, cx.client_cert_header.clone());
                UpstreamRequest::http2(Request::from_parts(parts, body), retries)
            }
        };
        Ok(Self {
            cluster: cluster.clone(),
            active: ActiveRequest::start(admitted.endpoint().clone()),
            admitted,
            request,
            method,
            retry_policy,
            hash: key.hash,
            set_cookie: key.set_cookie,
            body_unread,
        })
    }
}

/// The one async step: the exchange with the endpoint (retried as the
/// policy allows), bounded by the cluster's `request_timeout`.
async fn exchange(
    cx: Arc<ConnContext>,
    outgoing: Outgoing,
    request_id: HeaderValue,
    stream: StreamGuard,
) -> Result<Response<ProxyBody>, Infallible> {
    let Outgoing {
        cluster,
        active,
        admitted,
        mut request,
        method,
        retry_policy,
        hash,
        set_cookie,
        body_unread,
    } = outgoing;
    let attempted = Attempts {
        cx: &cx,
        cluster: &cluster,
        policy: retry_policy
            .as_deref()
            .unwrap_or(&cluster.config.retry_policy),
        method: &method,
        hash,
    }
    .run(active, admitted, &mut request)
    .await;
    let attempts = attempted.attempts;
    let mut resp = match attempted.result {
        Ok((Sent::Response(resp), active)) => {
            let (mut parts, body) = resp.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            if let Some(cookie) = set_cookie {
                parts.headers.append(http::header::SET_COOKIE, cookie);
            }
            Response::from_parts(parts, ProxyBody::upstream(body, active))
        }
        Ok((Sent::Switched(upgraded), active)) => {
            let UpstreamRequest::WebSocket(ws) = request else {
                unreachable!("only a WebSocket opening switches protocols")
            };
            let (_, opening) = *ws;
            let switched = websocket::Switched {
                stream: upgraded.stream,
                read_ahead: upgraded.read_ahead,
                open: upgraded.open,
                endpoint: active.endpoint().label.clone(),
                idle_timeout: cx.listener.config.tunnel_idle_timeout,
                metrics: cx.listener.metrics.websocket.clone(),
            };
            match opening.switched(upgraded.head, switched, &cx.streams) {
                Ok(resp) => resp,
                Err(e) => local_reply(&cx, e, body_unread),
            }
        }
        Err(e) => local_reply(&cx, e, body_unread),
    };
    if attempts > 1 {
        resp.headers_mut().insert(
            headers::X_FULCRUM_ATTEMPTS.clone(),
            HeaderValue::from(attempts),
        );
    }
    Ok(finish(&cx, resp, request_id, stream))
}

/// The answer of a `redirect_to_https` listener: the same host and path on
/// https. 301 for GET and HEAD (what browsers and NGINX configs expect), 308
/// for other methods so a POST stays a POST (RFC 9110 15.4.9).
fn redirect_to_https(
    req: &Request<Incoming>,
    authority: Option<&HeaderValue>,
    port: u16,
) -> Response<ProxyBody> {
    let host = authority.and_then(|h| h.to_str().ok()).unwrap_or("");
    // Drop any port the client used for plain HTTP.
    let name = crate::route::strip_port(host);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{port}{path}")
    };
    let (status, text) = if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        (http::StatusCode::MOVED_PERMANENTLY, "moved permanently")
    } else {
        (http::StatusCode::PERMANENT_REDIRECT, "permanent redirect")
    };
    let mut resp = Response::new(ProxyBody::local(format!("{text}: {location}\n")));
    *resp.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, value);
    }
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Header hygiene for the upstream: hop-by-hop headers out, forwarding
/// headers and the verified client certificate in, and `Host` set to the
/// request's one authority (an HTTP/2 client sends `:authority` instead; an
/// absolute-form target's authority replaces the client's `Host`). With no
/// authority at all, `Host` is sent empty, as RFC 9112 3.2 asks of a client.
fn rewrite_headers(headers: &mut http::HeaderMap, cx: &ConnContext, authority: Authority) {
    headers::remove_hop_by_hop(headers);
    headers::set_forwarded(headers, &cx.client_ip, cx.tls, authority.as_ref());
    // Only fulcrum vouches for a client certificate: never pass one a client wrote.
    headers.remove(&cx.client_cert_header);
    if let Some(cert) = &cx.client_cert {
        headers.insert(cx.client_cert_header.clone(), cert.clone());
    }
    headers.insert(
        HOST,
        authority.unwrap_or_else(|| HeaderValue::from_static("")),
    );
}
