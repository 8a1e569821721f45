//! One worker thread: a single-threaded tokio runtime, its own listening
//! sockets and its own upstream pools.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;

use super::Shared;
use crate::http::server::accept_loop;
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
        let graceful = Arc::new(GracefulShutdown::new());
        let mut accepting = Vec::new();
        for (socket, state) in sockets.into_iter().zip(snapshot.listeners.iter()) {
            let listener = match tokio::net::TcpListener::from_std(socket) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(worker = id, listener = %state.config.name, error = %e, "cannot use listening socket");
                    continue;
                }
            };
            accepting.push(tokio::spawn(accept_loop(
                listener,
                snapshot.clone(),
                state.clone(),
                clients.clone(),
                graceful.clone(),
                shutdown.clone(),
            )));
        }
        for task in accepting {
            let _ = task.await;
        }
        // Every accept loop has ended, so this is the last reference.
        let Ok(graceful) = Arc::try_unwrap(graceful) else {
            tracing::error!(worker = id, "drain skipped: connection tracker still shared");
            return;
        };
        let open = graceful.count();
        if tokio::time::timeout(drain_timeout, graceful.shutdown()).await.is_err() {
            tracing::warn!(worker = id, open, "drain timeout reached; closing remaining connections");
        }
    });
}
