//! The checked config: domain types that `validate` produces and the rest of
//! fulcrum consumes. Every value here has been checked ("parse, don't
//! validate"), references are resolved to indices, and defaults are applied.
//! `Serialize` renders the effective config for the admin `GET /config`.

use std::net::SocketAddr;
use std::time::Duration;

use fulcrum_balance::Policy;
use serde::{Serialize, Serializer};

pub use crate::route::hash_policy::{AffinityCookie, HashPolicy, HashSource};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub admin: AdminConfig,
    pub runtime: RuntimeConfig,
    pub listeners: Vec<ListenerConfig>,
    pub clusters: Vec<ClusterConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// A file holding the bearer token write actions (reload, drain) must
    /// present; required for them when `address` is not loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<std::path::PathBuf>,
}

impl AdminConfig {
    /// Write actions from anywhere but this host need a token.
    pub fn is_loopback(&self) -> bool {
        self.address.ip().is_loopback()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeConfig {
    /// Worker threads; `validate` resolves "unset" to the available cores.
    pub workers: usize,
    pub log_level: Option<String>,
    #[serde(serialize_with = "human_duration")]
    pub drain_timeout: Duration,
    /// On SIGTERM, `/ready` answers 503 this long before listeners stop
    /// accepting, so a load balancer in front notices first.
    #[serde(serialize_with = "human_duration")]
    pub shutdown_delay: Duration,
    /// Reload the config whenever the file changes (as SIGHUP does).
    pub watch_config: bool,
    /// A Unix socket where a new fulcrum process (`run --upgrade`, or one
    /// started by SIGUSR2) takes over the listening sockets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_socket: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerConfig {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: ListenerProtocol,
    #[serde(serialize_with = "human_duration")]
    pub request_header_timeout: Duration,
    /// http: no request in flight for this long; tcp: no byte either way;
    /// udp: no datagram either way on a session.
    #[serde(serialize_with = "human_duration")]
    pub idle_timeout: Duration,
    /// http: an upgraded connection (WebSocket) with no byte either way for
    /// this long is closed (HAProxy's `timeout tunnel`).
    #[serde(serialize_with = "human_duration")]
    pub tunnel_idle_timeout: Duration,
    /// http: resource bounds on what one client may make fulcrum hold.
    pub limits: HttpLimits,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// tcp/udp: the target cluster; tls_passthrough: the default cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// What L4 hashing policies hash for a flow.
    pub hash_key: FlowHashKey,
    /// Open client connections this listener accepts (all workers); past it new ones are closed at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// udp: concurrent sessions; datagrams that would open one more are dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Peers allowed (and required) to open with a PROXY protocol header; empty: PROXY protocol off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accept_proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Time allowed for the PROXY header and (tls_passthrough) the ClientHello.
    #[serde(serialize_with = "human_duration")]
    pub inspect_timeout: Duration,
    /// http: terminate TLS with these settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// http without tls: redirect every request to https on this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_to_https: Option<u16>,
}

/// What one HTTP client may make fulcrum hold; defaults and their reasons
/// are in `config::defaults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpLimits {
    /// Time allowed between two reads of a request body (the whole body
    /// may take longer, as long as it keeps moving).
    #[serde(serialize_with = "human_duration")]
    pub request_body_timeout: Duration,
    /// Largest request head (HTTP/1.1: request line and fields) or decoded
    /// header list (HTTP/2, RFC 9113 6.5.2), in bytes.
    pub max_request_header_size: u32,
    /// Most header fields in one request.
    pub max_request_headers: u32,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_concurrent_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        use super::defaults;
        Self {
            request_body_timeout: defaults::REQUEST_BODY_TIMEOUT,
            max_request_header_size: defaults::MAX_REQUEST_HEADER_SIZE,
            max_request_headers: defaults::MAX_REQUEST_HEADERS,
            http2_max_concurrent_streams: defaults::HTTP2_MAX_CONCURRENT_STREAMS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    /// The first is the default for clients whose SNI matches no certificate.
    pub certificates: Vec<CertificateFiles>,
    pub min_version: TlsVersion,
    /// Offered in this order; the client's preference among them wins.
    pub alpn: Vec<String>,
    /// IANA names; empty: the provider's defaults (all AEAD suites).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    #[serde(serialize_with = "human_duration")]
    pub handshake_timeout: Duration,
    /// Refuse clients whose SNI matches no certificate instead of serving the default.
    pub strict_sni: bool,
    /// Session-ticket keys shared by every instance (first encrypts, all decrypt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ticket_keys: Option<std::path::PathBuf>,
    /// CA bundle client certificates are verified against (mTLS); none: not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<std::path::PathBuf>,
    /// With `client_ca`: refuse clients without a certificate (else let them in unnamed).
    pub client_certificate_required: bool,
    /// Carries the verified client certificate upstream; removed from client requests.
    pub client_certificate_header: String,
    /// `Strict-Transport-Security` added to responses that do not set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hsts: Option<String>,
    /// Accept TLS 1.3 0-RTT data: requests that arrive before the handshake
    /// completes are forwarded with `Early-Data: 1` if their method is safe,
    /// else answered 425 (RFC 8470).
    pub early_data: bool,
}

/// Paths are resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and cleartext HTTP/2 on one port.
    Http,
    /// TCP forwarded byte for byte to `cluster`.
    Tcp,
    /// UDP datagrams relayed per client address (a session) to `cluster`.
    Udp,
    /// TLS forwarded untouched, the cluster chosen by the ClientHello's SNI.
    TlsPassthrough,
}

impl ListenerProtocol {
    pub fn is_l4(self) -> bool {
        !matches!(self, ListenerProtocol::Http)
    }
}

/// The flow key L4 hashing policies (maglev, ring_hash...) hash: with the
/// same endpoints, every instance sends a flow to the same endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowHashKey {
    /// Source and destination address and port, and the protocol (Katran, Maglev).
    FiveTuple,
    /// The client IP only: all of one client's flows go to one endpoint.
    SourceIp,
}

