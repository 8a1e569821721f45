//! The admin server (control thread): metrics, cluster state, the effective
//! config, liveness and readiness, and the write actions (reload, endpoint
//! drain and undrain), which take POST only and, off loopback, a bearer
//! token. Loopback by default; it reveals the config.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::cluster::manager::Event;
use crate::control::{self, Control, Shared};
use crate::telemetry::metrics::STATUS_CLASSES;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, control: Arc<Mutex<Control>>) {
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
        let control = control.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                let control = control.clone();
                async move { Ok::<_, Infallible>(route(&shared, &control, &req)) }
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

fn route(
    shared: &Shared,
    control: &Mutex<Control>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() == Method::POST {
        return action(shared, control, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the admin API serves GET, and POST for actions (/reload, /clusters/NAME/endpoints/ADDRESS/drain and /undrain)\n",
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
        "/clusters" => json_response(&clusters(shared, control)),
        "/config" => {
            let snapshot = shared.snapshot.load();
            json_response(&json!({
                "generation": snapshot.generation,
                "config": serde_json::to_value(&*snapshot.config).unwrap_or_default(),
            }))
        }
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
            "not found; the admin API serves /metrics /clusters /config /healthz /ready (GET) and /reload, /clusters/NAME/endpoints/ADDRESS/drain and /undrain (POST)\n",
        ),
    }
}

/// A write action: authorised first, then applied through the control side.
fn action(
    shared: &Shared,
    control: &Mutex<Control>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let mut control = control::lock(control);
    if let Err(refused) = control.authorize(req.headers().get(header::AUTHORIZATION)) {
        shared.metrics.admin_unauthorized.inc();
        let status = match refused {
            control::Unauthorized::NoToken => StatusCode::FORBIDDEN,
            control::Unauthorized::BadToken => StatusCode::UNAUTHORIZED,
        };
        let mut resp = text(status, format!("{refused}\n"));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        return resp;
    }
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["reload"] => match control.reload("admin API") {
            Ok(applied) => json_response(&json!({ "result": "success", "applied": applied })),
            Err(e) => {
                let status = match e {
                    control::ReloadError::Invalid(_) => StatusCode::BAD_REQUEST,
                    control::ReloadError::NoConfigFile => StatusCode::CONFLICT,
                    control::ReloadError::Apply(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let mut resp =
                    json_response(&json!({ "result": "failure", "error": e.to_string() }));
                *resp.status_mut() = status;
                resp
            }
        },
        [
            "clusters",
            cluster,
            "endpoints",
            address,
            verb @ ("drain" | "undrain"),
        ] => {
            let Ok(address) = address.parse::<std::net::SocketAddr>() else {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "\"{address}\" is not an endpoint address; write it as in the config, e.g. 10.0.0.1:8080 or [::1]:8080\n"
                    ),
                );
            };
            let cluster = (*cluster).to_string();
            let event = if *verb == "drain" {
                Event::Drain {
                    cluster: cluster.clone(),
                    address,
                }
            } else {
                Event::Undrain {
                    cluster: cluster.clone(),
                    address,
                }
            };
            match control.apply(&event, "admin API") {
                Ok(_) => json_response(&endpoint_state(shared, &control, &cluster, address)),
                Err(e) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; actions are POST /reload, /clusters/NAME/endpoints/ADDRESS/drain and /undrain\n",
        ),
    }
}

/// One endpoint's state after a drain or undrain.
fn endpoint_state(
    shared: &Shared,
    control: &Control,
    cluster: &str,
    address: std::net::SocketAddr,
) -> serde_json::Value {
    let snapshot = shared.snapshot.load();
    let endpoint = snapshot
        .clusters
        .iter()
        .find(|c| c.name() == cluster)
        .and_then(|c| c.endpoints.iter().find(|e| e.address == address));
    let status = control
        .statuses(cluster)
        .into_iter()
        .find(|s| s.address == address);
    json!({
        "cluster": cluster,
        "address": address.to_string(),
        "eligible": status.is_some_and(|s| s.is_eligible()),
        "ineligible_reasons": status.map(|s| s.ineligible.names()).unwrap_or_default(),
        "active_requests": endpoint.map(|e| e.active_requests()),
    })
}

fn clusters(shared: &Shared, control: &Mutex<Control>) -> serde_json::Value {
    let snapshot = shared.snapshot.load();
    let clusters: Vec<_> = snapshot
        .clusters
        .iter()
        .map(|c| {
            let statuses = control::lock(control).statuses(c.name());
            let endpoints: Vec<_> = c
                .endpoints
                .iter()
                .zip(&c.config.endpoints)
                .map(|(e, config)| {
                    let status = statuses.iter().find(|s| s.address == e.address);
                    let ineligible = e.ineligible();
                    let responses: serde_json::Map<String, serde_json::Value> = STATUS_CLASSES
                        .iter()
                        .zip(e.metrics.responses.iter())
                        .map(|(class, counter)| ((*class).to_string(), json!(counter.get())))
                        .collect();
                    let mut entry = json!({
                        "address": e.label,
                        "weight": config.weight,
                        "zone": config.zone,
                        "healthy": !ineligible.unhealthy,
                        "eligible": !ineligible.any(),
                        "ineligible_reasons": ineligible.names(),
                        "draining_seconds": status
                            .and_then(|s| s.draining_since)
                            .map(|since| crate::clock::elapsed(since).as_secs_f64()),
                        "ejected_for_seconds": status
                            .and_then(|s| s.ejected_until)
                            .map(|until| until.saturating_duration_since(crate::clock::now()).as_secs_f64()),
                        "active_requests": e.active_requests(),
                        "idle_connections": e.idle.count(),
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
                "panic": c.in_panic(),
                "panic_threshold": c.config.panic_threshold,
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
