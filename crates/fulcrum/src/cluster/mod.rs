//! Clusters: a named set of endpoints, which of them may take traffic, and
//! the balancer that picks among those.
//!
//! A [`Cluster`] is one snapshot's view: its config and the long-lived
//! parts it shares with the snapshots before and after it (endpoints,
//! transport, flow count, HTTP/2 clients; see `control::registry`). Which
//! endpoints are eligible is decided by the [`manager`] and published as one
//! [`Assignment`] (eligible set + balancer built for it) per change, so a
//! worker never sees a balancer that disagrees with the eligible set (the
//! tear pingora's `LoadBalancer` warns about).

pub mod breaker;
mod endpoint;
pub mod health;
pub mod manager;
pub mod outlier;
pub mod pool;
pub mod slow_start;
pub mod transport;

#[cfg(test)]
mod simulation_tests;

use std::sync::Arc;

use arc_swap::ArcSwap;
use fulcrum_balance::{Balancer, LoadView, PeakEwma, PickContext, Policy};

pub use endpoint::{ActiveFlow, ActiveRequest, ClusterLoad, Endpoint};
use manager::EndpointStatus;

use crate::config::ClusterConfig;
use crate::http::upstream::Http2Client;
use crate::limit::ConnectionLimit;
use crate::telemetry::metrics::ConnectionMetrics;

#[derive(Debug)]
pub struct Cluster {
    pub config: ClusterConfig,
    /// Lined up with `config.endpoints`.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// L4 flows open to this cluster (all workers), against `max_connections`.
    pub flows: Arc<ConnectionLimit>,
    /// How requests and health checks reach the endpoints (TCP, or TLS over it).
    pub transport: Arc<transport::Transport>,
    pub connections: ConnectionMetrics,
    /// `protocol = "http2"`: one pooled client per worker (HTTP/1.1 pools
    /// live in the endpoints).
    pub http2: Option<Arc<[Http2Client]>>,
    assignment: ArcSwap<Assignment>,
}

/// What a cluster is built from: the snapshot's config and the parts that
/// outlive snapshots.
pub struct ClusterParts {
    pub config: ClusterConfig,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub flows: Arc<ConnectionLimit>,
    pub transport: Arc<transport::Transport>,
    pub connections: ConnectionMetrics,
    pub http2: Option<Arc<[Http2Client]>>,
}

/// The endpoints that may take traffic now and the balancer built over them.
#[derive(Debug)]
pub struct Assignment {
    /// Indices into `Cluster::endpoints`.
    pub eligible: Vec<usize>,
    balancer: Arc<dyn Balancer>,
    /// Panic mode: `eligible` holds every endpoint not drained, healthy or not.
    pub panic: bool,
    /// Slow start under a load-aware policy (least_request, peak_ewma):
    /// per eligible endpoint, the thousandths of picks it accepts. Empty
    /// when nothing ramps (the usual case: no extra work per pick).
    admit: Vec<u16>,
}

/// Live load of the eligible endpoints, in the balancer's index space.
struct EligibleLoad<'a> {
    endpoints: &'a [Arc<Endpoint>],
    eligible: &'a [usize],
}

impl LoadView for EligibleLoad<'_> {
    fn active_requests(&self, index: usize) -> u64 {
        self.eligible
            .get(index)
            .and_then(|&i| self.endpoints.get(i))
            .map_or(0, |e| e.active_requests())
    }

    /// O(1): the cluster-wide running total (it also counts requests still
    /// finishing on endpoints ejected meanwhile, which only loosens the cap a little).
    fn total_active_requests(&self, _len: usize) -> u64 {
        self.endpoints
            .first()
            .map_or(0, |e| e.cluster_active_requests())
    }

    fn peak_ewma(&self, index: usize) -> Option<&PeakEwma> {
        self.eligible
            .get(index)
            .and_then(|&i| self.endpoints.get(i))
            .and_then(|e| e.ewma.as_ref())
    }
}

