//! One upstream endpoint and the live state workers and the control side share
//! about it: atomics only, so the hot path takes no lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use fulcrum_balance::PeakEwma;

use super::manager::Ineligible;
use super::outlier::{Outcome, OutlierCounters};
use super::pool::IdleConnections;

use crate::telemetry::metrics::{EndpointMetrics, status_class_index};

/// One endpoint of one cluster, keyed by (cluster name, address): it lives
/// as long as some config has it, across reloads, so what it learned
/// (peak-EWMA estimate, in-flight counts, warm connections) is not reset by
/// an unrelated change. Its weight and zone are config, read from the
/// snapshot; whether it may take new requests is the cluster manager's call.
#[derive(Debug)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// `address` as text, computed once: used in metrics and logs.
    pub label: String,
    /// `address` as a URI authority, computed once: upstream request URIs use it.
    pub authority: http::uri::Authority,
    active_requests: AtomicU64,
    /// The whole cluster's in-flight counts, shared by its endpoints.
    cluster: Arc<ClusterLoad>,
    requests_total: AtomicU64,
    /// Why it takes no new requests, as last published by the control side
    /// (the only writer); read by the admin API.
    ineligible: AtomicU8,
    pub metrics: EndpointMetrics,
    /// Latency estimate for `peak_ewma` clusters; owned here so it outlives
    /// balancer rebuilds and reloads.
    pub ewma: Option<PeakEwma>,
    /// Warm HTTP/1.1 connections to it, per worker.
    pub idle: IdleConnections,
    /// What outlier detection reads: failure streaks and totals.
    pub outlier: OutlierCounters,
    /// The per-endpoint circuit breaker (used when configured).
    pub breaker: super::breaker::Breaker,
}

/// In-flight counts of a whole cluster, shared by its endpoints and kept
/// across reloads: `consistent_bounded` reads the average load in O(1), and
/// the retry budget compares retries with requests.
#[derive(Debug, Default)]
pub struct ClusterLoad {
    active_requests: AtomicU64,
    /// Retries in flight (`http::retry::acquire` counts them).
    pub active_retries: AtomicU64,
    /// Requests waiting for a new upstream connection (the
    /// `max_pending_requests` circuit breaker).
    pub pending: AtomicU64,
}

impl ClusterLoad {
    pub fn active_requests(&self) -> u64 {
        self.active_requests.load(Ordering::Relaxed)
    }
}

const UNHEALTHY: u8 = 1;
const DRAINING: u8 = 2;
const EJECTED: u8 = 4;

impl Endpoint {
    pub fn new(
        address: SocketAddr,
        metrics: EndpointMetrics,
        ewma: Option<PeakEwma>,
        cluster: Arc<ClusterLoad>,
        workers: usize,
    ) -> Self {
        metrics.healthy.set(1);
        metrics.eligible.set(1);
        let label = address.to_string();
        Self {
            address,
            authority: http::uri::Authority::from_maybe_shared(bytes::Bytes::from(label.clone()))
                .unwrap_or_else(|_| http::uri::Authority::from_static("invalid")),
            label,
            active_requests: AtomicU64::new(0),
            cluster,
            requests_total: AtomicU64::new(0),
            ineligible: AtomicU8::new(0),
            metrics,
            ewma,
            idle: IdleConnections::new(workers),
            outlier: OutlierCounters::default(),
            breaker: super::breaker::Breaker::default(),
        }
    }

    pub fn active_requests(&self) -> u64 {
        self.active_requests.load(Ordering::Relaxed)
    }

    pub fn cluster_active_requests(&self) -> u64 {
        self.cluster.active_requests()
    }

    pub fn cluster_load(&self) -> &ClusterLoad {
        &self.cluster
    }

    pub fn requests_total(&self) -> u64 {
        self.requests_total.load(Ordering::Relaxed)
    }

    /// What the cluster manager last decided about it.
    pub fn ineligible(&self) -> Ineligible {
        let bits = self.ineligible.load(Ordering::Relaxed);
        Ineligible {
            unhealthy: bits & UNHEALTHY != 0,
            draining: bits & DRAINING != 0,
            ejected: bits & EJECTED != 0,
        }
    }

    /// Records the manager's decision (control side only) and its gauges.
    pub(crate) fn set_ineligible(&self, why: Ineligible) {
        let bits = if why.unhealthy { UNHEALTHY } else { 0 }
            | if why.draining { DRAINING } else { 0 }
            | if why.ejected { EJECTED } else { 0 };
        self.ineligible.store(bits, Ordering::Relaxed);
        self.metrics.healthy.set(i64::from(!why.unhealthy));
        self.metrics.draining.set(i64::from(why.draining));
        self.metrics.ejected.set(i64::from(why.ejected));
        self.metrics.eligible.set(i64::from(!why.any()));
    }
}

