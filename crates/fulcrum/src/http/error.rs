//! The one place where a failure to proxy becomes a response: status, a short
//! plain-text body naming the cause, the machine-readable `x-fulcrum-reason`
//! header, and the metric label. One exhaustive `match`, so a new failure
//! cannot be added without deciding all four. Each error also says who is
//! to blame (the endpoint's statistics leave out what the client caused)
//! and whether the origin may have seen the request (whether a retry is
//! safe for a method that is not idempotent), in the manner of pingora's
//! errors.

use http::{HeaderValue, Response, StatusCode};

use super::body::ProxyBody;

/// Response header carrying the reason of a locally generated error.
pub const REASON_HEADER: &str = "x-fulcrum-reason";

/// Which side a failure is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request or the client's connection (a malformed or stalled request).
    Client,
    /// fulcrum's own configuration or state (no route, no endpoint).
    Fulcrum,
    /// The endpoint or the network path to it.
    Upstream,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches host and path")]
    NoRoute,
    #[error("no healthy endpoint in cluster {cluster}")]
    NoHealthyUpstream { cluster: String },
    #[error("could not connect to {endpoint}: {detail}")]
    ConnectFailure { endpoint: String, detail: String },
    #[error("TLS with {endpoint} failed: {detail}")]
    UpstreamTls { endpoint: String, detail: String },
    #[error("{endpoint} closed or reset the connection before responding: {detail}")]
    UpstreamReset { endpoint: String, detail: String },
    /// HTTP/2 REFUSED_STREAM (RFC 9113 8.7): the origin did not process it.
    #[error("{endpoint} refused the stream before processing the request: {detail}")]
    RefusedStream { endpoint: String, detail: String },
    #[error("{endpoint} sent an invalid HTTP response: {detail}")]
    UpstreamProtocol { endpoint: String, detail: String },
    #[error("{endpoint} did not respond within {timeout_ms} ms")]
    UpstreamTimeout { endpoint: String, timeout_ms: u128 },
    #[error("{endpoint} did not respond within the per-try timeout of {timeout_ms} ms")]
    PerTryTimeout { endpoint: String, timeout_ms: u128 },
    /// A cluster circuit breaker is at its limit: failed at once rather
    /// than queued behind the requests already waiting.
    #[error("cluster {cluster} is at its {breaker} limit ({limit}); circuit breaker overflow")]
    Overflow {
        cluster: String,
        breaker: &'static str,
        limit: u32,
    },
    /// Every eligible endpoint's breaker is open (per-endpoint circuit breakers).
    #[error("every endpoint of cluster {cluster} has an open circuit breaker")]
    CircuitOpen { cluster: String },
    /// A retry was due, but the cluster's retry budget was spent: `cause`
    /// is the failure that would have been retried.
    #[error("{cause} (not retried: the cluster's retry budget is exhausted)")]
    RetryBudgetExhausted { cause: Box<ProxyError> },
    #[error("the request cannot be forwarded: {0}")]
    BadRequest(String),
    /// The request breaks a rule of RFC 9110/9112/9113 that an intermediary
    /// must enforce (docs/http-conformance.md); the rule is the detail.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("CONNECT is not supported: fulcrum is a reverse proxy, not a tunnel")]
    ConnectNotSupported,
    #[error(
        "cluster {cluster} speaks HTTP/2 to its endpoints; WebSockets are proxied to HTTP/1.1 clusters only"
    )]
    WebSocketNotSupported { cluster: String },
    #[error("the request has more than {limit} header fields")]
    TooManyHeaderFields { limit: u32 },
    #[error("no request body byte arrived for {timeout_ms} ms (request_body_timeout)")]
    RequestBodyTimeout { timeout_ms: u128 },
    #[error("the request body could not be read: {0}")]
    ClientBody(String),
    #[error("transfer codings other than chunked are not supported")]
    UnsupportedTransferCoding,
    #[error(
        "the request came in TLS early data and its method is not safe to replay; send it again once the handshake is complete"
    )]
    TooEarly,
}

