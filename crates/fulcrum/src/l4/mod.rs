//! L4 proxying: TCP and UDP forwarded without reading the payload. Only two
//! things are ever inspected: a PROXY protocol header from a trusted L4 tier
//! (`listener::proxy_protocol`) and, on `tls_passthrough` listeners, the
//! ClientHello's SNI (`inspect`). Parsing lives in the pure `fulcrum-wire`
//! crate; this module is the I/O around it.
//!
//! Flow: accept -> admit (listener cap) -> PROXY header -> SNI route ->
//! cluster cap -> balancer pick (flow hash) -> connect, next endpoint on
//! refusal -> PROXY header out -> copy both ways (`copy`: splice on Linux).

pub mod connect;
pub mod copy;
pub mod inspect;
#[cfg(target_os = "linux")]
mod splice;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::FlowHashKey;

/// IP protocol numbers, part of the 5-tuple.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// The balancer hash of a flow: the same on every instance for the same
/// client and listener address, so hashing policies (maglev, ring_hash ...)
/// send a flow to the same endpoint whichever instance the network picks.
pub fn flow_hash(key: FlowHashKey, client: SocketAddr, local: SocketAddr, protocol: u8) -> u64 {
    match key {
        FlowHashKey::FiveTuple => fulcrum_balance::hash::flow_hash(client, local, protocol),
        FlowHashKey::SourceIp => fulcrum_balance::hash::source_ip_hash(client.ip()),
    }
}

/// Resolves once nothing has moved for `timeout`: `last_activity` is the
/// [`crate::clock::now_ns`] of the last byte or datagram, stored by the copy
/// (a clock read per chunk instead of a timer reset per chunk).
pub async fn idle(last_activity: &AtomicU64, timeout: Duration) {
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    loop {
        let deadline = last_activity
            .load(Ordering::Relaxed)
            .saturating_add(timeout_ns);
        let now = crate::clock::now_ns();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_nanos(deadline - now)).await;
    }
}

/// Why a connection was closed without being served (L4 flows, and the
/// admission and PROXY-header checks HTTP listeners share): one place for
/// the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener's `max_connections` is reached.
    MaxConnections,
    /// PROXY protocol is required and the peer is not in `accept_proxy_protocol_from`.
    UntrustedSource,
    /// The PROXY header was missing or malformed.
    BadProxyHeader,
    /// The PROXY header or the ClientHello did not arrive within `inspect_timeout`.
    InspectTimeout,
    /// A tls_passthrough listener got bytes that are not a TLS ClientHello.
    NotTls,
    /// No route matched the SNI and the listener has no default cluster.
    NoRoute,
    /// Every endpoint of the cluster is ejected.
    NoHealthyUpstream,
    /// The cluster's `max_connections` is reached.
    ClusterMaxConnections,
    /// Every connect attempt failed (refused, unreachable, timeout).
    UpstreamConnectFailure,
    /// The client closed before its flow could be set up.
    ClientClosed,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::UntrustedSource => "untrusted_source",
            Refusal::BadProxyHeader => "bad_proxy_header",
            Refusal::InspectTimeout => "inspect_timeout",
            Refusal::NotTls => "not_tls",
            Refusal::NoRoute => "no_route",
            Refusal::NoHealthyUpstream => "no_healthy_upstream",
            Refusal::ClusterMaxConnections => "cluster_max_connections",
            Refusal::UpstreamConnectFailure => "upstream_connect_failure",
            Refusal::ClientClosed => "client_closed",
        }
    }
}
