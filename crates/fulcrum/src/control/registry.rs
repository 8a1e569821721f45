//! What outlives a snapshot, keyed by identity: endpoints by (cluster name,
//! address), a cluster's transport, flow count and HTTP/2 clients by its
//! name, a listener's handle, connection count and TLS terminator by its
//! name. Building a snapshot takes each part from here when its config did
//! not change and makes a new one when it did; so an endpoint that is in the
//! old and the new config keeps its statistics, peak-EWMA estimate,
//! in-flight counts and warm connections, whatever else a reload changes.
//!
//! Building does not touch the registry: a reload that fails halfway (a TLS
//! file that no longer loads) leaves everything as it was. [`Registry::commit`]
//! makes a built snapshot the current one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_balance::{PeakEwma, PeakEwmaConfig, Policy};
use tokio_util::sync::CancellationToken;

use crate::cluster::manager::Manager;
use crate::cluster::transport::Transport;
use crate::cluster::{Cluster, ClusterLoad, ClusterParts, Endpoint};
use crate::config::{
    ClusterConfig, Config, ListenerConfig, ListenerProtocol, TlsConfig, UpstreamProtocol,
    UpstreamTlsConfig,
};
use crate::http::upstream::{Http2Client, http2_client};
use crate::limit::ConnectionLimit;
use crate::route::Router;
use crate::snapshot::{ListenerHandle, ListenerState, RouteTable, Snapshot};
use crate::telemetry::metrics::{ConnectionMetrics, EndpointMetrics, ListenerMetrics, Metrics};
use crate::tls::{Terminator, TlsSetupError};

pub struct Registry {
    workers: usize,
    metrics: Arc<Metrics>,
    /// Parent of every listener's stop token: cancelled at shutdown.
    shutdown: CancellationToken,
    clusters: HashMap<String, KeptCluster>,
    listeners: HashMap<String, KeptListener>,
}

#[derive(Clone)]
struct KeptCluster {
    endpoints: HashMap<SocketAddr, Arc<Endpoint>>,
    /// What the endpoints were made for: a change makes new ones.
    endpoint_kind: EndpointKind,
    cluster_load: Arc<ClusterLoad>,
    transport: Arc<Transport>,
    transport_key: TransportKey,
    flows: Arc<ConnectionLimit>,
    /// With the `idle_timeout` they were built with.
    http2: Option<(Arc<[Http2Client]>, Duration)>,
}

/// Endpoint state that depends on the cluster's config: the peak-EWMA
/// parameters, and whether an L4 listener uses it (flow metrics).
#[derive(Clone, Copy, PartialEq)]
struct EndpointKind {
    ewma: Option<PeakEwmaConfig>,
    l4: bool,
}

/// Everything a cluster's transport is built from.
#[derive(Clone, PartialEq)]
struct TransportKey {
    connect_timeout: Duration,
    protocol: UpstreamProtocol,
    tls: Option<UpstreamTlsConfig>,
}

#[derive(Clone)]
struct KeptListener {
    handle: Arc<ListenerHandle>,
    /// Its sockets are bound to this address for this protocol; a change
    /// means new sockets, so a new handle.
    address: SocketAddr,
    protocol: ListenerProtocol,
    connections: Arc<ConnectionLimit>,
    tls: Option<(TlsConfig, Arc<Terminator>)>,
}

/// A snapshot ready to be put in force, and what that changes.
pub struct Built {
    pub snapshot: Snapshot,
    /// Listeners this config adds (or moves to a new address or protocol):
    /// they need sockets before the snapshot is committed.
    pub added: Vec<Arc<ListenerHandle>>,
    /// Listeners it removes (or moves): stopped once it is committed.
    pub removed: Vec<Arc<ListenerHandle>>,
    /// Listeners it keeps, with their part of the new snapshot.
    kept: Vec<(Arc<ListenerHandle>, Arc<ListenerState>, RouteTable)>,
    clusters: HashMap<String, KeptCluster>,
    listeners: HashMap<String, KeptListener>,
}

impl Registry {
    pub fn new(workers: usize, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        Self {
            workers,
            metrics,
            shutdown,
            clusters: HashMap::new(),
            listeners: HashMap::new(),
        }
    }

