//! One worker thread: a single-threaded tokio runtime, its own listening
//! sockets and its own upstream pools.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::Shared;
use crate::http::server::{Acceptor, accept_loop};
use crate::http::upstream::{Upstream, upstream_for};
use crate::l4::connect::ClusterConnMetrics;
use crate::l4::tcp::L4Acceptor;
use crate::listener::BoundSocket;
use crate::telemetry::metrics::ClusterLabels;

pub fn run(
    id: usize,
    sockets: Vec<BoundSocket>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, error = %e, "cannot start worker runtime");
            return;
        }
    };
    rt.block_on(async move {
        let snapshot = shared.snapshot.load_full();
        let clients: Arc<[Upstream]> = snapshot.clusters.iter().map(|c| upstream_for(c, &shared.metrics)).collect();
        let connections = TaskTracker::new();
        let mut accepting = Vec::new();
        let cluster_metrics: Arc<[ClusterConnMetrics]> = snapshot
            .clusters
            .iter()
            .map(|c| {
                let labels = ClusterLabels { cluster: c.config.name.clone() };
                ClusterConnMetrics {
                    opened: shared.metrics.upstream_connections.get_or_create(&labels).clone(),
                    active: shared.metrics.upstream_active_connections.get_or_create(&labels).clone(),
                }
            })
            .collect();
        for (socket, state) in sockets.into_iter().zip(snapshot.listeners.iter()) {
            let l4 = L4Acceptor {
                snapshot: snapshot.clone(),
                state: state.clone(),
                cluster_metrics: cluster_metrics.clone(),
                connections: connections.clone(),
                shutdown: shutdown.clone(),
            };
            let task = match socket {
                BoundSocket::Datagram(socket) => match tokio::net::UdpSocket::from_std(socket) {
                    Ok(socket) => tokio::spawn(crate::l4::udp::serve(socket, l4)),
                    Err(e) => {
                        tracing::error!(worker = id, listener = %state.config.name, error = %e, "cannot use listening socket");
                        continue;
                    }
                },
                BoundSocket::Stream(socket) => {
                    let listener = match tokio::net::TcpListener::from_std(socket) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(worker = id, listener = %state.config.name, error = %e, "cannot use listening socket");
                            continue;
                        }
                    };
                    if state.config.protocol.is_l4() {
                        tokio::spawn(crate::l4::tcp::accept_loop(listener, l4))
                    } else {
                        let acceptor = Acceptor {
                            snapshot: snapshot.clone(),
                            state: state.clone(),
                            clients: clients.clone(),
                            connections: connections.clone(),
                            shutdown: shutdown.clone(),
                        };
                        tokio::spawn(accept_loop(listener, acceptor))
                    }
                }
            };
            accepting.push(task);
        }
        for task in accepting {
            let _ = task.await;
        }
        // Accepting has stopped; every connection saw the same shutdown signal and is closing.
        connections.close();
        let open = connections.len();
        if tokio::time::timeout(drain_timeout, connections.wait()).await.is_err() {
            tracing::warn!(worker = id, open, "drain timeout reached; closing remaining connections");
        }
    });
}
