//! Active health checking: a pure threshold state machine ([`HealthState`],
//! kept per endpoint by the cluster manager) and the probe loop that feeds it
//! from the control thread.
//!
//! Semantics follow HAProxy's `rise`/`fall`: an endpoint becomes unhealthy
//! after `unhealthy_threshold` consecutive failures and healthy again after
//! `healthy_threshold` consecutive successes. Endpoints start healthy (HAProxy's
//! default) and the first probe runs at once, so a dead endpoint at start is
//! ejected within `unhealthy_threshold` intervals.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::transport::{ConnectError, Transport};
use crate::config::{HealthCheckConfig, HealthCheckKind};
use crate::telemetry::metrics::{HealthCheckLabels, Metrics};

/// Consecutive-result counter with hysteresis. Pure: fed one result at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    streak: u32,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

impl HealthState {
    pub fn new(healthy_threshold: u32, unhealthy_threshold: u32) -> Self {
        Self {
            healthy: true,
            streak: 0,
            healthy_threshold: healthy_threshold.max(1),
            unhealthy_threshold: unhealthy_threshold.max(1),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Takes `previous`'s state and streak: a reload that keeps the
    /// endpoint (perhaps with new thresholds) must not re-admit an ejected
    /// one or forget a streak under way.
    pub fn carry_over(&mut self, previous: &HealthState) {
        self.healthy = previous.healthy;
        self.streak = previous.streak;
    }

    /// Feeds one probe result; returns the new state when it flips.
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if success == self.healthy {
            // A result that agrees with the current state resets the count toward flipping.
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.healthy {
            self.unhealthy_threshold
        } else {
            self.healthy_threshold
        };
        if self.streak >= needed {
            self.healthy = success;
            self.streak = 0;
            Some(success)
        } else {
            None
        }
    }
}

/// Why a probe failed, for logs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Connect(#[from] ConnectError),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("unexpected status {0}")]
    Status(u16),
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
}

/// Runs one probe against `address`, through the cluster's transport: with
/// TLS to the endpoints, the check's handshake is verified like a request's
/// (HAProxy's `check-ssl`, Envoy's transport socket), and an HTTP check
/// speaks HTTP/2 when ALPN chose it.
pub async fn probe(
    transport: &Transport,
    address: std::net::SocketAddr,
    check: &HealthCheckConfig,
) -> Result<(), ProbeError> {
    let attempt = async {
        let stream = transport.connect(address).await?;
        match &check.kind {
            HealthCheckKind::Tcp => Ok(()),
            HealthCheckKind::Http {
                method,
                path,
                host,
                expected_statuses,
            } => {
                let h2 = stream.is_h2();
                let io = TokioIo::new(stream);
                let host = host.clone().unwrap_or_else(|| address.to_string());
                let req = http::Request::builder()
                    .method(method.as_str())
                    .header(http::header::USER_AGENT, "fulcrum-health-check");
                let status = if h2 {
                    // HTTP/2 carries the host as :authority, from the URI.
                    let req = req.uri(format!("https://{host}{path}"));
                    let (mut sender, conn) =
                        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                    tokio::spawn(conn);
                    let req = req.body(Empty::<Bytes>::new())?;
                    sender.send_request(req).await?.status()
                } else {
                    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                    tokio::spawn(conn);
                    let req = req
                        .uri(path.as_str())
                        .header(http::header::HOST, host)
                        .header(http::header::CONNECTION, "close")
                        .body(Empty::<Bytes>::new())?;
                    sender.send_request(req).await?.status()
                };
                let status = status.as_u16();
                if expected_statuses.iter().any(|r| r.contains(status)) {
                    Ok(())
                } else {
                    Err(ProbeError::Status(status))
                }
            }
        }
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .unwrap_or(Err(ProbeError::Timeout(check.timeout)))
}

/// One endpoint's check result, as the probe loop reports it: `Err`
/// carries why it failed, for the log line of an ejection.
pub type CheckReport = Box<dyn Fn(Result<(), String>) + Send + Sync>;

/// Probes one endpoint every `interval` (plus jitter) until the task is
/// aborted, and reports every result. The loop decides nothing: thresholds
/// and eligibility belong to the cluster manager.
pub async fn probe_loop(
    cluster: String,
    address: std::net::SocketAddr,
    transport: Arc<Transport>,
    check: HealthCheckConfig,
    metrics: Arc<Metrics>,
    report: CheckReport,
) {
    let label = |result: &'static str| HealthCheckLabels {
        cluster: cluster.clone(),
        endpoint: address.to_string(),
        result,
    };
    let success = metrics
        .health_checks
        .get_or_create(&label("success"))
        .clone();
    let failure = metrics
        .health_checks
        .get_or_create(&label("failure"))
        .clone();
    // Spread the first probes over the jitter window so a large cluster does not probe in lockstep.
    tokio::time::sleep(jitter(check.jitter)).await;
    loop {
        let result = probe(&transport, address, &check).await;
        match &result {
            Ok(()) => {
                success.inc();
            }
            Err(e) => {
                failure.inc();
                tracing::debug!(%cluster, endpoint = %address, error = %e, "health check failed");
            }
        };
        report(result.map_err(|e| e.to_string()));
        tokio::time::sleep(check.interval + jitter(check.jitter)).await;
    }
}

fn jitter(max: Duration) -> Duration {
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(fastrand::u64(0..=max_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::HealthState;

    #[test]
    fn needs_consecutive_failures_to_eject() {
        let mut s = HealthState::new(2, 3);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None, "a success resets the failure streak");
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), Some(false));
        assert!(!s.is_healthy());
    }

    #[test]
    fn needs_consecutive_successes_to_return() {
        let mut s = HealthState::new(2, 1);
        assert_eq!(s.observe(false), Some(false));
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), Some(true));
        assert!(s.is_healthy());
    }

    #[test]
    fn agreeing_results_change_nothing() {
        let mut s = HealthState::new(1, 1);
        for _ in 0..5 {
            assert_eq!(s.observe(true), None);
        }
    }
}
