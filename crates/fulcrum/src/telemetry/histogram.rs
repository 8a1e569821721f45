//! A latency histogram that workers update with atomics only.
//!
//! prometheus-client's `Histogram` takes a mutex on every `observe`; two
//! workers recording to the same endpoint would contend on every request. This
//! one keeps one atomic counter per bucket plus an atomic sum (in nanoseconds)
//! and renders the cumulative form only when `/metrics` is scraped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds in seconds: 250 us .. 30 s, so loopback requests land in the
/// first buckets and timeouts in the last.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// Upper bounds in seconds for L4 flow lifetimes: a DNS exchange to a
/// day-long database session.
pub const FLOW_BUCKETS: [f64; 12] = [
    0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

#[derive(Clone, Debug)]
pub struct LatencyHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    bounds_ns: Box<[u64]>,
    /// One per bound plus the +Inf bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::with_buckets(&LATENCY_BUCKETS)
    }
}

impl LatencyHistogram {
    /// A histogram over `bounds` (seconds, ascending).
    pub fn with_buckets(bounds: &'static [f64]) -> Self {
        Self(Arc::new(Inner {
            bounds,
            bounds_ns: bounds.iter().map(|s| (s * 1e9) as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }))
    }

    /// For flow durations ([`FLOW_BUCKETS`]).
    pub fn flows() -> Self {
        Self::with_buckets(&FLOW_BUCKETS)
    }

    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.0.bounds_ns.partition_point(|&b| b < ns);
        if let Some(count) = self.0.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Cumulative `(upper bound, count)` pairs, the sum in seconds and the count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.0.counts.len());
        for (i, c) in self.0.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            buckets.push((
                self.0.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                cumulative,
            ));
        }
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, sum, cumulative)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, sum, count) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(100)); // <= 250 us
        h.observe(Duration::from_micros(250)); // exactly on the bound: counted in it
        h.observe(Duration::from_millis(3)); // <= 5 ms
        h.observe(Duration::from_secs(60)); // +Inf
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 4);
        assert_eq!(buckets[0], (0.00025, 2));
        assert_eq!(buckets[4], (0.005, 3));
        assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 4)));
        assert!((sum - 60.00335).abs() < 1e-9);
    }
}