/// A reference to a cluster, resolved at load: rendered as its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRef {
    pub name: String,
    /// Index in `Config::clusters`.
    pub index: usize,
}

impl Serialize for ClusterRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// PROXY protocol version sent to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteConfig {
    pub host: HostMatch,
    pub path_prefix: String,
    /// Name of the target cluster, for display.
    pub cluster: String,
    /// Index of the target cluster in `Config::clusters`.
    #[serde(skip)]
    pub cluster_index: usize,
    /// What the hashing balancers hash for requests on this route.
    #[serde(skip_serializing_if = "HashPolicy::is_empty")]
    pub hash_policy: HashPolicy,
    /// Replaces the cluster's retry policy on this route (shared, so a
    /// request holds it without copying).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<std::sync::Arc<RetryPolicy>>,
}

/// How a route matches the request's host (the `Host` header or the HTTP/2
/// `:authority`, port removed, compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// `api.example.com`, stored lowercase.
    Exact(String),
    /// `*.example.com`: stored as `.example.com`; matches any non-empty label(s) before it.
    Suffix(String),
}

impl Serialize for HostMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HostMatch::Any => s.serialize_str("*"),
            HostMatch::Exact(h) => s.serialize_str(h),
            HostMatch::Suffix(suffix) => s.serialize_str(&format!("*{suffix}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (h2c), multiplexed.
    Http2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterConfig {
    pub name: String,
    #[serde(serialize_with = "policy_name")]
    pub policy: Policy,
    pub protocol: UpstreamProtocol,
    #[serde(serialize_with = "human_duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "human_duration")]
    pub request_timeout: Duration,
    #[serde(serialize_with = "human_duration")]
    pub idle_timeout: Duration,
    /// L4: send a PROXY protocol header first on every upstream connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// L4: open flows to this cluster (all workers); past it new ones are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// L4: endpoints tried per flow when a connect fails (refused, timeout).
    pub connect_attempts: u32,
    /// Percent of endpoints (draining ones aside) that must be eligible;
    /// below it the cluster balances over all of them (panic mode, fail
    /// open). 0 turns panic mode off.
    pub panic_threshold: u32,
    pub endpoints: Vec<EndpointConfig>,
    pub health_check: Option<HealthCheckConfig>,
    /// Passive health checking; none: turned off (`enabled = false`).
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// Retries for requests to this cluster (a route may bring its own).
    pub retry_policy: RetryPolicy,
    /// Retries in flight at most this share of active requests; none: no limit.
    pub retry_budget: Option<RetryBudget>,
    /// Ramping endpoints that join after start-up; none: off (and always
    /// for hash policies, whose tables must not move).
    pub slow_start: Option<SlowStartConfig>,
    /// Limits past which requests fail at once (503 `overflow`).
    pub circuit_breakers: CircuitBreakers,
    /// TLS to the endpoints (requests and health checks); none: plain TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
}

/// How fulcrum originates TLS to a cluster's endpoints (re-encryption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamTlsConfig {
    /// CA bundle endpoint certificates must chain to; none: the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    /// Sent as SNI and the name the certificate must carry; none: no SNI, and
    /// the certificate must name the endpoint's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Presented when an endpoint asks for a client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateFiles>,
    pub min_version: TlsVersion,
    /// Endpoint certificates are not verified at all.
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointConfig {
    pub address: SocketAddr,
    pub weight: u32,
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheckConfig {
    pub kind: HealthCheckKind,
    #[serde(serialize_with = "human_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "human_duration")]
    pub jitter: Duration,
    #[serde(serialize_with = "human_duration")]
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// Healthy when a TCP connection is accepted within the timeout.
    Tcp,
    /// Healthy when the response status is in one of `expected_statuses`.
    Http {
        method: String,
        path: String,
        host: Option<String>,
        expected_statuses: Vec<StatusRange>,
    },
}

/// Outlier detection (passive health): when real traffic ejects an
/// endpoint. Field names and semantics are Envoy's; a count of 0 turns its
/// detector off. See `cluster::outlier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutlierDetectionConfig {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    #[serde(serialize_with = "human_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "human_duration")]
    pub base_ejection_time: Duration,
    #[serde(serialize_with = "human_duration")]
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
    /// Thousandths (Envoy's convention): 1900 is 1.9 standard deviations.
    pub success_rate_stdev_factor: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    /// Percent; none: the failure-percentage detector is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_threshold: Option<u32>,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
}

impl Default for OutlierDetectionConfig {
    fn default() -> Self {
        use super::defaults::*;
        Self {
            consecutive_5xx: OUTLIER_CONSECUTIVE_5XX,
            consecutive_gateway_failure: OUTLIER_CONSECUTIVE_GATEWAY_FAILURE,
            interval: OUTLIER_INTERVAL,
            base_ejection_time: OUTLIER_BASE_EJECTION_TIME,
            max_ejection_time: OUTLIER_MAX_EJECTION_TIME,
            max_ejection_percent: OUTLIER_MAX_EJECTION_PERCENT,
            success_rate_stdev_factor: OUTLIER_SUCCESS_RATE_STDEV_FACTOR,
            success_rate_minimum_hosts: OUTLIER_SUCCESS_RATE_MINIMUM_HOSTS,
            success_rate_request_volume: OUTLIER_SUCCESS_RATE_REQUEST_VOLUME,
            failure_percentage_threshold: None,
            failure_percentage_minimum_hosts: OUTLIER_FAILURE_PERCENTAGE_MINIMUM_HOSTS,
            failure_percentage_request_volume: OUTLIER_FAILURE_PERCENTAGE_REQUEST_VOLUME,
        }
    }
}

/// When a failed request is tried again, on an endpoint not tried yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    pub retry_on: Vec<RetryOn>,
    /// Attempts after the first; 0: no retries.
    pub num_retries: u32,
    /// Bounds each attempt (to the response headers); none: only the
    /// cluster's `request_timeout`, which bounds all attempts together.
    #[serde(
        serialize_with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_try_timeout: Option<Duration>,
    /// Statuses `retriable-status-codes` retries.
    pub retriable_status_codes: Vec<u16>,
    /// Conditions where the origin may have seen the request (`reset`,
    /// `gateway-error`, `5xx`, statuses) retry only idempotent methods
    /// unless this is set.
    pub retry_non_idempotent: bool,
    #[serde(serialize_with = "human_duration")]
    pub backoff_base_interval: Duration,
    #[serde(serialize_with = "human_duration")]
    pub backoff_max_interval: Duration,
}

/// A condition a request is retried on (Envoy's `retry_on` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// No connection could be made: the request never left fulcrum.
    ConnectFailure,
    /// The HTTP/2 origin refused the stream before processing it.
    RefusedStream,
    /// The connection reset, closed or broke mid-exchange, or a per-try
    /// timeout fired: the origin may have seen the request.
    Reset,
    /// 502, 503 and 504 responses, and everything `reset` covers.
    GatewayError,
    /// Any 5xx response, and everything `reset` covers.
    #[serde(rename = "5xx")]
    ServerError,
    /// The statuses in `retriable_status_codes`.
    RetriableStatusCodes,
}

