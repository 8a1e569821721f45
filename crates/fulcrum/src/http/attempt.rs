//! The attempts of one request: send it to the chosen endpoint, and when an
//! attempt fails in a way the retry policy covers, send it again to an
//! endpoint not tried yet, after a jittered back-off, within the cluster's
//! retry budget and the request's `request_timeout`. Failures become
//! [`ProxyError`]s here, with their blame; `proxy.rs` turns the outcome
//! into the client's response.

use std::sync::Arc;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::body::{ClientBodyError, RequestBody, UpstreamBody};
use super::error::{Blame, ProxyError};
use super::proxy::ConnContext;
use super::retry::{self, RetryReason};
use super::upstream::Http2Client;
use super::upstream::h1::{self, UpstreamError};
use super::websocket::Opening;
use crate::cluster::breaker::{Admitted, Change as BreakerChange};
use crate::cluster::transport::ConnectError;
use crate::cluster::{ActiveRequest, Cluster, Endpoint};
use crate::config::RetryPolicy;
use crate::telemetry::metrics::{
    ClusterBreakerLabels, ClusterLabels, ClusterReasonLabels, EndpointLabels,
};
use crate::tls::upstream::is_tls_error;

/// The request as the cluster's protocol sends it, kept so a retry can
/// send it again.
pub enum UpstreamRequest {
    Http1(h1::Prepared),
    /// Boxed: the HTTP/2 client takes a whole `Request` (264 bytes), which
    /// would otherwise size every HTTP/1.1 exchange too. The client
    /// consumes it, so a bodiless request keeps a copy of its head for a
    /// retry (`replay`); one with a body is sent once.
    Http2 {
        request: Option<Box<Request<RequestBody>>>,
        replay: Option<Box<Replay>>,
    },
    /// A WebSocket opening handshake (always to an HTTP/1.1 cluster).
    WebSocket(Box<(h1::Prepared, Opening)>),
}

/// A bodiless HTTP/2 request's head, to send it again.
pub struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    client_cert_header: http::HeaderName,
}

impl UpstreamRequest {
    /// An HTTP/2 request, with what a retry needs when `retries` are possible.
    pub fn http2(req: Request<RequestBody>, retries: bool) -> Self {
        let replay = (retries && http_body::Body::is_end_stream(req.body())).then(|| {
            Box::new(Replay {
                method: req.method().clone(),
                uri: req.uri().clone(),
                headers: req.headers().clone(),
                client_cert_header: req.body().client_cert_header().clone(),
            })
        });
        UpstreamRequest::Http2 {
            request: Some(Box::new(req)),
            replay,
        }
    }

    /// Whether it can be sent (again).
    fn replayable(&self) -> bool {
        match self {
            UpstreamRequest::Http1(p) => p.replayable(),
            UpstreamRequest::Http2 { request, replay } => request.is_some() || replay.is_some(),
            UpstreamRequest::WebSocket(_) => true,
        }
    }

    fn take_http2(&mut self) -> Option<Request<RequestBody>> {
        let UpstreamRequest::Http2 { request, replay } = self else {
            return None;
        };
        if let Some(req) = request.take() {
            return Some(*req);
        }
        let r = replay.as_ref()?;
        let mut req = Request::new(RequestBody::empty(r.client_cert_header.clone()));
        *req.method_mut() = r.method.clone();
        *req.uri_mut() = r.uri.clone();
        *req.headers_mut() = r.headers.clone();
        Some(req)
    }
}

/// What one successful attempt brought back.
pub enum Sent {
    Response(Response<UpstreamBody>),
    /// The origin switched protocols (WebSocket).
    Switched(h1::Upgraded),
}

/// The outcome of all attempts.
pub struct Attempted {
    /// The response and the in-flight record of the attempt that got it.
    pub result: Result<(Sent, ActiveRequest), ProxyError>,
    /// How many attempts were made (1 without retries).
    pub attempts: u32,
}

/// What the attempt loop needs about the request.
pub struct Attempts<'a> {
    pub cx: &'a ConnContext,
    pub cluster: &'a Arc<Cluster>,
    pub policy: &'a RetryPolicy,
    pub method: &'a Method,
    /// The request's hash key, so a retry's pick is as sticky as can be.
    pub hash: Option<u64>,
}

