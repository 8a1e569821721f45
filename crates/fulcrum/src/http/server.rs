//! Downstream HTTP connections: HTTP/1.1 with keep-alive and cleartext HTTP/2
//! (prior knowledge) on the same port, told apart by the connection preface
//! (hyper-util's auto builder).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::proxy::{self, ConnContext};
use super::upstream::UpstreamClient;
use crate::runtime::snapshot::{ListenerState, Snapshot};
use crate::telemetry::metrics::GaugeGuard;

pub fn connection_builder(listener: &ListenerState) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listener.config.request_header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Accepts connections until `shutdown` fires; each connection is watched by
/// `graceful` so a drain can finish in-flight requests.
pub async fn accept_loop(
    listener: TcpListener,
    snapshot: Arc<Snapshot>,
    state: Arc<ListenerState>,
    clients: Arc<[UpstreamClient]>,
    graceful: Arc<GracefulShutdown>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(&state));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let cx = Arc::new(ConnContext {
                        snapshot: snapshot.clone(),
                        listener: state.clone(),
                        clients: clients.clone(),
                        peer,
                    });
                    serve(stream, peer, cx, &builder, &graceful);
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = %state.config.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    cx: Arc<ConnContext>,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
) {
    let _ = stream.set_nodelay(true);
    let metrics = &cx.listener.metrics;
    metrics.connections.inc();
    let open = GaugeGuard::new(&metrics.active_connections);
    let service = service_fn(move |req| proxy::handle(cx.clone(), req));
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "downstream connection ended with an error");
        }
        drop(open);
    });
}
