//! Connecting a flow to an endpoint: pick, connect with a timeout, and on
//! failure try the next endpoint, up to the cluster's `connect_attempts`.

use std::sync::Arc;

use tokio::net::TcpStream;

use super::Refusal;
use crate::cluster::{ActiveFlow, Cluster, Endpoint};
use crate::telemetry::metrics::GaugeGuard;

/// An upstream connection with what it holds: the flow's slot in the
/// endpoint's load count and the cluster's open-connection gauge.
pub struct Upstream {
    pub stream: TcpStream,
    pub flow: ActiveFlow,
    /// The flow's slot under the cluster's `max_connections`.
    pub cluster_permit: Option<crate::limit::Permit>,
    _open: GaugeGuard,
}

pub async fn connect(cluster: &Cluster, hash: Option<u64>) -> Result<Upstream, Refusal> {
    let metrics = &cluster.connections;
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    for _ in 0..cluster.config.connect_attempts {
        let Some(endpoint) = cluster.pick_untried(fastrand::u64(..), hash, &tried) else {
            break;
        };
        let endpoint = endpoint.clone();
        // Counted from the pick, so least-request sees connects in progress.
        let flow = ActiveFlow::start(endpoint.clone());
        let started = crate::clock::now();
        let result = tokio::time::timeout(
            cluster.config.connect_timeout,
            TcpStream::connect(endpoint.address),
        )
        .await;
        match result {
            Ok(Ok(stream)) => {
                endpoint.record_connect(crate::clock::elapsed(started));
                let _ = stream.set_nodelay(true);
                metrics.opened.inc();
                return Ok(Upstream {
                    stream,
                    flow,
                    cluster_permit: None,
                    _open: GaugeGuard::new(&metrics.active),
                });
            }
            Ok(Err(e)) => {
                tracing::debug!(cluster = %cluster.name(), endpoint = %endpoint.label, error = %e, "connect failed; trying the next endpoint");
                endpoint.record_connect_failure();
            }
            Err(_) => {
                tracing::debug!(cluster = %cluster.name(), endpoint = %endpoint.label, timeout = ?cluster.config.connect_timeout, "connect timed out; trying the next endpoint");
                endpoint.record_connect_failure();
            }
        }
        tried.push(endpoint);
    }
    Err(if tried.is_empty() {
        Refusal::NoHealthyUpstream
    } else {
        Refusal::UpstreamConnectFailure
    })
}
