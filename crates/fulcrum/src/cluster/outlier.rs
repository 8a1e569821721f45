//! Outlier detection (passive health), with Envoy's semantics and defaults:
//! endpoints that fail real traffic are ejected for a while, faster than an
//! active check can notice and even when a cluster has none.
//!
//! Split in two so the hot path stays a few relaxed atomics: workers only
//! count ([`OutlierCounters`], one per endpoint), and the cluster manager
//! evaluates the counts on the control thread's tick ([`evaluate`], pure,
//! `now` passed in). Detectors:
//! - consecutive 5xx (any 5xx, and a failure with no response at all);
//! - consecutive gateway failures (502, 503, 504, and connect failures,
//!   resets and timeouts: the endpoint or the path to it is broken);
//! - success rate: once per `interval`, among endpoints with enough
//!   requests, an endpoint whose success rate is below mean - k * stdev;
//! - failure percentage: once per `interval`, an endpoint whose failure
//!   share is at least a fixed threshold (off unless configured).
//!
//! An ejection lasts `base_ejection_time` times the number of times the
//! endpoint was ejected (capped at `max_ejection_time`); that number decays
//! by one per interval the endpoint spends in rotation. At most
//! `max_ejection_percent` of a cluster is ejected at once, but always one,
//! so a small cluster can still shed its one bad endpoint.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::OutlierDetectionConfig;

/// What a worker saw of one request to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 5xx that is not a gateway failure (500, 501, 505...).
    ServerError,
    /// 502, 503, 504, or no response at all (connect failure, reset, timeout).
    GatewayFailure,
}

impl Outcome {
    pub fn of_status(status: u16) -> Self {
        match status {
            502..=504 => Outcome::GatewayFailure,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }
}

/// Per-endpoint counts, bumped by workers (relaxed atomics, no lock) and read
/// by the control side, which also resets the consecutive counts when it
/// ejects the endpoint.
#[derive(Debug, Default)]
pub struct OutlierCounters {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
}

impl OutlierCounters {
    pub fn record(&self, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Success => {
                // Loads first: on the common path the counters are already
                // zero and a store would dirty a shared cache line for nothing.
                if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                    self.consecutive_5xx.store(0, Ordering::Relaxed);
                }
                if self.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                    self.consecutive_gateway.store(0, Ordering::Relaxed);
                }
            }
            Outcome::ServerError => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.consecutive_5xx.fetch_add(1, Ordering::Relaxed);
                self.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            Outcome::GatewayFailure => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.consecutive_5xx.fetch_add(1, Ordering::Relaxed);
                self.consecutive_gateway.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn sample(&self) -> Sample {
        Sample {
            consecutive_5xx: self.consecutive_5xx.load(Ordering::Relaxed),
            consecutive_gateway: self.consecutive_gateway.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// An ejected endpoint starts counting afresh when it returns (Envoy
    /// does the same), so one old failure cannot eject it again at once.
    pub fn reset_consecutive(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
    }
}

/// One reading of an endpoint's counters; `requests` and `failures` are
/// running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub consecutive_5xx: u32,
    pub consecutive_gateway: u32,
    pub requests: u64,
    pub failures: u64,
}

/// Which detector ejected an endpoint (the metric label and log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    SuccessRate,
    FailurePercentage,
}

impl Detector {
    pub fn name(self) -> &'static str {
        match self {
            Detector::Consecutive5xx => "consecutive_5xx",
            Detector::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Detector::SuccessRate => "success_rate",
            Detector::FailurePercentage => "failure_percentage",
        }
    }
}

/// What the manager keeps per endpoint between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlierState {
    /// Ejected until then.
    ejected_until: Option<Instant>,
    /// Ejections not yet decayed: the next ejection lasts this many base times.
    ejections: u32,
    /// Totals at the start of the current interval.
    interval_start: (u64, u64),
}

impl OutlierState {
    pub fn is_ejected(&self) -> bool {
        self.ejected_until.is_some()
    }

    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }

    /// An active health check passed: the endpoint returns now (Envoy's
    /// `successful_active_health_check_uneject_host`). Returns whether it
    /// was ejected.
    pub fn return_now(&mut self) -> bool {
        self.ejected_until.take().is_some()
    }
}