/// One request in flight to an endpoint: counted from pick until the response
/// body ends (or the request fails), so least-request balancing sees requests
/// that are still streaming.
#[derive(Debug)]
pub struct ActiveRequest {
    endpoint: Arc<Endpoint>,
    started: Instant,
}

impl ActiveRequest {
    pub fn start(endpoint: Arc<Endpoint>) -> Self {
        endpoint.active_requests.fetch_add(1, Ordering::Relaxed);
        endpoint
            .cluster
            .active_requests
            .fetch_add(1, Ordering::Relaxed);
        endpoint.requests_total.fetch_add(1, Ordering::Relaxed);
        endpoint.metrics.active_requests.inc();
        Self {
            endpoint,
            started: crate::clock::now(),
        }
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Counts the response for the metrics and outlier detection, and feeds
    /// the latency estimate: time to response headers, or a failure for 5xx
    /// and 429, so an endpoint that fails fast does not look fast to `peak_ewma`.
    pub fn record_status(&self, status: u16) {
        self.endpoint.metrics.responses[status_class_index(status)].inc();
        self.endpoint.outlier.record(Outcome::of_status(status));
        if let Some(ewma) = &self.endpoint.ewma {
            let now = crate::clock::now_ns();
            if status >= 500 || status == 429 {
                ewma.observe_failure(now);
            } else {
                let rtt = u64::try_from(crate::clock::elapsed(self.started).as_nanos())
                    .unwrap_or(u64::MAX);
                ewma.observe(now, rtt);
            }
        }
    }

    /// The request got no response (connect failure, reset, timeout): a
    /// gateway failure for outlier detection.
    pub fn record_failure(&self) {
        self.endpoint.outlier.record(Outcome::GatewayFailure);
        if let Some(ewma) = &self.endpoint.ewma {
            let now = crate::clock::now_ns();
            // A slow failure (timeout) is at least as slow as it took.
            let elapsed =
                u64::try_from(crate::clock::elapsed(self.started).as_nanos()).unwrap_or(u64::MAX);
            ewma.observe(now, elapsed);
            ewma.observe_failure(now);
        }
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.endpoint
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
        self.endpoint
            .cluster
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
        self.endpoint.metrics.active_requests.dec();
        self.endpoint
            .metrics
            .duration
            .observe(crate::clock::elapsed(self.started));
    }
}

/// One L4 flow open to an endpoint. It counts where an HTTP request counts
/// (`active_requests`), so least-request balancing is least-connections for
/// L4, as in LVS `lc` and HAProxy `leastconn`.
#[derive(Debug)]
pub struct ActiveFlow {
    endpoint: Arc<Endpoint>,
}

impl ActiveFlow {
    pub fn start(endpoint: Arc<Endpoint>) -> Self {
        endpoint.active_requests.fetch_add(1, Ordering::Relaxed);
        endpoint
            .cluster
            .active_requests
            .fetch_add(1, Ordering::Relaxed);
        endpoint.requests_total.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &endpoint.metrics.flows {
            f.flows.inc();
            f.active_flows.inc();
        }
        Self { endpoint }
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for ActiveFlow {
    fn drop(&mut self) {
        self.endpoint
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
        self.endpoint
            .cluster
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
        if let Some(f) = &self.endpoint.metrics.flows {
            f.active_flows.dec();
        }
    }
}

impl Endpoint {
    /// A connect to this endpoint failed: counted, a gateway failure for
    /// outlier detection, and fed to peak-EWMA as a failure so the endpoint
    /// looks slow until it recovers.
    pub fn record_connect_failure(&self) {
        self.outlier.record(Outcome::GatewayFailure);
        if let Some(f) = &self.metrics.flows {
            f.connect_failures.inc();
        }
        if let Some(ewma) = &self.ewma {
            ewma.observe_failure(crate::clock::now_ns());
        }
    }

    /// A connect succeeded after `elapsed`: a success for outlier detection
    /// and the L4 round-trip sample for peak-EWMA.
    pub fn record_connect(&self, elapsed: std::time::Duration) {
        self.outlier.record(Outcome::Success);
        if let Some(f) = &self.metrics.flows {
            f.connect_duration.observe(elapsed);
        }
        if let Some(ewma) = &self.ewma {
            let rtt = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            ewma.observe(crate::clock::now_ns(), rtt);
        }
    }
}
