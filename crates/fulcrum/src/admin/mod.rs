//! The admin server (control thread): metrics, cluster state, the effective
//! config, liveness and readiness. Loopback by default; it reveals the config.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::runtime::Shared;
use crate::telemetry::metrics::STATUS_CLASSES;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the admin API only serves GET\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let mut resp = text(StatusCode::OK, shared.metrics.encode());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        "/clusters" => json_response(&clusters(shared)),
        "/config" => json_response(
            &serde_json::to_value(&*shared.snapshot.load().config).unwrap_or_default(),
        ),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            if shared.draining.load(Ordering::SeqCst) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if shared.ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; the admin API serves /metrics /clusters /config /healthz /ready\n",
        ),
    }
}

fn clusters(shared: &Shared) -> serde_json::Value {
    let snapshot = shared.snapshot.load();
    let clusters: Vec<_> = snapshot
        .clusters
        .iter()
        .map(|c| {
            let endpoints: Vec<_> = c
                .endpoints
                .iter()
                .map(|e| {
                    let responses: serde_json::Map<String, serde_json::Value> = STATUS_CLASSES
                        .iter()
                        .zip(e.metrics.responses.iter())
                        .map(|(class, counter)| ((*class).to_string(), json!(counter.get())))
                        .collect();
                    let mut entry = json!({
                        "address": e.label,
                        "weight": e.weight,
                        "zone": e.zone,
                        "healthy": e.is_healthy(),
                        "active_requests": e.active_requests(),
                        "requests_total": e.requests_total(),
                        "responses": responses,
                    });
                    // L4 endpoints: active_requests/requests_total count flows.
                    if let Some(f) = &e.metrics.flows {
                        entry["flows"] = json!({
                            "active": f.active_flows.get(),
                            "total": f.flows.get(),
                            "connect_failures": f.connect_failures.get(),
                            "bytes_sent": f.sent_bytes.get(),
                            "bytes_received": f.received_bytes.get(),
                        });
                    }
                    entry
                })
                .collect();
            json!({
                "name": c.name(),
                "policy": c.config.policy.name(),
                "protocol": c.config.protocol,
                "healthy_endpoints": c.eligible_count(),
                "active_flows": c.flows.active(),
                "max_connections": c.config.max_connections,
                "endpoints": endpoints,
            })
        })
        .collect();
    json!({ "clusters": clusters })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_response(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}