impl Cluster {
    /// `statuses` and `panic` are the cluster manager's decision, statuses
    /// lined up with `parts.config.endpoints`.
    pub fn new(parts: ClusterParts, statuses: &[EndpointStatus], panic: bool) -> Self {
        let assignment = ArcSwap::from_pointee(Self::assign(
            &parts.config,
            &parts.endpoints,
            statuses,
            panic,
        ));
        Self {
            config: parts.config,
            endpoints: parts.endpoints,
            flows: parts.flows,
            transport: parts.transport,
            connections: parts.connections,
            http2: parts.http2,
            assignment,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn assign(
        config: &ClusterConfig,
        endpoints: &[Arc<Endpoint>],
        statuses: &[EndpointStatus],
        panic: bool,
    ) -> Assignment {
        let eligible: Vec<usize> = (0..endpoints.len())
            .filter(|&i| statuses.get(i).is_some_and(|s| s.is_routable(panic)))
            .collect();
        let weights: Vec<u32> = eligible.iter().map(|&i| statuses[i].weight).collect();
        // A load-aware policy scores an endpoint by its load per unit weight,
        // and a returning endpoint has no load: a lower weight alone would
        // not keep it from winning every comparison (the recovered-node
        // flood). So a ramping endpoint also turns down picks in proportion.
        let load_aware = matches!(
            config.policy,
            Policy::LeastRequest { .. } | Policy::PeakEwma { .. }
        );
        let admit: Vec<u16> = eligible
            .iter()
            .map(|&i| statuses[i].admit_permille)
            .collect();
        let admit = if load_aware && admit.iter().any(|&a| a < 1000) {
            admit
        } else {
            Vec::new()
        };
        // Hashing policies place endpoints by address, so every instance with
        // the same endpoint set builds the same table.
        let keys: Vec<&str> = eligible
            .iter()
            .map(|&i| endpoints[i].label.as_str())
            .collect();
        // A random start keeps many instances (and rebuilds after a health
        // change) from all sending their next request to the first endpoint.
        let seed = fastrand::u64(..);
        let balancer = fulcrum_balance::build_with_keys(config.policy, &weights, &keys, seed).unwrap_or_else(|e| {
            // Validation rejects bad parameters and duplicate addresses, so this is a bug.
            tracing::error!(cluster = %config.name, error = %e, "cannot build the balancer; using random");
            fulcrum_balance::build_seeded(Policy::Random, &weights, seed)
        });
        Assignment {
            balancer,
            eligible,
            panic,
            admit,
        }
    }

    /// Picks an endpoint for one request; `None` when no endpoint is eligible.
    /// Lock-free: one atomic load of the assignment plus the balancer's atomics.
    pub fn pick(&self, random: u64, hash: Option<u64>) -> Option<&Arc<Endpoint>> {
        let assignment = self.assignment.load();
        let load = EligibleLoad {
            endpoints: &self.endpoints,
            eligible: &assignment.eligible,
        };
        let ctx = PickContext::new(random, &load)
            .with_hash(hash)
            .with_now_ns(crate::clock::now_ns());
        let mut index = assignment.balancer.pick(&ctx)?;
        if let Some(&admit) = assignment.admit.get(index)
            && (random.rotate_left(29) % 1000) as u16 >= admit
        {
            // Turned down by a ramping endpoint: the next eligible one that
            // is not ramping takes it (if every one ramps, the pick stands).
            let n = assignment.eligible.len();
            if let Some(next) = (1..n)
                .map(|k| (index + k) % n)
                .find(|&j| assignment.admit.get(j) == Some(&1000))
            {
                index = next;
            }
        }
        let endpoint = *assignment.eligible.get(index)?;
        self.endpoints.get(endpoint)
    }

    /// Picks for one L4 connect attempt. The first attempt asks the
    /// balancer; a retry takes the next eligible endpoint after the last one
    /// tried that was not tried yet (HAProxy's redispatch). That does not
    /// advance round-robin sequences, and it is deterministic, so instances
    /// that hash a flow alike also agree on where it goes after a refusal.
    pub fn pick_untried(
        &self,
        random: u64,
        hash: Option<u64>,
        tried: &[Arc<Endpoint>],
    ) -> Option<&Arc<Endpoint>> {
        let Some(last) = tried.last() else {
            return self.pick(random, hash);
        };
        let assignment = self.assignment.load();
        let eligible = &assignment.eligible;
        // An endpoint ejected meanwhile is no longer in the list: start over.
        let start = eligible
            .iter()
            .position(|&i| self.endpoints.get(i).is_some_and(|e| Arc::ptr_eq(e, last)))
            .unwrap_or(eligible.len().saturating_sub(1));
        (1..=eligible.len())
            .filter_map(|k| eligible.get((start + k) % eligible.len()))
            .filter_map(|&i| self.endpoints.get(i))
            .find(|e| !tried.iter().any(|t| Arc::ptr_eq(t, e)))
    }

    /// The endpoint an attempt goes to: `candidate` if its breaker admits
    /// the request, else the next eligible endpoint not in `tried` whose
    /// breaker does (refused ones are added to `tried`). Without
    /// per-endpoint breakers, `candidate` at once.
    pub fn admit(
        &self,
        candidate: Arc<Endpoint>,
        random: u64,
        hash: Option<u64>,
        tried: &mut Vec<Arc<Endpoint>>,
    ) -> Option<breaker::Admitted> {
        let Some(config) = &self.config.circuit_breakers.endpoint else {
            return Some(breaker::Admitted::new(candidate, breaker::Admit::Closed));
        };
        let now = crate::clock::now_ns();
        let mut candidate = candidate;
        loop {
            match candidate.breaker.admit(config, now) {
                breaker::Admit::Refused => {
                    tried.push(candidate);
                    candidate = self.pick_untried(random, hash, tried)?.clone();
                }
                admit => return Some(breaker::Admitted::new(candidate, admit)),
            }
        }
    }

    pub fn eligible_count(&self) -> usize {
        self.assignment.load().eligible.len()
    }

    /// Publishes the manager's new decision for this cluster: one new
    /// assignment, swapped in whole (control side only).
    pub fn publish(&self, statuses: &[EndpointStatus], panic: bool) {
        self.record_statuses(statuses);
        self.assignment.store(Arc::new(Self::assign(
            &self.config,
            &self.endpoints,
            statuses,
            panic,
        )));
    }

    /// Whether the cluster balances over every undrained endpoint because
    /// too few are eligible (panic mode).
    pub fn in_panic(&self) -> bool {
        self.assignment.load().panic
    }

    /// Writes the decision into the endpoints (for the admin API and the
    /// gauges); the control side calls it once a snapshot is in force.
    pub fn record_statuses(&self, statuses: &[EndpointStatus]) {
        for (endpoint, status) in self.endpoints.iter().zip(statuses) {
            endpoint.set_ineligible(status.ineligible);
        }
    }
}
