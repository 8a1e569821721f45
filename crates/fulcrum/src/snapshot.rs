//! The immutable views of the config that the request and flow paths read.
//! The control side (`control`) builds them and publishes them whole, so a
//! reader never sees half of a change. Its own module because it is data
//! `http/` and `l4/` read, not part of the orchestrator.
//!
//! Two lifetimes meet here. A connection fixes its listener's settings
//! ([`ListenerState`]: timeouts, limits, TLS) when it is accepted; every
//! request (and L4 flow) reads the listener's current [`RouteTable`] with
//! one atomic load, so a reload applies to the next request on a keep-alive
//! or HTTP/2 connection, and each request sees one whole config, old or new.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::{Config, ListenerConfig};
use crate::limit::ConnectionLimit;
use crate::route::Router;
use crate::telemetry::metrics::{ListenerMetrics, Metrics};
use crate::tls::Terminator;

/// The whole config in force, for the control side and the admin API.
pub struct Snapshot {
    /// 1 at start, +1 per applied reload.
    pub generation: u64,
    pub config: Arc<Config>,
    /// Lined up with `config.clusters`; route tables index into it.
    pub clusters: Arc<[Arc<Cluster>]>,
    /// Lined up with `config.listeners`.
    pub listeners: Vec<Arc<ListenerHandle>>,
    pub metrics: Arc<Metrics>,
}

/// One listener for as long as it keeps its name, address and protocol:
/// its sockets, accept loops and connections hold this, and reloads
/// publish into it.
pub struct ListenerHandle {
    pub name: String,
    state: ArcSwap<ListenerState>,
    routes: ArcSwap<RouteTable>,
    /// Cancelled when the listener is removed by a reload or the process
    /// shuts down: accept loops stop and connections close gracefully.
    pub stop: CancellationToken,
}

impl ListenerHandle {
    pub fn new(state: ListenerState, routes: RouteTable, stop: CancellationToken) -> Self {
        Self {
            name: state.config.name.clone(),
            state: ArcSwap::from_pointee(state),
            routes: ArcSwap::from_pointee(routes),
            stop,
        }
    }

    /// Settings for a connection accepted now.
    pub fn state(&self) -> Arc<ListenerState> {
        self.state.load_full()
    }

    /// Routes and clusters for a request (or flow) starting now.
    pub fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// Control side: the listener's part of a new snapshot.
    pub fn publish(&self, state: Arc<ListenerState>, routes: RouteTable) {
        self.state.store(state);
        self.routes.store(Arc::new(routes));
    }
}

/// A listener's settings as of one snapshot; a connection keeps the one it
/// was accepted with. It holds no cluster, so an old keep-alive connection
/// never keeps a removed endpoint (and its pooled connections) alive.
pub struct ListenerState {
    pub config: ListenerConfig,
    pub metrics: ListenerMetrics,
    /// Open client connections (UDP: sessions), all workers, against
    /// `max_connections` (`max_sessions`); kept across reloads.
    pub connections: Arc<ConnectionLimit>,
    /// TLS termination, for http listeners with a `tls` table.
    pub tls: Option<Arc<Terminator>>,
}

/// Where one listener's requests go, as of one snapshot.
pub struct RouteTable {
    pub router: Router,
    /// tcp and udp: the cluster; tls_passthrough: the one for unmatched SNI.
    pub default_cluster: Option<usize>,
    pub clusters: Arc<[Arc<Cluster>]>,
}

impl RouteTable {
    pub fn cluster(&self, index: usize) -> Option<&Arc<Cluster>> {
        self.clusters.get(index)
    }

    /// The default cluster (tcp and udp listeners).
    pub fn default(&self) -> Option<&Arc<Cluster>> {
        self.default_cluster.and_then(|i| self.clusters.get(i))
    }
}
