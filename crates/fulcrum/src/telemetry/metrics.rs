//! Prometheus metrics. Names follow Prometheus conventions (`_total`,
//! `_seconds`); label values come only from config (cluster, endpoint,
//! listener names) and fixed sets (status class, reason), never from clients,
//! so cardinality is bounded by the config.
//!
//! The hot path never looks a label set up: per-endpoint and per-listener
//! handles are created once when the snapshot is built and cloned into it
//! (each handle is an `Arc` over atomics).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::LatencyHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub cluster: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointStatusLabels {
    pub cluster: String,
    pub endpoint: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterReasonLabels {
    pub cluster: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerStatusLabels {
    pub listener: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthCheckLabels {
    pub cluster: String,
    pub endpoint: String,
    pub result: &'static str,
}

pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`STATUS_CLASSES`] for a status code.
pub fn status_class_index(status: u16) -> usize {
    (usize::from(status / 100)).clamp(1, 5) - 1
}

/// Every metric family fulcrum exports.
pub struct Metrics {
    registry: Registry,
    pub upstream_requests: Family<EndpointStatusLabels, Counter>,
    pub upstream_request_duration: Family<EndpointLabels, LatencyHistogram>,
    pub upstream_active_requests: Family<EndpointLabels, Gauge>,
    pub upstream_errors: Family<ClusterReasonLabels, Counter>,
    pub upstream_active_connections: Family<ClusterLabels, Gauge>,
    pub upstream_connections: Family<ClusterLabels, Counter>,
    pub downstream_active_connections: Family<ListenerLabels, Gauge>,
    pub downstream_connections: Family<ListenerLabels, Counter>,
    pub downstream_requests: Family<ListenerStatusLabels, Counter>,
    pub health_checks: Family<HealthCheckLabels, Counter>,
    pub endpoint_healthy: Family<EndpointLabels, Gauge>,
    pub health_transitions: Family<HealthCheckLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fulcrum");
        let m = Self {
            upstream_requests: Family::default(),
            upstream_request_duration: Family::default(),
            upstream_active_requests: Family::default(),
            upstream_errors: Family::default(),
            upstream_active_connections: Family::default(),
            upstream_connections: Family::default(),
            downstream_active_connections: Family::default(),
            downstream_connections: Family::default(),
            downstream_requests: Family::default(),
            health_checks: Family::default(),
            endpoint_healthy: Family::default(),
            health_transitions: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "upstream_requests",
            "Responses received from upstream endpoints, by status class",
            m.upstream_requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Time from sending a request upstream to the end of its response body",
            m.upstream_request_duration.clone(),
        );
        registry.register(
            "upstream_active_requests",
            "Requests in flight to each endpoint",
            m.upstream_active_requests.clone(),
        );
        registry.register(
            "upstream_errors",
            "Requests that got no upstream response, by reason (no_healthy_upstream, upstream_connect_failure, upstream_reset, upstream_timeout)",
            m.upstream_errors.clone(),
        );
        registry.register(
            "upstream_active_connections",
            "Open connections to a cluster's endpoints (all workers)",
            m.upstream_active_connections.clone(),
        );
        registry.register(
            "upstream_connections",
            "Connections opened to a cluster's endpoints",
            m.upstream_connections.clone(),
        );
        registry.register(
            "downstream_active_connections",
            "Open client connections per listener",
            m.downstream_active_connections.clone(),
        );
        registry.register(
            "downstream_connections",
            "Client connections accepted per listener",
            m.downstream_connections.clone(),
        );
        registry.register(
            "downstream_requests",
            "Responses sent to clients per listener, by status class (local replies included)",
            m.downstream_requests.clone(),
        );
        registry.register(
            "health_checks",
            "Active health check results (success, failure)",
            m.health_checks.clone(),
        );
        registry.register(
            "endpoint_healthy",
            "1 if the endpoint receives traffic, 0 if health checks ejected it",
            m.endpoint_healthy.clone(),
        );
        registry.register(
            "health_transitions",
            "Endpoint health changes; result is the new state (healthy, unhealthy)",
            m.health_transitions.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Pre-resolved handles for one endpoint, held by the endpoint itself.
#[derive(Clone, Debug)]
pub struct EndpointMetrics {
    pub responses: [Counter; 5],
    pub duration: LatencyHistogram,
    pub active_requests: Gauge,
    pub healthy: Gauge,
}

impl EndpointMetrics {
    pub fn new(m: &Metrics, cluster: &str, endpoint: &str) -> Self {
        let labels = EndpointLabels {
            cluster: cluster.to_string(),
            endpoint: endpoint.to_string(),
        };
        let responses = STATUS_CLASSES.map(|status_class| {
            m.upstream_requests
                .get_or_create(&EndpointStatusLabels {
                    cluster: cluster.to_string(),
                    endpoint: endpoint.to_string(),
                    status_class,
                })
                .clone()
        });
        Self {
            responses,
            duration: m.upstream_request_duration.get_or_create(&labels).clone(),
            active_requests: m.upstream_active_requests.get_or_create(&labels).clone(),
            healthy: m.endpoint_healthy.get_or_create(&labels).clone(),
        }
    }
}

/// Pre-resolved handles for one listener.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    pub responses: [Counter; 5],
    pub active_connections: Gauge,
    pub connections: Counter,
}

impl ListenerMetrics {
    pub fn new(m: &Metrics, listener: &str) -> Self {
        let labels = ListenerLabels {
            listener: listener.to_string(),
        };
        Self {
            responses: STATUS_CLASSES.map(|status_class| {
                m.downstream_requests
                    .get_or_create(&ListenerStatusLabels {
                        listener: listener.to_string(),
                        status_class,
                    })
                    .clone()
            }),
            active_connections: m
                .downstream_active_connections
                .get_or_create(&labels)
                .clone(),
            connections: m.downstream_connections.get_or_create(&labels).clone(),
        }
    }
}

/// Decrements a gauge when dropped: ties a gauge to the lifetime of a value.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
