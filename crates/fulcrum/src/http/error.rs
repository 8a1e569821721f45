//! The one place where a failure to proxy becomes a response: status, a short
//! plain-text body naming the cause, the machine-readable `x-fulcrum-reason`
//! header, and the metric label. One exhaustive `match`, so a new failure
//! cannot be added without deciding all four.

use http::{HeaderValue, Response, StatusCode};

use super::body::ProxyBody;

/// Response header carrying the reason of a locally generated error.
pub const REASON_HEADER: &str = "x-fulcrum-reason";

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
    #[error("{endpoint} sent an invalid HTTP response: {detail}")]
    UpstreamProtocol { endpoint: String, detail: String },
    #[error("{endpoint} did not respond within {timeout_ms} ms")]
    UpstreamTimeout { endpoint: String, timeout_ms: u128 },
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
            ProxyError::UpstreamProtocol { .. } => {
                (StatusCode::BAD_GATEWAY, "upstream_protocol_error")
            }
            ProxyError::UpstreamTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
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

    /// The client, not the endpoint, caused the failure: the endpoint's
    /// failure statistics and the upstream error count leave it out.
    pub fn blames_client(&self) -> bool {
        matches!(
            self,
            ProxyError::RequestBodyTimeout { .. } | ProxyError::ClientBody(_)
        )
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
