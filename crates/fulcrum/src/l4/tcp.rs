//! TCP and TLS-passthrough listeners: one task per client connection that
//! sets the flow up (admission, PROXY header, SNI, endpoint) and then copies
//! bytes both ways without looking at them.

use std::net::SocketAddr;
use std::sync::Arc;

use fulcrum_wire::proxy_protocol;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::Refusal;
use super::connect::{Upstream, connect};
use super::copy::{self, Outcome};
use crate::config::{ListenerProtocol, ProxyProtocolVersion};
use crate::limit::Permit;
use crate::listener::proxy_protocol::{FlowAddrs, is_trusted, read_header};
use crate::snapshot::{ListenerHandle, ListenerState};
use crate::telemetry::metrics::{GaugeGuard, ListenerFlowMetrics};

/// What every flow of one L4 listener on one worker shares.
#[derive(Clone)]
pub struct L4Acceptor {
    pub handle: Arc<ListenerHandle>,
    pub connections: TaskTracker,
}

/// Accepts until the listener stops (removed by a reload, or shutdown);
/// open flows carry on (the worker's drain waits for them up to
/// `drain_timeout`). Each flow takes the listener's settings as they are
/// when it is accepted, and its route table when it is set up.
pub async fn accept_loop(listener: TcpListener, acceptor: L4Acceptor) {
    loop {
        tokio::select! {
            _ = acceptor.handle.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = acceptor.handle.state();
                    let Some(metrics) = state.metrics.flows.clone() else {
                        tracing::error!(listener = %state.config.name, "L4 listener without flow metrics; not accepting");
                        return;
                    };
                    // Admission before spawning: past the cap the connection
                    // is closed at once and costs no task.
                    let Some(permit) = state.connections.try_acquire() else {
                        state.metrics.refused(Refusal::MaxConnections.reason());
                        tracing::debug!(listener = %state.config.name, %peer, "refused: max_connections reached");
                        drop(stream);
                        continue;
                    };
                    let handle = acceptor.handle.clone();
                    acceptor.connections.spawn(async move {
                        flow(stream, peer, permit, &state, &handle, &metrics).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(listener = %acceptor.handle.name, error = %e, "accept failed");
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
    state: &ListenerState,
    handle: &ListenerHandle,
    metrics: &ListenerFlowMetrics,
) {
    let started = crate::clock::now();
    state.metrics.connections.inc();
    let _open = GaugeGuard::new(&state.metrics.active_connections);
    let _ = stream.set_nodelay(true);
    let (addrs, upstream, initial) = match set_up(&mut stream, peer, state, handle).await {
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
    state: &ListenerState,
    handle: &ListenerHandle,
) -> Result<(FlowAddrs, Upstream, Vec<u8>), Refusal> {
    let config = &state.config;
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
    let server_name = match config.protocol {
        ListenerProtocol::TlsPassthrough => {
            let hello = tokio::time::timeout(
                config.inspect_timeout,
                super::inspect::read_client_hello(stream, &mut initial),
            )
            .await
            .map_err(|_| Refusal::InspectTimeout)??;
            Some(hello.server_name)
        }
        _ => None,
    };
    // The flow's one read of the current config.
    let cluster = {
        let table = handle.routes();
        let index = match &server_name {
            Some(sni) => table
                .router
                .route(sni.as_deref(), "/")
                .map(|r| r.cluster_index)
                .or(table.default_cluster),
            None => table.default_cluster,
        };
        index
            .and_then(|i| table.cluster(i))
            .ok_or(Refusal::NoRoute)?
            .clone()
    };
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
    let mut upstream = connect(&cluster, hash).await?;
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
