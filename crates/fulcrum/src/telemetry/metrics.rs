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
pub struct ClusterBreakerLabels {
    pub cluster: String,
    pub breaker: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterDetectorLabels {
    pub cluster: String,
    pub detector: &'static str,
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
pub struct ListenerOutcomeLabels {
    pub listener: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerReasonLabels {
    pub listener: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerStatusLabels {
    pub listener: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsHandshakeLabels {
    pub listener: String,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// `full` or `resumed`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterTlsHandshakeLabels {
    pub cluster: String,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// `full` or `resumed`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    pub listener: String,
    /// The certificate file as the config names it.
    pub certificate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: &'static str,
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
    pub upstream_retries: Family<ClusterReasonLabels, Counter>,
    pub upstream_retry_overflow: Family<ClusterLabels, Counter>,
    pub circuit_breaker_overflow: Family<ClusterBreakerLabels, Counter>,
    pub circuit_breaker_remaining: Family<ClusterBreakerLabels, Gauge>,
    pub endpoint_breaker_opens: Family<EndpointLabels, Counter>,
    pub endpoint_breaker_open_duration:
        Family<ClusterLabels, LatencyHistogram, fn() -> LatencyHistogram>,
    pub upstream_active_connections: Family<ClusterLabels, Gauge>,
    pub upstream_connections: Family<ClusterLabels, Counter>,
    pub downstream_active_connections: Family<ListenerLabels, Gauge>,
    pub downstream_connections: Family<ListenerLabels, Counter>,
    pub downstream_requests: Family<ListenerStatusLabels, Counter>,
    pub health_checks: Family<HealthCheckLabels, Counter>,
    pub endpoint_healthy: Family<EndpointLabels, Gauge>,
    pub health_transitions: Family<HealthCheckLabels, Counter>,
    pub endpoint_draining: Family<EndpointLabels, Gauge>,
    pub endpoint_eligible: Family<EndpointLabels, Gauge>,
    pub endpoint_drain_duration: Family<ClusterLabels, LatencyHistogram, fn() -> LatencyHistogram>,
    pub cluster_panic: Family<ClusterLabels, Gauge>,
    pub cluster_panic_entries: Family<ClusterLabels, Counter>,
    pub endpoint_ejected: Family<EndpointLabels, Gauge>,
    pub outlier_ejections: Family<ClusterDetectorLabels, Counter>,
    pub outlier_ejections_overflow: Family<ClusterDetectorLabels, Counter>,
    // Live configuration.
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_generation: Gauge,
    pub config_last_reload_timestamp: Gauge,
    pub config_last_reload_success: Gauge,
    pub admin_unauthorized: Counter,
    // L4 (tcp, udp, tls_passthrough listeners and the clusters they use).
    pub downstream_refused: Family<ListenerReasonLabels, Counter>,
    pub downstream_received_bytes: Family<ListenerLabels, Counter>,
    pub downstream_sent_bytes: Family<ListenerLabels, Counter>,
    pub downstream_flow_duration:
        Family<ListenerLabels, LatencyHistogram, fn() -> LatencyHistogram>,
    pub udp_sessions: Family<ListenerLabels, Counter>,
    pub udp_active_sessions: Family<ListenerLabels, Gauge>,
    pub udp_dropped_datagrams: Family<ListenerReasonLabels, Counter>,
    pub local_replies: Family<ListenerReasonLabels, Counter>,
    // Upgraded HTTP connections (WebSocket).
    pub websocket_upgrades: Family<ListenerLabels, Counter>,
    pub websocket_active: Family<ListenerLabels, Gauge>,
    pub websocket_duration: Family<ListenerLabels, LatencyHistogram, fn() -> LatencyHistogram>,
    pub upstream_flows: Family<EndpointLabels, Counter>,
    pub upstream_active_flows: Family<EndpointLabels, Gauge>,
    pub upstream_connect_failures: Family<EndpointLabels, Counter>,
    pub upstream_connect_duration: Family<EndpointLabels, LatencyHistogram>,
    pub upstream_sent_bytes: Family<EndpointLabels, Counter>,
    pub upstream_received_bytes: Family<EndpointLabels, Counter>,
    // TLS termination.
    pub tls_handshakes: Family<TlsHandshakeLabels, Counter>,
    pub tls_handshake_errors: Family<ListenerReasonLabels, Counter>,
    pub tls_handshake_duration: Family<ListenerLabels, LatencyHistogram>,
    pub tls_certificate_expiry: Family<CertificateLabels, Gauge>,
    pub tls_reload_failures: Family<ListenerLabels, Counter>,
    pub upstream_tls_reload_failures: Family<ClusterLabels, Counter>,
    pub early_data_requests: Family<ListenerOutcomeLabels, Counter>,
    pub upstream_tls_handshakes: Family<ClusterTlsHandshakeLabels, Counter>,
    pub upstream_tls_handshake_errors: Family<ClusterReasonLabels, Counter>,
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
            upstream_retries: Family::default(),
            upstream_retry_overflow: Family::default(),
            circuit_breaker_overflow: Family::default(),
            circuit_breaker_remaining: Family::default(),
            endpoint_breaker_opens: Family::default(),
            endpoint_breaker_open_duration: Family::new_with_constructor(LatencyHistogram::flows),
            upstream_active_connections: Family::default(),
            upstream_connections: Family::default(),
            downstream_active_connections: Family::default(),
            downstream_connections: Family::default(),
            downstream_requests: Family::default(),
            health_checks: Family::default(),
            endpoint_healthy: Family::default(),
            health_transitions: Family::default(),
            endpoint_draining: Family::default(),
            endpoint_eligible: Family::default(),
            endpoint_drain_duration: Family::new_with_constructor(LatencyHistogram::flows),
            cluster_panic: Family::default(),
            cluster_panic_entries: Family::default(),
            endpoint_ejected: Family::default(),
            outlier_ejections: Family::default(),
            outlier_ejections_overflow: Family::default(),
            config_reloads: Family::default(),
            config_generation: Gauge::default(),
            config_last_reload_timestamp: Gauge::default(),
            config_last_reload_success: Gauge::default(),
            admin_unauthorized: Counter::default(),
            downstream_refused: Family::default(),
            downstream_received_bytes: Family::default(),
            downstream_sent_bytes: Family::default(),
            downstream_flow_duration: Family::new_with_constructor(LatencyHistogram::flows),
            udp_sessions: Family::default(),
            udp_active_sessions: Family::default(),
            udp_dropped_datagrams: Family::default(),
            local_replies: Family::default(),
            websocket_upgrades: Family::default(),
            websocket_active: Family::default(),
            websocket_duration: Family::new_with_constructor(LatencyHistogram::flows),
            upstream_flows: Family::default(),
            upstream_active_flows: Family::default(),
            upstream_connect_failures: Family::default(),
            upstream_connect_duration: Family::default(),
            upstream_sent_bytes: Family::default(),
            upstream_received_bytes: Family::default(),
            tls_handshakes: Family::default(),
            tls_handshake_errors: Family::default(),
            tls_handshake_duration: Family::default(),
            tls_certificate_expiry: Family::default(),
            tls_reload_failures: Family::default(),
            upstream_tls_reload_failures: Family::default(),
            early_data_requests: Family::default(),
            upstream_tls_handshakes: Family::default(),
            upstream_tls_handshake_errors: Family::default(),
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
            "1 unless the endpoint fails its active health checks",
            m.endpoint_healthy.clone(),
        );
        registry.register(
            "endpoint_draining",
            "1 while an operator drains the endpoint (no new requests; in-flight ones finish)",
            m.endpoint_draining.clone(),
        );
        registry.register(
            "endpoint_eligible",
            "1 if the endpoint takes new requests (healthy, not draining, not ejected)",
            m.endpoint_eligible.clone(),
        );
        registry.register(
            "endpoint_drain_duration_seconds",
            "Time from the start of an endpoint's drain until its last in-flight request or flow finished",
            m.endpoint_drain_duration.clone(),
        );
        registry.register(
            "cluster_panic",
            "1 while the cluster is in panic mode: fewer than panic_threshold percent of its endpoints are eligible, so requests go to all of them",
            m.cluster_panic.clone(),
        );
        registry.register(
            "cluster_panic_entries",
            "Times the cluster entered panic mode",
            m.cluster_panic_entries.clone(),
        );
        registry.register(
            "upstream_retries",
            "Retries sent, by the failure that caused them (connect_failure, refused_stream, reset, per_try_timeout, status)",
            m.upstream_retries.clone(),
        );
        registry.register(
            "upstream_retry_overflow",
            "Retries not sent because the cluster's retry budget was spent",
            m.upstream_retry_overflow.clone(),
        );
        registry.register(
            "circuit_breaker_overflow",
            "Requests failed at once (503 overflow) because a cluster circuit breaker was at its limit, by breaker (max_connections, max_pending_requests, max_requests)",
            m.circuit_breaker_overflow.clone(),
        );
        registry.register(
            "circuit_breaker_remaining",
            "Capacity left under each cluster circuit breaker (limit minus current use), updated every 100 ms",
            m.circuit_breaker_remaining.clone(),
        );
        registry.register(
            "endpoint_breaker_opens",
            "Times an endpoint's consecutive-failure breaker opened (not counting re-opens after a failed probe)",
            m.endpoint_breaker_opens.clone(),
        );
        registry.register(
            "endpoint_breaker_open_duration_seconds",
            "Time an endpoint's breaker stayed open, from opening until a probe closed it",
            m.endpoint_breaker_open_duration.clone(),
        );
        registry.register(
            "endpoint_ejected",
            "1 while outlier detection has the endpoint ejected for failing real traffic",
            m.endpoint_ejected.clone(),
        );
        registry.register(
            "outlier_ejections",
            "Endpoints ejected by outlier detection, by detector (consecutive_5xx, consecutive_gateway_failure, success_rate, failure_percentage)",
            m.outlier_ejections.clone(),
        );
        registry.register(
            "outlier_ejections_overflow",
            "Outliers left in rotation because ejecting them would pass max_ejection_percent, by detector",
            m.outlier_ejections_overflow.clone(),
        );
        registry.register(
            "config_reload",
            "Whole-config reloads (SIGHUP, POST /reload, file watch), by result (success, failure); a failed reload changes nothing",
            m.config_reloads.clone(),
        );
        registry.register(
            "config_generation",
            "Generation of the config in force: 1 at start, +1 per applied reload",
            m.config_generation.clone(),
        );
        registry.register(
            "config_last_reload_timestamp_seconds",
            "When the last reload was attempted, Unix seconds (0: none yet)",
            m.config_last_reload_timestamp.clone(),
        );
        registry.register(
            "config_last_reload_success",
            "1 if the last reload attempt was applied (or none was made yet), 0 if it was refused",
            m.config_last_reload_success.clone(),
        );
        registry.register(
            "admin_unauthorized",
            "Admin write actions refused: a missing or wrong bearer token, or no token configured off loopback",
            m.admin_unauthorized.clone(),
        );
        registry.register(
            "health_transitions",
            "Endpoint health changes; result is the new state (healthy, unhealthy)",
            m.health_transitions.clone(),
        );
        registry.register(
            "downstream_connections_refused",
            "Client connections closed without being served, by reason (max_connections, untrusted_source, bad_proxy_header, inspect_timeout; L4 also not_tls, no_route, no_healthy_upstream, cluster_max_connections, upstream_connect_failure, client_closed)",
            m.downstream_refused.clone(),
        );
        registry.register(
            "downstream_received_bytes",
            "Bytes received from clients on L4 listeners",
            m.downstream_received_bytes.clone(),
        );
        registry.register(
            "downstream_sent_bytes",
            "Bytes sent to clients on L4 listeners",
            m.downstream_sent_bytes.clone(),
        );
        registry.register(
            "downstream_flow_duration_seconds",
            "Lifetime of L4 flows (TCP connections, UDP sessions) from accept to close",
            m.downstream_flow_duration.clone(),
        );
        registry.register(
            "udp_sessions",
            "UDP sessions opened (one per client address until idle)",
            m.udp_sessions.clone(),
        );
        registry.register(
            "udp_active_sessions",
            "UDP sessions open now",
            m.udp_active_sessions.clone(),
        );
        registry.register(
            "udp_dropped_datagrams",
            "UDP datagrams dropped, by reason (max_sessions, no_healthy_upstream, upstream_error)",
            m.udp_dropped_datagrams.clone(),
        );
        registry.register(
            "local_replies",
            "Responses fulcrum made itself instead of an origin, by reason (the x-fulcrum-reason value: no_route, malformed_request, request_body_timeout, upstream_timeout, ...)",
            m.local_replies.clone(),
        );
        registry.register(
            "websocket_upgrades",
            "WebSocket connections upgraded (the origin's 101 relayed, or 200 to an HTTP/2 extended CONNECT)",
            m.websocket_upgrades.clone(),
        );
        registry.register(
            "websocket_active",
            "WebSocket connections open now",
            m.websocket_active.clone(),
        );
        registry.register(
            "websocket_duration_seconds",
            "Lifetime of WebSocket connections from the upgrade to close",
            m.websocket_duration.clone(),
        );
        registry.register(
            "upstream_flows",
            "L4 flows forwarded to each endpoint",
            m.upstream_flows.clone(),
        );
        registry.register(
            "upstream_active_flows",
            "L4 flows open to each endpoint",
            m.upstream_active_flows.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Failed L4 connects to each endpoint (refused, unreachable, timeout)",
            m.upstream_connect_failures.clone(),
        );
        registry.register(
            "upstream_connect_duration_seconds",
            "Time to establish an L4 connection to each endpoint",
            m.upstream_connect_duration.clone(),
        );
        registry.register(
            "upstream_sent_bytes",
            "Bytes sent to each endpoint by L4 flows",
            m.upstream_sent_bytes.clone(),
        );
        registry.register(
            "upstream_received_bytes",
            "Bytes received from each endpoint by L4 flows",
            m.upstream_received_bytes.clone(),
        );
        registry.register(
            "downstream_tls_handshakes",
            "Completed TLS handshakes on terminating listeners, by version and full/resumed",
            m.tls_handshakes.clone(),
        );
        registry.register(
            "downstream_tls_handshake_errors",
            "Failed TLS handshakes, by reason (no_shared_cipher, version, unknown_sni, bad_certificate, protocol, timeout, client_closed...)",
            m.tls_handshake_errors.clone(),
        );
        registry.register(
            "downstream_tls_handshake_duration_seconds",
            "Time from accepting a connection to a completed TLS handshake",
            m.tls_handshake_duration.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "notAfter of each served certificate, Unix seconds (alert when it gets near)",
            m.tls_certificate_expiry.clone(),
        );
        registry.register(
            "tls_reload_failures",
            "Certificate or ticket-key reloads refused because a file did not load (the previous ones keep serving)",
            m.tls_reload_failures.clone(),
        );
        registry.register(
            "downstream_early_data_requests",
            "Requests that arrived as TLS 1.3 early data (before the handshake completed), by outcome: forwarded (safe method, sent with Early-Data: 1) or too_early (answered 425)",
            m.early_data_requests.clone(),
        );
        registry.register(
            "upstream_tls_reload_failures",
            "Reloads of a cluster's CA bundle or client certificate refused because a file did not load (the previous ones stay in use)",
            m.upstream_tls_reload_failures.clone(),
        );
        registry.register(
            "upstream_tls_handshakes",
            "Completed TLS handshakes with endpoints (re-encryption), by cluster, version and full/resumed",
            m.upstream_tls_handshakes.clone(),
        );
        registry.register(
            "upstream_tls_handshake_errors",
            "Failed TLS handshakes with endpoints, by reason (unknown_ca, name_mismatch, expired, bad_certificate, client_certificate_rejected, alpn, version, no_shared_cipher, protocol, timeout, closed...)",
            m.upstream_tls_handshake_errors.clone(),
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
    pub draining: Gauge,
    pub eligible: Gauge,
    pub ejected: Gauge,
    /// Present when an L4 listener uses the cluster, so HTTP-only endpoints
    /// export no empty flow series.
    pub flows: Option<EndpointFlowMetrics>,
}

/// Per-endpoint L4 handles.
#[derive(Clone, Debug)]
pub struct EndpointFlowMetrics {
    pub flows: Counter,
    pub active_flows: Gauge,
    pub connect_failures: Counter,
    pub connect_duration: LatencyHistogram,
    pub sent_bytes: Counter,
    pub received_bytes: Counter,
}

impl EndpointMetrics {
    pub fn new(m: &Metrics, cluster: &str, endpoint: &str, l4: bool) -> Self {
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
            draining: m.endpoint_draining.get_or_create(&labels).clone(),
            eligible: m.endpoint_eligible.get_or_create(&labels).clone(),
            ejected: m.endpoint_ejected.get_or_create(&labels).clone(),
            flows: l4.then(|| EndpointFlowMetrics {
                flows: m.upstream_flows.get_or_create(&labels).clone(),
                active_flows: m.upstream_active_flows.get_or_create(&labels).clone(),
                connect_failures: m.upstream_connect_failures.get_or_create(&labels).clone(),
                connect_duration: m.upstream_connect_duration.get_or_create(&labels).clone(),
                sent_bytes: m.upstream_sent_bytes.get_or_create(&labels).clone(),
                received_bytes: m.upstream_received_bytes.get_or_create(&labels).clone(),
            }),
        }
    }
}

/// A cluster's upstream connection handles (`upstream_connections`,
/// `upstream_active_connections`), resolved when the snapshot is built.
#[derive(Clone, Debug)]
pub struct ConnectionMetrics {
    pub opened: Counter,
    pub active: Gauge,
}

impl ConnectionMetrics {
    pub fn new(m: &Metrics, cluster: &str) -> Self {
        let labels = ClusterLabels {
            cluster: cluster.to_string(),
        };
        Self {
            opened: m.upstream_connections.get_or_create(&labels).clone(),
            active: m.upstream_active_connections.get_or_create(&labels).clone(),
        }
    }
}

/// Pre-resolved handles for one listener.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    pub responses: [Counter; 5],
    pub active_connections: Gauge,
    pub connections: Counter,
    listener: String,
    refused: Family<ListenerReasonLabels, Counter>,
    early_data: Family<ListenerOutcomeLabels, Counter>,
    local_replies: Family<ListenerReasonLabels, Counter>,
    pub flows: Option<ListenerFlowMetrics>,
    pub websocket: WebSocketMetrics,
}

/// Per-listener WebSocket handles.
#[derive(Clone, Debug)]
pub struct WebSocketMetrics {
    pub upgrades: Counter,
    pub active: Gauge,
    pub duration: LatencyHistogram,
}

/// Per-listener L4 handles.
#[derive(Clone, Debug)]
pub struct ListenerFlowMetrics {
    listener: String,
    dropped: Family<ListenerReasonLabels, Counter>,
    pub received_bytes: Counter,
    pub sent_bytes: Counter,
    pub flow_duration: LatencyHistogram,
    pub udp_sessions: Counter,
    pub udp_active_sessions: Gauge,
}

impl ListenerMetrics {
    /// A connection closed without being served (rare: the label lookup is fine here).
    pub fn refused(&self, reason: &'static str) {
        self.refused
            .get_or_create(&ListenerReasonLabels {
                listener: self.listener.clone(),
                reason,
            })
            .inc();
    }
}

impl ListenerMetrics {
    /// A response fulcrum made itself (an error path: the label lookup is fine here).
    pub fn local_reply(&self, reason: &'static str) {
        self.local_replies
            .get_or_create(&ListenerReasonLabels {
                listener: self.listener.clone(),
                reason,
            })
            .inc();
    }

    /// A request that came as TLS early data: "forwarded" or "too_early".
    pub fn early_data(&self, outcome: &'static str) {
        self.early_data
            .get_or_create(&ListenerOutcomeLabels {
                listener: self.listener.clone(),
                outcome,
            })
            .inc();
    }
}

impl ListenerFlowMetrics {
    /// A UDP datagram dropped.
    pub fn dropped(&self, reason: &'static str) {
        self.dropped
            .get_or_create(&ListenerReasonLabels {
                listener: self.listener.clone(),
                reason,
            })
            .inc();
    }
}

impl ListenerMetrics {
    pub fn new(m: &Metrics, listener: &str, l4: bool) -> Self {
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
            listener: listener.to_string(),
            refused: m.downstream_refused.clone(),
            early_data: m.early_data_requests.clone(),
            local_replies: m.local_replies.clone(),
            websocket: WebSocketMetrics {
                upgrades: m.websocket_upgrades.get_or_create(&labels).clone(),
                active: m.websocket_active.get_or_create(&labels).clone(),
                duration: m.websocket_duration.get_or_create(&labels).clone(),
            },
            flows: l4.then(|| ListenerFlowMetrics {
                listener: listener.to_string(),
                dropped: m.udp_dropped_datagrams.clone(),
                received_bytes: m.downstream_received_bytes.get_or_create(&labels).clone(),
                sent_bytes: m.downstream_sent_bytes.get_or_create(&labels).clone(),
                flow_duration: m.downstream_flow_duration.get_or_create(&labels).clone(),
                udp_sessions: m.udp_sessions.get_or_create(&labels).clone(),
                udp_active_sessions: m.udp_active_sessions.get_or_create(&labels).clone(),
            }),
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