impl Attempts<'_> {
    /// Sends `request`, retrying as the policy allows; `first` is the
    /// endpoint the balancer picked.
    pub async fn run(
        &self,
        first: ActiveRequest,
        first_admitted: Admitted,
        request: &mut UpstreamRequest,
    ) -> Attempted {
        let cluster = self.cluster;
        let timeout = cluster.config.request_timeout;
        let deadline = crate::clock::now() + timeout;
        let mut active = first;
        let mut admitted = first_admitted;
        let mut attempts = 1;
        let mut tried: Vec<Arc<Endpoint>> = Vec::new();
        // Held while a retry is in flight: the budget counts it.
        let mut _permit = None;
        loop {
            let endpoint = active.endpoint().clone();
            let remaining = deadline.saturating_duration_since(crate::clock::now());
            let (limit, per_try) = match self.policy.per_try_timeout {
                Some(p) if p < remaining => (p, true),
                _ => (remaining, false),
            };
            let result =
                match tokio::time::timeout(limit, send_once(self.cx, cluster, &endpoint, request))
                    .await
                {
                    Ok(r) => r,
                    Err(_) if per_try => Err(ProxyError::PerTryTimeout {
                        endpoint: endpoint.label.clone(),
                        timeout_ms: limit.as_millis(),
                    }),
                    Err(_) => Err(ProxyError::UpstreamTimeout {
                        endpoint: endpoint.label.clone(),
                        timeout_ms: timeout.as_millis(),
                    }),
                };
            let reason = match &result {
                Ok(Sent::Response(resp)) => {
                    let status = resp.status().as_u16();
                    active.record_status(status);
                    retry::on_status(self.policy, status, self.method)
                }
                Ok(Sent::Switched(_)) => {
                    active.record_status(http::StatusCode::SWITCHING_PROTOCOLS.as_u16());
                    None
                }
                Err(e) => {
                    match e.blame() {
                        Blame::Upstream => {
                            active.record_failure();
                            count_upstream_error(self.cx, cluster, e);
                        }
                        Blame::Fulcrum => {
                            if let ProxyError::Overflow { breaker, .. } = e {
                                count_overflow(self.cx, cluster, breaker);
                            }
                        }
                        Blame::Client => {}
                    }
                    retry::on_error(self.policy, e, self.method)
                }
            };
            self.report_to_breaker(admitted, &result);
            let retry =
                reason.filter(|_| attempts <= self.policy.num_retries && request.replayable());
            let Some(reason) = retry else {
                return Attempted {
                    result: result.map(|sent| (sent, active)),
                    attempts,
                };
            };
            tried.push(endpoint);
            let random = fastrand::u64(..);
            let next = cluster
                .pick_untried(random, self.hash, &tried)
                .cloned()
                .and_then(|e| cluster.admit(e, random, self.hash, &mut tried));
            let Some(next_admitted) = next else {
                // Every eligible endpoint was tried.
                return Attempted {
                    result: result.map(|sent| (sent, active)),
                    attempts,
                };
            };
            let Some(load) = cluster.endpoints.first().map(|e| e.cluster_load()) else {
                return Attempted {
                    result: result.map(|sent| (sent, active)),
                    attempts,
                };
            };
            let active_requests = load.active_requests();
            let Some(permit) = retry::acquire(
                cluster.config.retry_budget.as_ref(),
                cluster.config.circuit_breakers.max_retries,
                &load.active_retries,
                active_requests,
            ) else {
                self.count_budget_overflow();
                return Attempted {
                    result: match result {
                        // A real answer beats an error about the budget.
                        Ok(sent) => Ok((sent, active)),
                        Err(cause) => Err(ProxyError::RetryBudgetExhausted {
                            cause: Box::new(cause),
                        }),
                    },
                    attempts,
                };
            };
            // The failed attempt's response (a retried status) is dropped
            // unread: its connection closes rather than returning to the pool.
            drop(result);
            drop(active);
            self.count_retry(reason);
            let pause = retry::backoff(self.policy, attempts, fastrand::u64(..));
            if !pause.is_zero() {
                tokio::time::sleep(
                    pause.min(deadline.saturating_duration_since(crate::clock::now())),
                )
                .await;
            }
            _permit = Some(permit);
            active = ActiveRequest::start(next_admitted.endpoint().clone());
            admitted = next_admitted;
            attempts += 1;
        }
    }

    /// Feeds the endpoint's breaker (when configured) with the attempt's
    /// outcome: a 5xx or an upstream failure is a failure; what the client
    /// or fulcrum caused says nothing about the endpoint.
    fn report_to_breaker(&self, admitted: Admitted, result: &Result<Sent, ProxyError>) {
        let Some(config) = &self.cluster.config.circuit_breakers.endpoint else {
            return;
        };
        let success = match result {
            Ok(Sent::Response(r)) => r.status().as_u16() < 500,
            Ok(Sent::Switched(_)) => true,
            Err(e) if e.blame() == Blame::Upstream => false,
            // Dropping `admitted` gives a probe's slot back.
            Err(_) => return,
        };
        let endpoint = admitted.endpoint().clone();
        match admitted.record(config, success, crate::clock::now_ns()) {
            Some(BreakerChange::Opened) => {
                let labels = EndpointLabels {
                    cluster: self.cluster.name().to_string(),
                    endpoint: endpoint.label.clone(),
                };
                self.cx
                    .metrics
                    .endpoint_breaker_opens
                    .get_or_create(&labels)
                    .inc();
                tracing::warn!(cluster = self.cluster.name(), endpoint = %endpoint.label, "endpoint circuit breaker opened: consecutive failures");
            }
            Some(BreakerChange::Closed { open_for }) => {
                self.cx
                    .metrics
                    .endpoint_breaker_open_duration
                    .get_or_create(&ClusterLabels {
                        cluster: self.cluster.name().to_string(),
                    })
                    .observe(open_for);
                tracing::info!(cluster = self.cluster.name(), endpoint = %endpoint.label, open_ms = open_for.as_millis() as u64, "endpoint circuit breaker closed: a probe succeeded");
            }
            None => {}
        }
    }

    fn count_retry(&self, reason: RetryReason) {
        self.cx
            .metrics
            .upstream_retries
            .get_or_create(&ClusterReasonLabels {
                cluster: self.cluster.name().to_string(),
                reason: reason.name(),
            })
            .inc();
    }

    fn count_budget_overflow(&self) {
        self.cx
            .metrics
            .upstream_retry_overflow
            .get_or_create(&ClusterLabels {
                cluster: self.cluster.name().to_string(),
            })
            .inc();
    }
}