impl RetryOn {
    pub const ALL: [(&'static str, RetryOn); 6] = [
        ("connect-failure", RetryOn::ConnectFailure),
        ("refused-stream", RetryOn::RefusedStream),
        ("reset", RetryOn::Reset),
        ("gateway-error", RetryOn::GatewayError),
        ("5xx", RetryOn::ServerError),
        ("retriable-status-codes", RetryOn::RetriableStatusCodes),
    ];
}

/// Envoy's cluster circuit breaker thresholds (HTTP clusters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitBreakers {
    /// Upstream connections open (HTTP/1.1 clusters).
    pub max_connections: u32,
    /// Requests waiting for a new upstream connection.
    pub max_pending_requests: u32,
    /// Requests in flight to the cluster.
    pub max_requests: u32,
    /// Retries in flight, when the retry budget is turned off.
    pub max_retries: u32,
    /// The per-endpoint consecutive-failure breaker; none: off (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointBreakerConfig>,
}

/// A per-endpoint breaker (see `cluster::breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EndpointBreakerConfig {
    pub consecutive_failures: u32,
    #[serde(serialize_with = "human_duration")]
    pub open_interval: Duration,
    pub half_open_probes: u32,
}

/// How an endpoint joining after start-up ramps up (see `cluster::slow_start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlowStartConfig {
    #[serde(serialize_with = "human_duration")]
    pub window: Duration,
    /// Thousandths: 1000 is linear, more ramps faster early.
    #[serde(rename = "aggression", serialize_with = "thousandths")]
    pub aggression_milli: u32,
    pub min_weight_percent: u32,
}

fn thousandths<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(f64::from(*v) / 1000.0)
}

/// Envoy's retry budget: retries in flight at most `budget_percent` of the
/// cluster's active requests, and always `min_retry_concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryBudget {
    pub budget_percent: u32,
    pub min_retry_concurrency: u32,
}

impl RetryBudget {
    /// Whether one more retry fits with `active_retries` retries and
    /// `active_requests` requests in flight.
    pub fn allows(&self, active_retries: u64, active_requests: u64) -> bool {
        let share = active_requests.saturating_mul(u64::from(self.budget_percent)) / 100;
        active_retries < share.max(u64::from(self.min_retry_concurrency))
    }
}

/// An inclusive range of HTTP status codes, written `200` or `200-399`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.low == self.high {
            s.serialize_str(&self.low.to_string())
        } else {
            s.serialize_str(&format!("{}-{}", self.low, self.high))
        }
    }
}

fn policy_name<S: Serializer>(p: &Policy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

fn optional_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => human_duration(d, s),
        None => s.serialize_none(),
    }
}

fn human_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Renders a duration the way the config accepts it (`250ms`, `5s`, `2m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
