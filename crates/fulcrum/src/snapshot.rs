//! The immutable view of the config that the request and flow paths read:
//! built by the control side (`runtime`) and published whole (one `Arc` per
//! change), so a reader never sees half of a change. Its own module because
//! it is data `http/` and `l4/` read, not part of the orchestrator.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::{Config, ListenerConfig, ListenerProtocol};
use crate::limit::ConnectionLimit;
use crate::route::Router;
use crate::telemetry::metrics::{ListenerMetrics, Metrics};
use crate::tls::{Terminator, TlsSetupError};

pub struct Snapshot {
    pub config: Arc<Config>,
    pub clusters: Vec<Arc<Cluster>>,
    pub listeners: Vec<Arc<ListenerState>>,
    pub metrics: Arc<Metrics>,
}

pub struct ListenerState {
    pub config: ListenerConfig,
    pub router: Router,
    pub metrics: ListenerMetrics,
    /// Open client connections (UDP: sessions), all workers, against
    /// `max_connections` (`max_sessions`).
    pub connections: Arc<ConnectionLimit>,
    /// TLS termination, for http listeners with a `tls` table.
    pub tls: Option<Terminator>,
}

impl Snapshot {
    /// Fails only when a TLS file (a listener's certificates, a cluster's CA
    /// or client certificate) cannot be loaded: they were checked with the
    /// config, but files can change in between.
    pub fn build(config: Config, metrics: Arc<Metrics>) -> Result<Self, TlsSetupError> {
        let mut l4_clusters = vec![false; config.clusters.len()];
        for l in config.listeners.iter().filter(|l| l.protocol.is_l4()) {
            for index in l
                .routes
                .iter()
                .map(|r| r.cluster_index)
                .chain(l.cluster.as_ref().map(|c| c.index))
            {
                if let Some(flag) = l4_clusters.get_mut(index) {
                    *flag = true;
                }
            }
        }
        let clusters = config
            .clusters
            .iter()
            .zip(l4_clusters)
            .map(|(c, l4)| Cluster::new(c.clone(), &metrics, l4).map(Arc::new))
            .collect::<Result<_, TlsSetupError>>()?;
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                let tls = match &l.tls {
                    Some(t) => Some(Terminator::new(l, t, &metrics)?),
                    None => None,
                };
                Ok(Arc::new(ListenerState {
                    config: l.clone(),
                    router: Router::new(l.routes.clone()),
                    metrics: ListenerMetrics::new(&metrics, &l.name, l.protocol.is_l4()),
                    connections: Arc::new(ConnectionLimit::new(match l.protocol {
                        ListenerProtocol::Udp => l.max_sessions,
                        _ => l.max_connections,
                    })),
                    tls,
                }))
            })
            .collect::<Result<_, TlsSetupError>>()?;
        Ok(Self {
            config: Arc::new(config),
            clusters,
            listeners,
            metrics,
        })
    }
}
