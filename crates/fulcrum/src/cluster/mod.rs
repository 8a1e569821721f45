//! Clusters: a named set of endpoints, which of them may take traffic, and
//! the balancer that picks among those.
//!
//! Health changes publish one new [`Assignment`] (healthy set + balancer built
//! for it) per change, so a worker never sees a balancer that disagrees with
//! the healthy set (the tear pingora's `LoadBalancer` warns about).

mod endpoint;
pub mod health;
pub mod transport;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use fulcrum_balance::{Balancer, LoadView, PeakEwma, PickContext, Policy};

pub use endpoint::{ActiveFlow, ActiveRequest, Endpoint};

use crate::config::ClusterConfig;
use crate::telemetry::metrics::{EndpointMetrics, Metrics};

#[derive(Debug)]
pub struct Cluster {
    pub config: ClusterConfig,
    pub endpoints: Vec<Arc<Endpoint>>,
    /// L4 flows open to this cluster (all workers), against `max_connections`.
    pub flows: Arc<crate::limit::ConnectionLimit>,
    /// How requests and health checks reach the endpoints (TCP, or TLS over it).
    pub transport: Arc<transport::Transport>,
    assignment: ArcSwap<Assignment>,
    /// Serialises republishing (health tasks may race); never taken by workers.
    publish: Mutex<()>,
}

/// The endpoints that may take traffic now and the balancer built over them.
#[derive(Debug)]
pub struct Assignment {
    /// Indices into `Cluster::endpoints`.
    pub eligible: Vec<usize>,
    balancer: Arc<dyn Balancer>,
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
    /// `l4`: an L4 listener uses this cluster, so its endpoints export flow
    /// metrics. Fails only when the cluster's TLS files cannot be loaded.
    pub fn new(
        config: ClusterConfig,
        metrics: &Metrics,
        l4: bool,
    ) -> Result<Self, crate::tls::TlsSetupError> {
        let transport = Arc::new(transport::Transport::new(&config, metrics)?);
        let cluster_active = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let endpoints: Vec<Arc<Endpoint>> = config
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, e)| {
                let m = EndpointMetrics::new(metrics, &config.name, &e.address.to_string(), l4);
                let ewma = match config.policy {
                    Policy::PeakEwma { config, .. } => {
                        Some(PeakEwma::new(config, crate::clock::now_ns()))
                    }
                    _ => None,
                };
                Arc::new(Endpoint::new(
                    index,
                    e.address,
                    e.weight,
                    e.zone.clone(),
                    m,
                    ewma,
                    cluster_active.clone(),
                ))
            })
            .collect();
        let assignment = ArcSwap::from_pointee(Self::assign(&config, &endpoints));
        Ok(Self {
            flows: Arc::new(crate::limit::ConnectionLimit::new(config.max_connections)),
            transport,
            config,
            endpoints,
            assignment,
            publish: Mutex::new(()),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn assign(config: &ClusterConfig, endpoints: &[Arc<Endpoint>]) -> Assignment {
        let eligible: Vec<usize> = (0..endpoints.len())
            .filter(|&i| endpoints[i].is_healthy())
            .collect();
        let weights: Vec<u32> = eligible.iter().map(|&i| endpoints[i].weight).collect();
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
        Assignment { balancer, eligible }
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
        let index = assignment.balancer.pick(&ctx)?;
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

    pub fn eligible_count(&self) -> usize {
        self.assignment.load().eligible.len()
    }

    /// Marks an endpoint healthy or not and, if that changed anything,
    /// publishes a new assignment. Returns whether the state changed.
    pub fn set_healthy(&self, index: usize, healthy: bool) -> bool {
        let Some(endpoint) = self.endpoints.get(index) else {
            return false;
        };
        let _serial = self.publish.lock().unwrap_or_else(|p| p.into_inner());
        if !endpoint.set_healthy(healthy) {
            return false;
        }
        self.assignment
            .store(Arc::new(Self::assign(&self.config, &self.endpoints)));
        true
    }
}
