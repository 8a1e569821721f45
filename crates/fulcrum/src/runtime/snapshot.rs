//! The immutable view of the config that workers read: built once by the
//! control side and published whole (one `Arc` per change), so a worker never
//! sees half of a change.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::{Config, ListenerConfig};
use crate::route::Router;
use crate::telemetry::metrics::{ListenerMetrics, Metrics};

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
}

impl Snapshot {
    pub fn build(config: Config, metrics: Arc<Metrics>) -> Self {
        let clusters = config
            .clusters
            .iter()
            .map(|c| Arc::new(Cluster::new(c.clone(), &metrics)))
            .collect();
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                Arc::new(ListenerState {
                    config: l.clone(),
                    router: Router::new(l.routes.clone()),
                    metrics: ListenerMetrics::new(&metrics, &l.name),
                })
            })
            .collect();
        Self {
            config: Arc::new(config),
            clusters,
            listeners,
            metrics,
        }
    }
}
