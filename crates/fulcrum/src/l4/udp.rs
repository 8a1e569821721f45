//! UDP listeners: datagrams from one client address form a session, bound
//! to one endpoint through its own connected upstream socket until the
//! session idles out. Replies go back from the listener's own socket, so the
//! client sees them come from the address it sent to.
//!
//! With SO_REUSEPORT the kernel hashes each client's datagrams to one
//! worker's socket, so a session lives on one worker and its table needs no
//! cross-thread lock (the mutex here is only ever taken by one thread).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::tcp::L4Acceptor;
use crate::cluster::ActiveFlow;
use crate::limit::Permit;
use crate::telemetry::metrics::{GaugeGuard, ListenerFlowMetrics};

/// Largest UDP payload (65535 - 8 byte UDP header - 20 byte IPv4 header).
const MAX_DATAGRAM: usize = 65_507;
/// After shutdown begins, a session ends once it has been quiet this long:
/// replies in flight still reach the client, and the drain does not wait a
/// whole idle timeout.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

struct Session {
    upstream: UdpSocket,
    last_activity: AtomicU64,
    flow: ActiveFlow,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<Session>>>>;

/// Receives datagrams until shutdown begins; sessions then finish on their own.
pub async fn serve(socket: UdpSocket, acceptor: L4Acceptor) {
    let state = acceptor.handle.state();
    let Some(metrics) = state.metrics.flows.clone() else {
        return;
    };
    let config = &state.config;
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(listener = %config.name, error = %e, "UDP listener socket unusable");
            return;
        }
    };
    let socket = Arc::new(socket);
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            _ = acceptor.handle.stop.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors surface here on some systems; never fatal.
                    tracing::debug!(listener = %config.name, error = %e, "UDP receive failed");
                    continue;
                }
            },
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let existing = lock(&sessions).get(&client).cloned();
        let session = match existing {
            Some(s) => s,
            None => match open(&acceptor, &metrics, &socket, &sessions, client, local).await {
                Ok(s) => s,
                Err(reason) => {
                    metrics.dropped(reason);
                    continue;
                }
            },
        };
        session
            .last_activity
            .store(crate::clock::now_ns(), Ordering::Relaxed);
        // A UDP send only waits when the socket buffer is full, and a new
        // socket's write readiness is only known after a first wait.
        let sent = match session.upstream.try_send(datagram) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                session.upstream.send(datagram).await
            }
            other => other,
        };
        match sent {
            Ok(sent) => {
                metrics.received_bytes.inc_by(sent as u64);
                if let Some(f) = &session.flow.endpoint().metrics.flows {
                    f.sent_bytes.inc_by(sent as u64);
                }
            }
            Err(e) => {
                tracing::debug!(listener = %config.name, %client, error = %e, "datagram not forwarded");
                metrics.dropped("upstream_error");
            }
        }
    }
}

fn lock(sessions: &Sessions) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Session>>> {
    sessions.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens a session for `client`: admission, pick (from the listener's
/// current settings and route table), a connected upstream socket, and the
/// task that relays replies until the session idles out.
async fn open(
    acceptor: &L4Acceptor,
    metrics: &ListenerFlowMetrics,
    socket: &Arc<UdpSocket>,
    sessions: &Sessions,
    client: SocketAddr,
    local: SocketAddr,
) -> Result<Arc<Session>, &'static str> {
    let state = acceptor.handle.state();
    let config = &state.config;
    let cluster = acceptor
        .handle
        .routes()
        .default()
        .cloned()
        .ok_or("no_healthy_upstream")?;
    let permit = state.connections.try_acquire().ok_or("max_sessions")?;
    let hash = cluster
        .config
        .policy
        .is_hashing()
        .then(|| super::flow_hash(config.hash_key, client, local, super::IPPROTO_UDP));
    let endpoint = cluster
        .pick(fastrand::u64(..), hash)
        .ok_or("no_healthy_upstream")?
        .clone();
    let flow = ActiveFlow::start(endpoint.clone());
    let upstream = connected_socket(endpoint.address).await.map_err(|e| {
        tracing::debug!(endpoint = %endpoint.label, error = %e, "cannot open an upstream UDP socket");
        endpoint.record_connect_failure();
        "upstream_error"
    })?;
    let session = Arc::new(Session {
        upstream,
        last_activity: AtomicU64::new(crate::clock::now_ns()),
        flow,
    });
    lock(sessions).insert(client, session.clone());
    metrics.udp_sessions.inc();
    tracing::debug!(listener = %config.name, %client, endpoint = %endpoint.label, "UDP session opened");
    let relay = Relay {
        session: session.clone(),
        socket: socket.clone(),
        sessions: sessions.clone(),
        client,
        metrics: metrics.clone(),
        idle_timeout: config.idle_timeout,
        stop: acceptor.handle.stop.clone(),
        _permit: permit,
    };
    acceptor.connections.spawn(relay.run());
    Ok(session)
}

async fn connected_socket(endpoint: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match endpoint {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(endpoint).await?;
    Ok(socket)
}

/// Relays one session's replies to its client until the session idles out.
struct Relay {
    session: Arc<Session>,
    socket: Arc<UdpSocket>,
    sessions: Sessions,
    client: SocketAddr,
    metrics: ListenerFlowMetrics,
    idle_timeout: Duration,
    /// The listener's stop: sessions then end once quiet for `DRAIN_QUIET`.
    stop: tokio_util::sync::CancellationToken,
    _permit: Permit,
}

impl Relay {
    async fn run(self) {
        let started = crate::clock::now();
        let _open = GaugeGuard::new(&self.metrics.udp_active_sessions);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut quiet = self.idle_timeout;
        loop {
            let idle = super::idle(&self.session.last_activity, quiet);
            tokio::select! {
                received = self.session.upstream.recv(&mut buf) => match received {
                    Ok(n) => {
                        self.session.last_activity.store(crate::clock::now_ns(), Ordering::Relaxed);
                        let reply = buf.get(..n).unwrap_or_default();
                        match self.socket.send_to(reply, self.client).await {
                            Ok(sent) => {
                                self.metrics.sent_bytes.inc_by(sent as u64);
                                if let Some(f) = &self.session.flow.endpoint().metrics.flows {
                                    f.received_bytes.inc_by(n as u64);
                                }
                            }
                            Err(e) => tracing::debug!(client = %self.client, error = %e, "reply not delivered"),
                        }
                    }
                    // ECONNREFUSED: the endpoint's port is closed (ICMP); the
                    // client will retry or the session idles out.
                    Err(e) => {
                        tracing::debug!(client = %self.client, error = %e, "upstream UDP error");
                        self.session.last_activity.store(crate::clock::now_ns(), Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = idle => break,
                _ = self.stop.cancelled(), if quiet != DRAIN_QUIET => {
                    quiet = quiet.min(DRAIN_QUIET);
                }
            }
        }
        let mut table = lock(&self.sessions);
        if table
            .get(&self.client)
            .is_some_and(|s| Arc::ptr_eq(s, &self.session))
        {
            table.remove(&self.client);
        }
        drop(table);
        self.metrics
            .flow_duration
            .observe(crate::clock::elapsed(started));
        tracing::debug!(client = %self.client, "UDP session closed: idle");
    }
}