/// `fulcrum_upstream_errors_total{cluster, reason}`.
pub fn count_upstream_error(cx: &ConnContext, cluster: &Cluster, e: &ProxyError) {
    let (_, reason) = e.classify();
    cx.metrics
        .upstream_errors
        .get_or_create(&ClusterReasonLabels {
            cluster: cluster.name().to_string(),
            reason,
        })
        .inc();
}

/// `fulcrum_circuit_breaker_overflow_total{cluster, breaker}`.
pub fn count_overflow(cx: &ConnContext, cluster: &Cluster, breaker: &'static str) {
    cx.metrics
        .circuit_breaker_overflow
        .get_or_create(&ClusterBreakerLabels {
            cluster: cluster.name().to_string(),
            breaker,
        })
        .inc();
}

/// One attempt to one endpoint, up to the response head.
async fn send_once(
    cx: &ConnContext,
    cluster: &Cluster,
    endpoint: &Arc<Endpoint>,
    request: &mut UpstreamRequest,
) -> Result<Sent, ProxyError> {
    match request {
        UpstreamRequest::Http1(req) => h1::send(cluster, endpoint, cx.worker, req)
            .await
            .map(|r| Sent::Response(r.map(UpstreamBody::Http1)))
            .map_err(|e| h1_failure(cluster, endpoint, e)),
        UpstreamRequest::WebSocket(ws) => {
            match h1::upgrade(cluster, endpoint, cx.worker, &ws.0).await {
                Ok(h1::Upgrade::Refused(r)) => Ok(Sent::Response(r.map(UpstreamBody::Http1))),
                Ok(h1::Upgrade::Switched(upgraded)) => Ok(Sent::Switched(upgraded)),
                Err(e) => Err(h1_failure(cluster, endpoint, e)),
            }
        }
        UpstreamRequest::Http2 { .. } => {
            // An HTTP/2 cluster has one client per worker.
            let client = cluster
                .http2
                .as_ref()
                .and_then(|c| c.get(cx.worker))
                .ok_or(ProxyError::NoRoute)?;
            let req = request.take_http2().ok_or(ProxyError::NoRoute)?;
            // Boxed: hyper's pooled client future is large (see UpstreamRequest).
            Box::pin(send_http2(client, endpoint, req))
                .await
                .map(|r| Sent::Response(r.map(UpstreamBody::Http2)))
        }
    }
}

