//! The per-endpoint circuit breaker: `consecutive_failures` in a row open
//! it, and an open breaker turns requests away from the endpoint at once;
//! after `open_interval` it is half-open and lets at most `half_open_probes`
//! requests through at a time; a probe that succeeds closes it, one that
//! fails opens it again for another interval.
//!
//! Outlier detection takes the same signal out of rotation too, but through
//! the control thread (up to a tick later, for every worker at once, for
//! 30 s and more); the breaker acts in the request's own worker on the very
//! next request and retries the endpoint after a short interval with a
//! bounded number of probes (Hystrix's and Finagle's failure accrual). So
//! it is off by default, for operators who want that reflex.
//!
//! Lock-free: three atomics per endpoint, read on every pick only when the
//! breaker is configured. Time is `crate::clock::now_ns`, passed in, so the
//! tests below drive it with a fake clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::Endpoint;
use crate::config::EndpointBreakerConfig;

/// What the breaker says to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go ahead.
    Closed,
    /// Half-open: go ahead as one of the limited probes; its result decides.
    Probe,
    /// Open (or half-open with every probe slot taken): not this endpoint.
    Refused,
}

/// An endpoint its breaker let a request through to. A probe's slot is
/// given back when this is dropped, so a request that ends without a
/// verdict (the client left, the budget refused the retry) cannot hold the
/// half-open breaker forever.
#[derive(Debug)]
pub struct Admitted {
    endpoint: Arc<Endpoint>,
    admit: Admit,
}

impl Admitted {
    pub fn new(endpoint: Arc<Endpoint>, admit: Admit) -> Self {
        Self { endpoint, admit }
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Reports the outcome to the endpoint's breaker.
    pub fn record(
        mut self,
        config: &EndpointBreakerConfig,
        success: bool,
        now_ns: u64,
    ) -> Option<Change> {
        let admit = std::mem::replace(&mut self.admit, Admit::Closed);
        self.endpoint.breaker.record(config, admit, success, now_ns)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.endpoint.breaker.release(self.admit);
    }
}

/// A change worth a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    /// Closed again after `open_for` (from the first opening).
    Closed {
        open_for: Duration,
    },
}

#[derive(Debug, Default)]
pub struct Breaker {
    failures: AtomicU32,
    /// When it last opened (re-opened after a failed probe); 0: closed.
    opened_ns: AtomicU64,
    /// When it first opened in the current open spell.
    open_since_ns: AtomicU64,
    /// Probes in flight while half-open.
    probes: AtomicU32,
}

impl Breaker {
    pub fn admit(&self, config: &EndpointBreakerConfig, now_ns: u64) -> Admit {
        let opened = self.opened_ns.load(Ordering::Acquire);
        if opened == 0 {
            return Admit::Closed;
        }
        let interval = u64::try_from(config.open_interval.as_nanos()).unwrap_or(u64::MAX);
        if now_ns.saturating_sub(opened) < interval {
            return Admit::Refused;
        }
        let taken = self.probes.fetch_add(1, Ordering::AcqRel);
        if taken < config.half_open_probes {
            Admit::Probe
        } else {
            self.probes.fetch_sub(1, Ordering::AcqRel);
            Admit::Refused
        }
    }

    /// The outcome of a request `admit` let through.
    pub fn record(
        &self,
        config: &EndpointBreakerConfig,
        admitted: Admit,
        success: bool,
        now_ns: u64,
    ) -> Option<Change> {
        if admitted == Admit::Probe {
            self.probes.fetch_sub(1, Ordering::AcqRel);
        }
        if success {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            if admitted == Admit::Probe && self.opened_ns.swap(0, Ordering::AcqRel) != 0 {
                let since = self.open_since_ns.load(Ordering::Acquire);
                return Some(Change::Closed {
                    open_for: Duration::from_nanos(now_ns.saturating_sub(since)),
                });
            }
            return None;
        }
        if admitted == Admit::Probe {
            // Another interval before the next probes.
            self.opened_ns.store(now_ns.max(1), Ordering::Release);
            return None;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= config.consecutive_failures
            && self
                .opened_ns
                .compare_exchange(0, now_ns.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.open_since_ns.store(now_ns, Ordering::Release);
            self.failures.store(0, Ordering::Relaxed);
            return Some(Change::Opened);
        }
        None
    }

    /// A request `admit` let through ended without a verdict on the
    /// endpoint (the client's fault, or fulcrum's): only its probe slot is
    /// given back.
    pub fn release(&self, admitted: Admit) {
        if admitted == Admit::Probe {
            self.probes.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub fn is_open(&self) -> bool {
        self.opened_ns.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn config() -> EndpointBreakerConfig {
        EndpointBreakerConfig {
            consecutive_failures: 3,
            open_interval: Duration::from_millis(100),
            half_open_probes: 2,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let (c, b) = (config(), Breaker::default());
        let t = 1000 * MS;
        for _ in 0..2 {
            assert_eq!(b.admit(&c, t), Admit::Closed);
            assert_eq!(b.record(&c, Admit::Closed, false, t), None);
        }
        b.record(&c, Admit::Closed, true, t);
        for _ in 0..2 {
            b.record(&c, Admit::Closed, false, t);
        }
        assert!(!b.is_open(), "the success broke the streak");
        assert_eq!(b.record(&c, Admit::Closed, false, t), Some(Change::Opened));
        assert_eq!(b.admit(&c, t + 99 * MS), Admit::Refused);
    }

    #[test]
    fn half_open_admits_a_limited_number_of_probes() {
        let (c, b) = (config(), Breaker::default());
        let t = 1000 * MS;
        for _ in 0..3 {
            b.record(&c, Admit::Closed, false, t);
        }
        let later = t + 100 * MS;
        assert_eq!(b.admit(&c, later), Admit::Probe);
        assert_eq!(b.admit(&c, later), Admit::Probe);
        assert_eq!(b.admit(&c, later), Admit::Refused, "two probes at a time");
        // A failed probe opens it for another interval.
        assert_eq!(b.record(&c, Admit::Probe, false, later), None);
        assert_eq!(b.admit(&c, later + 50 * MS), Admit::Refused);
        // The other probe's slot is still taken until it reports.
        let again = later + 100 * MS;
        assert_eq!(b.admit(&c, again), Admit::Probe);
        assert_eq!(b.admit(&c, again), Admit::Refused);
        assert_eq!(
            b.record(&c, Admit::Probe, true, again),
            Some(Change::Closed {
                open_for: Duration::from_millis(200)
            })
        );
        assert_eq!(b.admit(&c, again), Admit::Closed);
        b.record(&c, Admit::Probe, true, again);
    }
}
