//! TCP and TLS-passthrough listeners: one task per client connection that
//! sets the flow up (admission, PROXY header, SNI, endpoint) and then copies
//! bytes both ways without looking at them.

use std::net::SocketAddr;
use std::sync::Arc;

use fulcrum_wire::proxy_protocol;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::Refusal;
use super::connect::{ClusterConnMetrics, Upstream, connect};
use super::copy::{self, Outcome};
use crate::config::{ListenerProtocol, ProxyProtocolVersion};
use crate::limit::Permit;
use crate::listener::proxy_protocol::{FlowAddrs, is_trusted, read_header};
use crate::snapshot::{ListenerState, Snapshot};
use crate::telemetry::metrics::{GaugeGuard, ListenerFlowMetrics};

/// What every flow of one L4 listener on one worker shares.
#[derive(Clone)]
pub struct L4Acceptor {
    pub snapshot: Arc<Snapshot>,
    pub state: Arc<ListenerState>,
    /// Per cluster, indexed like `snapshot.clusters`.
    pub cluster_metrics: Arc<[ClusterConnMetrics]>,
    pub connections: TaskTracker,
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts until shutdown begins; open flows carry on (the worker's drain
/// waits for them up to `drain_timeout`).
pub async fn accept_loop(listener: TcpListener, acceptor: L4Acceptor) {
    let mut shutdown = acceptor.shutdown.clone();
    let Some(metrics) = acceptor.state.metrics.flows.clone() else {
        tracing::error!(listener = %acceptor.state.config.name, "L4 listener without flow metrics; not accepting");
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Admission before spawning: past the cap the connection
                    // is closed at once and costs no task.
                    let Some(permit) = acceptor.state.connections.try_acquire() else {
                        acceptor.state.metrics.refused(Refusal::MaxConnections.reason());
                        tracing::debug!(listener = %acceptor.state.config.name, %peer, "refused: max_connections reached");
                        drop(stream);
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let metrics = metrics.clone();
                    acceptor.connections.clone().spawn(async move {
                        flow(stream, peer, permit, &acceptor, &metrics).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(listener = %acceptor.state.config.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn flow(
    mut stream: TcpStream,
    peer: SocketAddr,
    _permit: Permit,
    acceptor: &L4Acceptor,
    metrics: &ListenerFlowMetrics,
) {
    let started = crate::clock::now();
    let state = &acceptor.state;
    state.metrics.connections.inc();
    let _open = GaugeGuard::new(&state.metrics.active_connections);
    let _ = stream.set_nodelay(true);
    let (addrs, upstream, initial) = match set_up(&mut stream, peer, acceptor).await {
        Ok(ready) => ready,
        Err(refusal) => {
            state.metrics.refused(refusal.reason());
            tracing::debug!(listener = %state.config.name, %peer, reason = refusal.reason(), "connection refused");
            return;
        }
    };
    let endpoint = upstream.flow.endpoint().clone();
    if let Err(e) = copy::write_all(&upstream.stream, &initial).await {
        tracing::debug!(listener = %state.config.name, endpoint = %endpoint.label, error = %e, "upstream closed before the first bytes");
        return;
    }
    let Some(endpoint_metrics) = endpoint.metrics.flows.as_ref() else {
        return;
    };
    let (outcome, moved) = copy::bidirectional(
        &stream,
        &upstream.stream,
        state.config.idle_timeout,
        [&metrics.received_bytes, &endpoint_metrics.sent_bytes],
        [&endpoint_metrics.received_bytes, &metrics.sent_bytes],
    )
    .await;
    metrics
        .flow_duration
        .observe(crate::clock::elapsed(started));
    if outcome == Outcome::IdleTimeout {
        tracing::debug!(listener = %state.config.name, client = %addrs.source, "flow closed: idle timeout");
    }
    tracing::trace!(listener = %state.config.name, client = %addrs.source, endpoint = %endpoint.label, ?outcome, to_upstream = moved.to_upstream, to_client = moved.to_client, "flow ended");
}

/// Everything before the copy: PROXY header in, route, pick and connect,
/// PROXY header out. Returns the bytes read ahead that the endpoint must get
/// first.
async fn set_up(
    stream: &mut TcpStream,
    peer: SocketAddr,
    acceptor: &L4Acceptor,
) -> Result<(FlowAddrs, Upstream, Vec<u8>), Refusal> {
    let config = &acceptor.state.config;
    let local = stream.local_addr().map_err(|_| Refusal::ClientClosed)?;
    let (addrs, mut initial) = if config.accept_proxy_protocol_from.is_empty() {
        (
            FlowAddrs {
                source: peer,
                destination: local,
            },
            Vec::new(),
        )
    } else {
        if !is_trusted(&config.accept_proxy_protocol_from, peer) {
            return Err(Refusal::UntrustedSource);
        }
        match tokio::time::timeout(config.inspect_timeout, read_header(stream, peer, local)).await {
            Err(_) => return Err(Refusal::InspectTimeout),
            Ok(Err(e)) => {
                tracing::debug!(listener = %config.name, %peer, error = %e, "PROXY header refused");
                return Err(Refusal::BadProxyHeader);
            }
            Ok(Ok(read)) => read,
        }
    };
    let cluster_index = match config.protocol {
        ListenerProtocol::TlsPassthrough => {
            let hello = tokio::time::timeout(
                config.inspect_timeout,
                super::inspect::read_client_hello(stream, &mut initial),
            )
            .await
            .map_err(|_| Refusal::InspectTimeout)??;
            acceptor
                .state
                .router
                .route(hello.server_name.as_deref(), "/")
                .map(|r| r.cluster_index)
                .or(config.cluster.as_ref().map(|c| c.index))
                .ok_or(Refusal::NoRoute)?
        }
        _ => config
            .cluster
            .as_ref()
            .map(|c| c.index)
            .ok_or(Refusal::NoRoute)?,
    };
    let cluster = acceptor
        .snapshot
        .clusters
        .get(cluster_index)
        .ok_or(Refusal::NoRoute)?;
    let cluster_metrics = acceptor
        .cluster_metrics
        .get(cluster_index)
        .ok_or(Refusal::NoRoute)?;
    let permit = cluster
        .flows
        .try_acquire()
        .ok_or(Refusal::ClusterMaxConnections)?;
    let hash = cluster.config.policy.is_hashing().then(|| {
        super::flow_hash(
            config.hash_key,
            addrs.source,
            addrs.destination,
            super::IPPROTO_TCP,
        )
    });
    let mut upstream = connect(cluster, hash, cluster_metrics).await?;
    upstream.cluster_permit = Some(permit);
    if let Some(version) = cluster.config.proxy_protocol {
        let header = match version {
            ProxyProtocolVersion::V1 => proxy_protocol::encode_v1(addrs.source, addrs.destination),
            ProxyProtocolVersion::V2 => proxy_protocol::encode_v2(
                addrs.source,
                addrs.destination,
                proxy_protocol::Transport::Stream,
            ),
        };
        initial.splice(0..0, header);
    }
    Ok((addrs, upstream, initial))
}