/// Over HTTP/2 the request needs an absolute URI naming the endpoint (the
/// pool is keyed by it) and the HTTP/2 version.
async fn send_http2(
    client: &Http2Client,
    endpoint: &Endpoint,
    req: Request<RequestBody>,
) -> Result<Response<Incoming>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(endpoint.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
    parts.version = Version::HTTP_2;
    client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| upstream_failure(endpoint, &e))
}

fn h1_failure(cluster: &Cluster, endpoint: &Endpoint, e: UpstreamError) -> ProxyError {
    let endpoint = endpoint.label.clone();
    match e {
        UpstreamError::Connect(ConnectError::Tcp(e)) => ProxyError::ConnectFailure {
            endpoint,
            detail: e.to_string(),
        },
        UpstreamError::Connect(ConnectError::Tls(e)) => ProxyError::UpstreamTls {
            endpoint,
            detail: e.to_string(),
        },
        // An alert after the handshake: with TLS 1.3 an endpoint that
        // refuses the client certificate says so on the first read.
        UpstreamError::Io(e) if is_tls_error(&e) => ProxyError::UpstreamTls {
            endpoint,
            detail: e.to_string(),
        },
        UpstreamError::Io(_) | UpstreamError::Closed => ProxyError::UpstreamReset {
            endpoint,
            detail: e.to_string(),
        },
        UpstreamError::Protocol(e) => ProxyError::UpstreamProtocol {
            endpoint,
            detail: e.to_string(),
        },
        UpstreamError::ClientBody(e) => client_body_failure(&e),
        UpstreamError::Overflow { breaker, limit } => ProxyError::Overflow {
            cluster: cluster.name().to_string(),
            breaker,
            limit,
        },
    }
}

pub fn client_body_failure(e: &ClientBodyError) -> ProxyError {
    match e {
        ClientBodyError::Timeout(t) => ProxyError::RequestBodyTimeout {
            timeout_ms: t.as_millis(),
        },
        ClientBodyError::Client(e) => ProxyError::ClientBody(e.to_string()),
    }
}

fn upstream_failure(endpoint: &Endpoint, e: &hyper_util::client::legacy::Error) -> ProxyError {
    let detail = error_chain(e);
    let mut tls = false;
    let mut refused = false;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        // hyper's client fails the request when the body it was sending did.
        if let Some(body) = s.downcast_ref::<ClientBodyError>() {
            return client_body_failure(body);
        }
        tls |= matches!(s.downcast_ref::<ConnectError>(), Some(ConnectError::Tls(_)))
            || s.downcast_ref::<rustls::Error>().is_some();
        refused |= s
            .downcast_ref::<h2::Error>()
            .is_some_and(|h| h.reason() == Some(h2::Reason::REFUSED_STREAM));
        source = s.source();
    }
    let endpoint = endpoint.label.clone();
    if tls {
        ProxyError::UpstreamTls { endpoint, detail }
    } else if e.is_connect() {
        ProxyError::ConnectFailure { endpoint, detail }
    } else if refused {
        ProxyError::RefusedStream { endpoint, detail }
    } else {
        ProxyError::UpstreamReset { endpoint, detail }
    }
}

/// The innermost cause is the useful part ("Connection refused"), so report the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