/// A decision about one endpoint (its index in the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Ejected {
        detector: Detector,
        duration: Duration,
    },
    /// Its ejection time is over.
    Returned,
    /// A detector found it an outlier, but ejecting it would pass
    /// `max_ejection_percent`; it stays in rotation.
    Overflow { detector: Detector },
}

/// Evaluates one cluster at `now`. `interval_due`: the interval ended, so
/// the statistical detectors run and ejection counts decay. `states` and
/// `samples` are lined up (one per endpoint).
pub fn evaluate(
    config: &OutlierDetectionConfig,
    now: Instant,
    interval_due: bool,
    states: &mut [OutlierState],
    samples: &[Sample],
) -> Vec<(usize, Change)> {
    let mut changes = Vec::new();
    for (i, state) in states.iter_mut().enumerate() {
        if state.ejected_until.is_some_and(|until| until <= now) {
            state.ejected_until = None;
            changes.push((i, Change::Returned));
        }
    }
    let mut outliers: Vec<(usize, Detector)> = Vec::new();
    for (i, (state, sample)) in states.iter().zip(samples).enumerate() {
        if state.is_ejected() {
            continue;
        }
        if config.consecutive_gateway_failure > 0
            && sample.consecutive_gateway >= config.consecutive_gateway_failure
        {
            outliers.push((i, Detector::ConsecutiveGatewayFailure));
        } else if config.consecutive_5xx > 0 && sample.consecutive_5xx >= config.consecutive_5xx {
            outliers.push((i, Detector::Consecutive5xx));
        }
    }
    if interval_due {
        let window: Vec<(u64, u64)> = states
            .iter()
            .zip(samples)
            .map(|(s, now)| {
                (
                    now.requests.saturating_sub(s.interval_start.0),
                    now.failures.saturating_sub(s.interval_start.1),
                )
            })
            .collect();
        for i in success_rate_outliers(config, states, &window) {
            if !outliers.iter().any(|(j, _)| *j == i) {
                outliers.push((i, Detector::SuccessRate));
            }
        }
        for i in failure_percentage_outliers(config, states, &window) {
            if !outliers.iter().any(|(j, _)| *j == i) {
                outliers.push((i, Detector::FailurePercentage));
            }
        }
        for (state, sample) in states.iter_mut().zip(samples) {
            state.interval_start = (sample.requests, sample.failures);
            if !state.is_ejected() {
                state.ejections = state.ejections.saturating_sub(1);
            }
        }
    }
    let total = states.len();
    for (i, detector) in outliers {
        let ejected = states.iter().filter(|s| s.is_ejected()).count();
        if !may_eject(config.max_ejection_percent, ejected, total) {
            changes.push((i, Change::Overflow { detector }));
            continue;
        }
        let state = &mut states[i];
        state.ejections = state.ejections.saturating_add(1);
        let duration = config
            .base_ejection_time
            .saturating_mul(state.ejections)
            .min(config.max_ejection_time.max(config.base_ejection_time));
        state.ejected_until = Some(now + duration);
        changes.push((i, Change::Ejected { detector, duration }));
    }
    changes
}

/// At most `percent` of the cluster ejected at once, but always one.
fn may_eject(percent: u32, ejected: usize, total: usize) -> bool {
    ejected == 0 || (ejected as u64 + 1) * 100 <= u64::from(percent) * total as u64
}

/// Endpoints in rotation with at least `request_volume` requests this
/// interval, when there are at least `minimum_hosts` of them.
fn with_volume(
    states: &[OutlierState],
    window: &[(u64, u64)],
    volume: u32,
    minimum_hosts: u32,
) -> Vec<(usize, f64)> {
    let eligible: Vec<(usize, f64)> = states
        .iter()
        .zip(window)
        .enumerate()
        .filter(|(_, (s, (requests, _)))| !s.is_ejected() && *requests >= u64::from(volume.max(1)))
        .map(|(i, (_, (requests, failures)))| {
            (i, 100.0 * (*requests - *failures) as f64 / *requests as f64)
        })
        .collect();
    if eligible.len() < minimum_hosts as usize {
        return Vec::new();
    }
    eligible
}

