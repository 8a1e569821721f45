//! The config file as written: serde structs that mirror the TOML exactly.
//!
//! Fields that validation must point at are `Spanned`, so an error can name the
//! line and column. Nothing here is trusted: `validate` turns it into the checked
//! domain types of [`super::model`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
pub struct FileConfig {
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub runtime: RuntimeSection,
    #[serde(default)]
    pub listeners: Vec<ListenerSection>,
    #[serde(default)]
    pub clusters: Vec<ClusterSection>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdminSection {
    pub address: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RuntimeSection {
    pub workers: Option<Spanned<i64>>,
    pub log_level: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub shutdown_delay: Option<Spanned<String>>,
    pub watch_config: Option<Spanned<bool>>,
    pub upgrade_socket: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ListenerSection {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub protocol: Option<Spanned<String>>,
    pub request_header_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    /// http: a WebSocket with no byte either way for this long is closed.
    pub tunnel_idle_timeout: Option<Spanned<String>>,
    /// http: a client that sends no request body byte for this long gets 408.
    pub request_body_timeout: Option<Spanned<String>>,
    /// http: largest request head (HTTP/1.1) or decoded header list (HTTP/2), bytes.
    pub max_request_header_size: Option<Spanned<i64>>,
    /// http: most header fields in one request.
    pub max_request_headers: Option<Spanned<i64>>,
    /// http: streams one HTTP/2 client may have open at once.
    pub http2_max_concurrent_streams: Option<Spanned<i64>>,
    /// tcp and udp: the cluster every flow goes to; tls_passthrough: the
    /// cluster for a ClientHello no route matches.
    pub cluster: Option<Spanned<String>>,
    /// L4: what hashing policies hash, "five_tuple" or "source_ip".
    pub hash_key: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub max_sessions: Option<Spanned<i64>>,
    pub accept_proxy_protocol_from: Option<Spanned<Vec<Spanned<String>>>>,
    pub inspect_timeout: Option<Spanned<String>>,
    /// TLS termination (HTTP listeners only).
    pub tls: Option<Spanned<TlsSection>>,
    /// Plain HTTP listeners: answer every request with a redirect to https.
    pub redirect_to_https: Option<Spanned<bool>>,
    /// The port the redirect points to (default 443, left out of the URL).
    pub https_port: Option<Spanned<i64>>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

#[derive(Debug, Deserialize)]
pub struct TlsSection {
    #[serde(default)]
    pub certificates: Vec<Spanned<CertificateSection>>,
    pub min_version: Option<Spanned<String>>,
    pub alpn: Option<Vec<Spanned<String>>>,
    pub cipher_suites: Option<Vec<Spanned<String>>>,
    pub handshake_timeout: Option<Spanned<String>>,
    pub strict_sni: Option<bool>,
    pub session_ticket_keys: Option<Spanned<String>>,
    pub client_ca: Option<Spanned<String>>,
    /// "required" (default with client_ca) or "optional".
    pub client_certificate: Option<Spanned<String>>,
    pub client_certificate_header: Option<Spanned<String>>,
    /// `Strict-Transport-Security` value added to responses.
    pub hsts: Option<Spanned<String>>,
    /// Accept TLS 1.3 0-RTT data (off by default).
    pub early_data: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
pub struct CertificateSection {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
pub struct RouteSection {
    pub host: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    pub cluster: Spanned<String>,
    #[serde(default)]
    pub hash_policy: Vec<Spanned<HashSourceSection>>,
    pub affinity_cookie: Option<Spanned<AffinityCookieSection>>,
    /// Replaces the cluster's retry policy for requests on this route.
    pub retry_policy: Option<Spanned<RetryPolicySection>>,
}

/// One entry of a route's `hash_policy` list: exactly one field is set.
#[derive(Debug, Deserialize)]
pub struct HashSourceSection {
    pub source_ip: Option<bool>,
    pub header: Option<Spanned<String>>,
    pub cookie: Option<Spanned<String>>,
    pub query_parameter: Option<Spanned<String>>,
    pub path: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct AffinityCookieSection {
    pub name: Spanned<String>,
    pub ttl: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ClusterSection {
    pub name: Spanned<String>,
    pub policy: Option<Spanned<String>>,
    pub choice_count: Option<Spanned<i64>>,
    pub maglev_table_size: Option<Spanned<i64>>,
    pub ring_min_size: Option<Spanned<i64>>,
    pub ring_max_size: Option<Spanned<i64>>,
    pub balance_factor: Option<Spanned<f64>>,
    pub ewma_decay: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub proxy_protocol: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub connect_attempts: Option<Spanned<i64>>,
    pub panic_threshold: Option<Spanned<i64>>,
    pub endpoints: Spanned<Vec<EndpointSection>>,
    pub health_check: Option<Spanned<HealthCheckSection>>,
    pub outlier_detection: Option<Spanned<OutlierDetectionSection>>,
    pub retry_policy: Option<Spanned<RetryPolicySection>>,
    pub retry_budget: Option<Spanned<RetryBudgetSection>>,
    pub slow_start: Option<Spanned<SlowStartSection>>,
    pub circuit_breakers: Option<Spanned<CircuitBreakersSection>>,
    /// TLS to the endpoints (re-encryption).
    pub tls: Option<Spanned<UpstreamTlsSection>>,
}

#[derive(Debug, Deserialize)]
pub struct UpstreamTlsSection {
    /// PEM bundle endpoint certificates must chain to; unset: the system roots.
    pub ca: Option<Spanned<String>>,
    /// Sent as SNI and verified against the endpoint's certificate.
    pub sni: Option<Spanned<String>>,
    /// Client certificate presented to endpoints that ask for one (mTLS).
    pub certificate: Option<Spanned<CertificateSection>>,
    pub min_version: Option<Spanned<String>>,
    /// Accept any endpoint certificate. Named to be noticed; logs a warning.
    pub insecure_skip_verify: Option<Spanned<bool>>,
}

/// Passive health checking; on by default, `enabled = false` turns it off.
#[derive(Debug, Default, Deserialize)]
pub struct OutlierDetectionSection {
    pub enabled: Option<Spanned<bool>>,
    pub consecutive_5xx: Option<Spanned<i64>>,
    pub consecutive_gateway_failure: Option<Spanned<i64>>,
    pub interval: Option<Spanned<String>>,
    pub base_ejection_time: Option<Spanned<String>>,
    pub max_ejection_time: Option<Spanned<String>>,
    pub max_ejection_percent: Option<Spanned<i64>>,
    pub success_rate_stdev_factor: Option<Spanned<i64>>,
    pub success_rate_minimum_hosts: Option<Spanned<i64>>,
    pub success_rate_request_volume: Option<Spanned<i64>>,
    pub failure_percentage_threshold: Option<Spanned<i64>>,
    pub failure_percentage_minimum_hosts: Option<Spanned<i64>>,
    pub failure_percentage_request_volume: Option<Spanned<i64>>,
}

/// When a failed request is tried again (cluster default, or a route's own).
#[derive(Debug, Default, Deserialize)]
pub struct RetryPolicySection {
    pub retry_on: Option<Spanned<Vec<Spanned<String>>>>,
    pub num_retries: Option<Spanned<i64>>,
    pub per_try_timeout: Option<Spanned<String>>,
    pub retriable_status_codes: Option<Spanned<Vec<Spanned<i64>>>>,
    pub retry_non_idempotent: Option<Spanned<bool>>,
    pub backoff_base_interval: Option<Spanned<String>>,
    pub backoff_max_interval: Option<Spanned<String>>,
}

/// Per-cluster limits (Envoy's circuit breaker thresholds).
#[derive(Debug, Default, Deserialize)]
pub struct CircuitBreakersSection {
    pub max_connections: Option<Spanned<i64>>,
    pub max_pending_requests: Option<Spanned<i64>>,
    pub max_requests: Option<Spanned<i64>>,
    pub max_retries: Option<Spanned<i64>>,
    /// The per-endpoint breaker: opens after this many failures in a row.
    pub consecutive_failures: Option<Spanned<i64>>,
    pub open_interval: Option<Spanned<String>>,
    pub half_open_probes: Option<Spanned<i64>>,
}

/// Ramping endpoints that join after start-up; `enabled = false` turns it off.
#[derive(Debug, Default, Deserialize)]
pub struct SlowStartSection {
    pub enabled: Option<Spanned<bool>>,
    pub window: Option<Spanned<String>>,
    pub aggression: Option<Spanned<f64>>,
    pub min_weight_percent: Option<Spanned<i64>>,
}

/// The share of a cluster's load retries may add; `enabled = false` lifts it.
#[derive(Debug, Default, Deserialize)]
pub struct RetryBudgetSection {
    pub enabled: Option<Spanned<bool>>,
    pub budget_percent: Option<Spanned<i64>>,
    pub min_retry_concurrency: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
pub struct EndpointSection {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub zone: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct HealthCheckSection {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub healthy_threshold: Option<Spanned<i64>>,
    pub unhealthy_threshold: Option<Spanned<i64>>,
    pub path: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub expected_statuses: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The field names serde knows for the section at `path` (a dotted path with
/// array indices removed), for did-you-mean suggestions on unknown fields.
pub fn known_fields(section: &[&str]) -> &'static [&'static str] {
    use super::introspect::fields_of;
    match section {
        [] => fields_of::<FileConfig>(),
        ["admin"] => fields_of::<AdminSection>(),
        ["runtime"] => fields_of::<RuntimeSection>(),
        ["listeners"] => fields_of::<ListenerSection>(),
        ["listeners", "routes"] => fields_of::<RouteSection>(),
        ["listeners", "routes", "hash_policy"] => fields_of::<HashSourceSection>(),
        ["listeners", "routes", "affinity_cookie"] => fields_of::<AffinityCookieSection>(),
        ["clusters"] => fields_of::<ClusterSection>(),
        ["clusters", "endpoints"] => fields_of::<EndpointSection>(),
        ["clusters", "health_check"] => fields_of::<HealthCheckSection>(),
        ["clusters", "outlier_detection"] => fields_of::<OutlierDetectionSection>(),
        ["clusters", "retry_policy"] | ["listeners", "routes", "retry_policy"] => {
            fields_of::<RetryPolicySection>()
        }
        ["clusters", "retry_budget"] => fields_of::<RetryBudgetSection>(),
        ["clusters", "slow_start"] => fields_of::<SlowStartSection>(),
        ["clusters", "circuit_breakers"] => fields_of::<CircuitBreakersSection>(),
        ["clusters", "tls"] => fields_of::<UpstreamTlsSection>(),
        ["clusters", "tls", "certificate"] => fields_of::<CertificateSection>(),
        ["listeners", "tls"] => fields_of::<TlsSection>(),
        ["listeners", "tls", "certificates"] => fields_of::<CertificateSection>(),
        _ => &[],
    }
}