    /// Builds the snapshot for `config`, with endpoint eligibility from
    /// `manager` (already configured with it). Fails only when a TLS file
    /// (a listener's certificates, a cluster's CA or client certificate)
    /// cannot be loaded: they were checked with the config, but files can
    /// change in between.
    pub fn build(
        &self,
        config: Config,
        manager: &Manager,
        generation: u64,
    ) -> Result<Built, TlsSetupError> {
        let l4_used = l4_clusters(&config);
        let mut clusters_next = HashMap::new();
        let mut clusters = Vec::with_capacity(config.clusters.len());
        for (c, l4) in config.clusters.iter().zip(l4_used) {
            let (cluster, kept) = self.build_cluster(c, l4, manager)?;
            clusters.push(Arc::new(cluster));
            clusters_next.insert(c.name.clone(), kept);
        }
        let clusters: Arc<[Arc<Cluster>]> = clusters.into();

        let mut listeners_next = HashMap::new();
        let mut listeners = Vec::with_capacity(config.listeners.len());
        let (mut added, mut kept_handles) = (Vec::new(), Vec::new());
        for l in &config.listeners {
            let previous = self
                .listeners
                .get(&l.name)
                .filter(|k| k.address == l.address && k.protocol == l.protocol);
            let tls = match (&l.tls, previous.and_then(|k| k.tls.as_ref())) {
                (None, _) => None,
                (Some(t), Some((was, terminator))) if was == t => {
                    Some((t.clone(), terminator.clone()))
                }
                (Some(t), _) => Some((t.clone(), Arc::new(Terminator::new(l, t, &self.metrics)?))),
            };
            let connections = previous.map_or_else(
                || Arc::new(ConnectionLimit::new(session_cap(l))),
                |k| k.connections.clone(),
            );
            let state = ListenerState {
                config: l.clone(),
                metrics: ListenerMetrics::new(&self.metrics, &l.name, l.protocol.is_l4()),
                connections: connections.clone(),
                tls: tls.as_ref().map(|(_, t)| t.clone()),
            };
            let routes = RouteTable {
                router: Router::new(l.routes.clone()),
                default_cluster: l.cluster.as_ref().map(|c| c.index),
                clusters: clusters.clone(),
            };
            let handle = match previous {
                Some(k) => {
                    kept_handles.push((k.handle.clone(), Arc::new(state), routes));
                    k.handle.clone()
                }
                None => {
                    let handle = Arc::new(ListenerHandle::new(
                        state,
                        routes,
                        self.shutdown.child_token(),
                    ));
                    added.push(handle.clone());
                    handle
                }
            };
            listeners.push(handle.clone());
            listeners_next.insert(
                l.name.clone(),
                KeptListener {
                    handle,
                    address: l.address,
                    protocol: l.protocol,
                    connections,
                    tls,
                },
            );
        }
        let removed = self
            .listeners
            .values()
            .filter(|k| {
                !listeners_next
                    .values()
                    .any(|n| Arc::ptr_eq(&n.handle, &k.handle))
            })
            .map(|k| k.handle.clone())
            .collect();
        Ok(Built {
            snapshot: Snapshot {
                generation,
                config: Arc::new(config),
                clusters,
                listeners,
                metrics: self.metrics.clone(),
            },
            added,
            removed,
            kept: kept_handles,
            clusters: clusters_next,
            listeners: listeners_next,
        })
    }

