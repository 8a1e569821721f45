//! One worker thread: a single-threaded tokio runtime, its own listening
//! sockets and its own upstream pools.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::Shared;
use crate::http::server::{Acceptor, accept_loop};
use crate::http::upstream::{UpstreamClient, client_for};

pub fn run(
    id: usize,
    sockets: Vec<std::net::TcpListener>,
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
        let clients: Arc<[UpstreamClient]> = snapshot.clusters.iter().map(|c| client_for(&c.config, &shared.metrics)).collect();
        let connections = TaskTracker::new();
        let mut accepting = Vec::new();
        for (socket, state) in sockets.into_iter().zip(snapshot.listeners.iter()) {
            let listener = match tokio::net::TcpListener::from_std(socket) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(worker = id, listener = %state.config.name, error = %e, "cannot use listening socket");
                    continue;
                }
            };
            let acceptor = Acceptor {
                snapshot: snapshot.clone(),
                state: state.clone(),
                clients: clients.clone(),
                connections: connections.clone(),
                shutdown: shutdown.clone(),
            };
            accepting.push(tokio::spawn(accept_loop(listener, acceptor)));
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
