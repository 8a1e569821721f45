//! One worker thread: a single-threaded tokio runtime that accepts on the
//! sockets the control side hands it (at start and whenever a reload adds
//! a listener) and serves their connections.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::{Serve, Shared};
use crate::http::server::{Acceptor, accept_loop};
use crate::l4::tcp::L4Acceptor;
use crate::listener::BoundSocket;

pub fn run(
    id: usize,
    mut commands: UnboundedReceiver<Serve>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
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
        let connections = TaskTracker::new();
        let accepting = TaskTracker::new();
        loop {
            let serve = tokio::select! {
                serve = commands.recv() => serve,
                () = shutdown.cancelled() => None,
            };
            let Some(Serve { handle, socket }) = serve else {
                break;
            };
            let name = handle.name.clone();
            let l4 = L4Acceptor {
                handle: handle.clone(),
                connections: connections.clone(),
            };
            let refused = |e: std::io::Error| {
                tracing::error!(worker = id, listener = %name, error = %e, "cannot use listening socket");
            };
            match socket {
                BoundSocket::Datagram(socket) => match tokio::net::UdpSocket::from_std(socket) {
                    Ok(socket) => {
                        accepting.spawn(crate::l4::udp::serve(socket, l4));
                    }
                    Err(e) => refused(e),
                },
                BoundSocket::Stream(socket) => match tokio::net::TcpListener::from_std(socket) {
                    Ok(listener) if handle.state().config.protocol.is_l4() => {
                        accepting.spawn(crate::l4::tcp::accept_loop(listener, l4));
                    }
                    Ok(listener) => {
                        let acceptor = Acceptor {
                            handle,
                            worker: id,
                            metrics: shared.metrics.clone(),
                            connections: connections.clone(),
                        };
                        accepting.spawn(accept_loop(listener, acceptor));
                    }
                    Err(e) => refused(e),
                },
            }
        }
        // Every listener's stop is a child of `shutdown`: the accept loops
        // end, and every connection saw the same signal and is closing.
        accepting.close();
        accepting.wait().await;
        connections.close();
        let open = connections.len();
        let drain_timeout = shared.snapshot.load().config.runtime.drain_timeout;
        if tokio::time::timeout(drain_timeout, connections.wait()).await.is_err() {
            tracing::warn!(worker = id, open, "drain timeout reached; closing remaining connections");
        }
    });
}