    fn build_cluster(
        &self,
        c: &ClusterConfig,
        l4: bool,
        manager: &Manager,
    ) -> Result<(Cluster, KeptCluster), TlsSetupError> {
        let previous = self.clusters.get(&c.name);
        let transport_key = TransportKey {
            connect_timeout: c.connect_timeout,
            protocol: c.protocol,
            tls: c.tls.clone(),
        };
        let transport = match previous.filter(|k| k.transport_key == transport_key) {
            Some(k) => k.transport.clone(),
            None => Arc::new(Transport::new(c, &self.metrics)?),
        };
        let kind = EndpointKind {
            ewma: match c.policy {
                Policy::PeakEwma { config, .. } => Some(config),
                _ => None,
            },
            l4,
        };
        let cluster_load = previous.map_or_else(Arc::default, |k| k.cluster_load.clone());
        let reusable = previous.filter(|k| k.endpoint_kind == kind);
        let endpoints: Vec<Arc<Endpoint>> = c
            .endpoints
            .iter()
            .map(|e| {
                reusable
                    .and_then(|k| k.endpoints.get(&e.address).cloned())
                    .unwrap_or_else(|| {
                        let label = e.address.to_string();
                        Arc::new(Endpoint::new(
                            e.address,
                            EndpointMetrics::new(&self.metrics, &c.name, &label, l4),
                            kind.ewma
                                .map(|config| PeakEwma::new(config, crate::clock::now_ns())),
                            cluster_load.clone(),
                            self.workers,
                        ))
                    })
            })
            .collect();
        let flows = previous.map_or_else(
            || Arc::new(ConnectionLimit::new(c.max_connections)),
            |k| k.flows.clone(),
        );
        let connections = ConnectionMetrics::new(&self.metrics, &c.name);
        let http2 = match c.protocol {
            UpstreamProtocol::Http1 => None,
            UpstreamProtocol::Http2 => Some(
                match previous.and_then(|k| k.http2.clone()).filter(|(_, idle)| {
                    *idle == c.idle_timeout
                        && previous.is_some_and(|k| Arc::ptr_eq(&k.transport, &transport))
                }) {
                    Some((clients, _)) => (clients, c.idle_timeout),
                    None => (
                        (0..self.workers.max(1))
                            .map(|_| http2_client(c, &transport, &connections))
                            .collect(),
                        c.idle_timeout,
                    ),
                },
            ),
        };
        let kept = KeptCluster {
            endpoints: endpoints.iter().map(|e| (e.address, e.clone())).collect(),
            endpoint_kind: kind,
            cluster_load,
            transport: transport.clone(),
            transport_key,
            flows: flows.clone(),
            http2: http2.clone(),
        };
        let statuses = manager.statuses(&c.name);
        let panic = manager.in_panic(&c.name);
        let cluster = Cluster::new(
            ClusterParts {
                config: c.clone(),
                endpoints,
                flows,
                transport,
                connections,
                http2: http2.map(|(clients, _)| clients),
            },
            &statuses,
            panic,
        );
        Ok((cluster, kept))
    }

    /// Puts a built snapshot in force for the listeners it keeps, and
    /// remembers its parts for the next build. The caller stores the
    /// snapshot, starts `added` and stops `removed`.
    pub fn commit(&mut self, built: Built, manager: &Manager) -> CommitResult {
        let Built {
            snapshot,
            added,
            removed,
            kept,
            clusters,
            listeners,
        } = built;
        for cluster in snapshot.clusters.iter() {
            cluster.flows.set_max(cluster.config.max_connections);
            cluster.record_statuses(&manager.statuses(cluster.name()));
        }
        for (handle, state, routes) in kept {
            state.connections.set_max(session_cap(&state.config));
            handle.publish(state, routes);
        }
        self.clusters = clusters;
        self.listeners = listeners;
        CommitResult {
            snapshot,
            added,
            removed,
        }
    }
}

/// What a commit changed, for the caller to act on.
pub struct CommitResult {
    pub snapshot: Snapshot,
    pub added: Vec<Arc<ListenerHandle>>,
    pub removed: Vec<Arc<ListenerHandle>>,
}

/// A listener's cap on open connections (UDP: sessions).
fn session_cap(l: &ListenerConfig) -> Option<u32> {
    match l.protocol {
        ListenerProtocol::Udp => l.max_sessions,
        _ => l.max_connections,
    }
}

/// Which clusters an L4 listener uses (their endpoints export flow metrics).
fn l4_clusters(config: &Config) -> Vec<bool> {
    let mut l4 = vec![false; config.clusters.len()];
    for l in config.listeners.iter().filter(|l| l.protocol.is_l4()) {
        for index in l
            .routes
            .iter()
            .map(|r| r.cluster_index)
            .chain(l.cluster.as_ref().map(|c| c.index))
        {
            if let Some(flag) = l4.get_mut(index) {
                *flag = true;
            }
        }
    }
    l4
}