impl ProxyError {
    /// Status, reason label (also the metric label) and a hint for the body.
    pub fn classify(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ProxyError::NoHealthyUpstream { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "no_healthy_upstream")
            }
            ProxyError::ConnectFailure { .. } => {
                (StatusCode::BAD_GATEWAY, "upstream_connect_failure")
            }
            ProxyError::UpstreamTls { .. } => (StatusCode::BAD_GATEWAY, "upstream_tls_failure"),
            ProxyError::UpstreamReset { .. } => (StatusCode::BAD_GATEWAY, "upstream_reset"),
            ProxyError::RefusedStream { .. } => {
                (StatusCode::BAD_GATEWAY, "upstream_refused_stream")
            }
            ProxyError::UpstreamProtocol { .. } => {
                (StatusCode::BAD_GATEWAY, "upstream_protocol_error")
            }
            ProxyError::UpstreamTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ProxyError::PerTryTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "per_try_timeout"),
            ProxyError::RetryBudgetExhausted { cause } => {
                (cause.classify().0, "retry_budget_exhausted")
            }
            ProxyError::Overflow { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overflow"),
            ProxyError::CircuitOpen { .. } => (StatusCode::SERVICE_UNAVAILABLE, "circuit_open"),
            ProxyError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ProxyError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            ProxyError::ConnectNotSupported => {
                (StatusCode::NOT_IMPLEMENTED, "connect_not_supported")
            }
            ProxyError::WebSocketNotSupported { .. } => {
                (StatusCode::NOT_IMPLEMENTED, "websocket_not_supported")
            }
            ProxyError::TooManyHeaderFields { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
            ),
            ProxyError::RequestBodyTimeout { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "request_body_timeout")
            }
            ProxyError::ClientBody(_) => (StatusCode::BAD_REQUEST, "client_body_error"),
            ProxyError::UnsupportedTransferCoding => {
                (StatusCode::NOT_IMPLEMENTED, "unsupported_transfer_coding")
            }
            ProxyError::TooEarly => (StatusCode::TOO_EARLY, "too_early"),
        }
    }

    /// The client's connection cannot carry another request after this
    /// reply: what follows on an HTTP/1.1 connection is no longer known to
    /// be a request (a tunnel's bytes, or a message fulcrum refused to
    /// read). RFC 9112 3.2 and 9.6.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::Malformed(_)
                | ProxyError::ConnectNotSupported
                | ProxyError::UnsupportedTransferCoding
                | ProxyError::RequestBodyTimeout { .. }
                | ProxyError::ClientBody(_)
        )
    }

    /// Who caused the failure.
    pub fn blame(&self) -> Blame {
        match self {
            ProxyError::RequestBodyTimeout { .. }
            | ProxyError::ClientBody(_)
            | ProxyError::BadRequest(_)
            | ProxyError::Malformed(_)
            | ProxyError::ConnectNotSupported
            | ProxyError::TooManyHeaderFields { .. }
            | ProxyError::UnsupportedTransferCoding
            | ProxyError::TooEarly => Blame::Client,
            ProxyError::NoRoute
            | ProxyError::NoHealthyUpstream { .. }
            | ProxyError::Overflow { .. }
            | ProxyError::CircuitOpen { .. }
            | ProxyError::WebSocketNotSupported { .. } => Blame::Fulcrum,
            ProxyError::ConnectFailure { .. }
            | ProxyError::UpstreamTls { .. }
            | ProxyError::UpstreamReset { .. }
            | ProxyError::RefusedStream { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::PerTryTimeout { .. } => Blame::Upstream,
            ProxyError::RetryBudgetExhausted { cause } => cause.blame(),
        }
    }

    /// The client, not the endpoint, caused the failure: the endpoint's
    /// failure statistics and the upstream error count leave it out.
    pub fn blames_client(&self) -> bool {
        self.blame() == Blame::Client
    }

    /// Whether the origin may have seen (and acted on) the request: a
    /// connect that failed, a TLS handshake that failed and a refused
    /// stream all happened before any request byte reached it, so
    /// retrying them is safe whatever the method.
    pub fn may_have_reached_origin(&self) -> bool {
        match self {
            ProxyError::ConnectFailure { .. }
            | ProxyError::UpstreamTls { .. }
            | ProxyError::RefusedStream { .. } => false,
            ProxyError::RetryBudgetExhausted { cause } => cause.may_have_reached_origin(),
            _ => self.blame() == Blame::Upstream,
        }
    }

    pub fn into_response(self) -> Response<ProxyBody> {
        let (status, reason) = self.classify();
        let mut resp = Response::new(ProxyBody::local(format!("{self}\n")));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(REASON_HEADER, HeaderValue::from_static(reason));
        resp
    }
}