/// Envoy's success-rate detector: success rates below mean - factor * stdev.
fn success_rate_outliers(
    config: &OutlierDetectionConfig,
    states: &[OutlierState],
    window: &[(u64, u64)],
) -> Vec<usize> {
    if config.success_rate_stdev_factor == 0 {
        return Vec::new();
    }
    let rates = with_volume(
        states,
        window,
        config.success_rate_request_volume,
        config.success_rate_minimum_hosts,
    );
    if rates.is_empty() {
        return Vec::new();
    }
    let n = rates.len() as f64;
    let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
    let variance = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
    let factor = f64::from(config.success_rate_stdev_factor) / 1000.0;
    let threshold = mean - factor * variance.sqrt();
    rates
        .into_iter()
        .filter(|(_, r)| *r < threshold)
        .map(|(i, _)| i)
        .collect()
}

/// Envoy's failure-percentage detector: failure shares at or above a threshold.
fn failure_percentage_outliers(
    config: &OutlierDetectionConfig,
    states: &[OutlierState],
    window: &[(u64, u64)],
) -> Vec<usize> {
    let Some(threshold) = config.failure_percentage_threshold else {
        return Vec::new();
    };
    with_volume(
        states,
        window,
        config.failure_percentage_request_volume,
        config.failure_percentage_minimum_hosts,
    )
    .into_iter()
    .filter(|(_, success)| 100.0 - success >= f64::from(threshold))
    .map(|(i, _)| i)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierDetectionConfig {
        OutlierDetectionConfig::default()
    }

    fn failing(consecutive: u32) -> Sample {
        Sample {
            consecutive_5xx: consecutive,
            consecutive_gateway: consecutive,
            requests: u64::from(consecutive),
            failures: u64::from(consecutive),
        }
    }

    #[test]
    fn outcomes_by_status() {
        assert_eq!(Outcome::of_status(200), Outcome::Success);
        assert_eq!(Outcome::of_status(404), Outcome::Success);
        assert_eq!(Outcome::of_status(500), Outcome::ServerError);
        assert_eq!(Outcome::of_status(503), Outcome::GatewayFailure);
    }

    #[test]
    fn counters_count_streaks_and_a_success_ends_them() {
        let c = OutlierCounters::default();
        c.record(Outcome::GatewayFailure);
        c.record(Outcome::ServerError);
        assert_eq!(c.sample().consecutive_5xx, 2);
        assert_eq!(
            c.sample().consecutive_gateway,
            0,
            "a 500 ends a gateway streak"
        );
        c.record(Outcome::Success);
        let s = c.sample();
        assert_eq!((s.consecutive_5xx, s.requests, s.failures), (0, 3, 2));
    }

    #[test]
    fn consecutive_failures_eject_for_base_times_ejections_then_return() {
        let t0 = crate::clock::now();
        let cfg = config();
        let mut states = vec![OutlierState::default(); 2];
        let ok = Sample::default();
        let changes = evaluate(&cfg, t0, false, &mut states, &[failing(4), ok]);
        assert!(changes.is_empty(), "4 failures are below the default 5");
        let changes = evaluate(&cfg, t0, false, &mut states, &[failing(5), ok]);
        assert_eq!(
            changes,
            [(
                0,
                Change::Ejected {
                    detector: Detector::ConsecutiveGatewayFailure,
                    duration: Duration::from_secs(30)
                }
            )]
        );
        let later = t0 + Duration::from_secs(29);
        assert!(evaluate(&cfg, later, false, &mut states, &[ok, ok]).is_empty());
        let back = t0 + Duration::from_secs(30);
        assert_eq!(
            evaluate(&cfg, back, false, &mut states, &[ok, ok]),
            [(0, Change::Returned)]
        );
        // Ejected again before any decay: twice the base time.
        let again = evaluate(&cfg, back, false, &mut states, &[failing(5), ok]);
        assert!(matches!(
            again[..],
            [(0, Change::Ejected { duration, .. })] if duration == Duration::from_secs(60)
        ));
    }

    #[test]
    fn ejection_time_is_capped_and_its_multiplier_decays_in_rotation() {
        let mut t = crate::clock::now();
        let cfg = config();
        let mut states = vec![OutlierState::default(); 1];
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            for (_, change) in evaluate(&cfg, t, false, &mut states, &[failing(5)]) {
                if let Change::Ejected { duration, .. } = change {
                    last = duration;
                }
            }
            t += last;
        }
        assert_eq!(last, cfg.max_ejection_time, "capped at max_ejection_time");
        // In rotation for enough intervals, the multiplier decays to zero.
        let _ = evaluate(&cfg, t, false, &mut states, &[Sample::default()]);
        for _ in 0..20 {
            t += cfg.interval;
            let _ = evaluate(&cfg, t, true, &mut states, &[Sample::default()]);
        }
        let changes = evaluate(&cfg, t, false, &mut states, &[failing(5)]);
        assert!(matches!(
            changes[..],
            [(0, Change::Ejected { duration, .. })] if duration == cfg.base_ejection_time
        ));
    }

    #[test]
    fn at_most_max_ejection_percent_but_always_one() {
        let t0 = crate::clock::now();
        let cfg = config(); // 10 %
        let mut states = vec![OutlierState::default(); 3];
        let samples = [failing(5), failing(5), failing(5)];
        let changes = evaluate(&cfg, t0, false, &mut states, &samples);
        let ejected = changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::Ejected { .. }))
            .count();
        assert_eq!(ejected, 1, "10 % of 3 rounds down to 0, yet one may go");
        assert_eq!(changes.len(), 3, "the other two are overflows");
        let mut states = vec![OutlierState::default(); 20];
        let samples = vec![failing(5); 20];
        let changes = evaluate(&cfg, t0, false, &mut states, &samples);
        let ejected = states.iter().filter(|s| s.is_ejected()).count();
        assert_eq!(ejected, 2, "10 % of 20: {changes:?}");
    }

    #[test]
    fn success_rate_ejects_the_low_outlier_once_per_interval() {
        let t0 = crate::clock::now();
        let mut cfg = config();
        cfg.max_ejection_percent = 100;
        let mut states = vec![OutlierState::default(); 6];
        // Five endpoints at 99-100 % success, one at 70 %: over 100 requests each.
        let mut samples: Vec<Sample> = (0..6)
            .map(|i| Sample {
                requests: 200,
                failures: if i == 5 { 60 } else { i % 2 },
                ..Sample::default()
            })
            .collect();
        assert!(
            evaluate(&cfg, t0, false, &mut states, &samples).is_empty(),
            "statistical detectors run only when the interval is due"
        );
        let changes = evaluate(&cfg, t0, true, &mut states, &samples);
        assert_eq!(
            changes,
            [(
                5,
                Change::Ejected {
                    detector: Detector::SuccessRate,
                    duration: cfg.base_ejection_time
                }
            )]
        );
        // The next interval counts only its own requests: too few now.
        for s in &mut samples {
            s.requests += 10;
        }
        assert!(evaluate(&cfg, t0 + cfg.interval, true, &mut states, &samples).is_empty());
    }

    #[test]
    fn success_rate_needs_enough_hosts_and_failure_percentage_is_off_by_default() {
        let t0 = crate::clock::now();
        let mut cfg = config();
        cfg.max_ejection_percent = 100;
        let mut states = vec![OutlierState::default(); 4];
        let samples: Vec<Sample> = (0..4)
            .map(|i| Sample {
                requests: 200,
                failures: if i == 3 { 190 } else { 0 },
                ..Sample::default()
            })
            .collect();
        assert!(
            evaluate(&cfg, t0, true, &mut states, &samples).is_empty(),
            "4 hosts are below success_rate_minimum_hosts (5)"
        );
        cfg.failure_percentage_threshold = Some(85);
        cfg.failure_percentage_minimum_hosts = 4;
        let changes = evaluate(&cfg, t0 + cfg.interval, true, &mut states, &samples);
        assert!(changes.is_empty(), "the new interval has no requests yet");
        let later: Vec<Sample> = samples
            .iter()
            .map(|s| Sample {
                requests: s.requests * 2,
                failures: s.failures * 2,
                ..*s
            })
            .collect();
        let changes = evaluate(&cfg, t0 + cfg.interval * 2, true, &mut states, &later);
        assert!(matches!(
            changes[..],
            [(
                3,
                Change::Ejected {
                    detector: Detector::FailurePercentage,
                    ..
                }
            )]
        ));
    }
}
