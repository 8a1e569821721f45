//! Slow start: an endpoint that joins or returns to rotation after start-up
//! (added by a reload, healthy again, back from an ejection, undrained)
//! ramps from a small share of its weight to all of it over a window, so a
//! cold cache, an unwarmed JIT or a just-restarted pool is not flooded the
//! moment it is eligible; least_request and peak_ewma would otherwise
//! send it everything, since it has nothing in flight and no latency history.
//! Envoy's formula: the weight factor is `(elapsed / window)^(1 / aggression)`,
//! never below `min_weight_percent`.
//!
//! Hash policies (ring_hash, maglev, consistent_bounded, rendezvous) are
//! exempt: their tables place keys by weight, and a ramp would move keys
//! every step, breaking the stickiness they exist for.

use std::time::Duration;

use crate::config::SlowStartConfig;

/// Weights the balancer gets while a cluster ramps are the configured ones
/// times this, so a ramped endpoint's share has a resolution of 1 %
/// of its weight (a configured weight of 1 could not ramp otherwise).
pub const SCALE: u32 = 100;

/// The share (0 < f <= 1) of its weight an endpoint has `elapsed` into its
/// ramp.
pub fn factor(config: &SlowStartConfig, elapsed: Duration) -> f64 {
    if elapsed >= config.window || config.window.is_zero() {
        return 1.0;
    }
    let progress = elapsed.as_secs_f64() / config.window.as_secs_f64();
    let aggression = f64::from(config.aggression_milli.max(1)) / 1000.0;
    let min = f64::from(config.min_weight_percent) / 100.0;
    progress.powf(1.0 / aggression).max(min).min(1.0)
}

/// The balancer weight of an endpoint with `weight` configured, at `factor`
/// of it, in a ramping cluster (see [`SCALE`]).
pub fn ramped(weight: u32, factor: f64) -> u32 {
    let full = f64::from(weight.saturating_mul(SCALE));
    ((full * factor).round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(aggression_milli: u32) -> SlowStartConfig {
        SlowStartConfig {
            window: Duration::from_secs(30),
            aggression_milli,
            min_weight_percent: 10,
        }
    }

    #[test]
    fn linear_by_default_from_the_minimum_to_full() {
        let c = config(1000);
        assert_eq!(factor(&c, Duration::ZERO), 0.1, "never below the minimum");
        assert!((factor(&c, Duration::from_secs(15)) - 0.5).abs() < 1e-9);
        assert_eq!(factor(&c, Duration::from_secs(30)), 1.0);
        assert_eq!(factor(&c, Duration::from_secs(300)), 1.0);
        assert_eq!(ramped(3, 0.5), 150);
        assert_eq!(ramped(1, 0.001), 1, "never zero");
    }

    #[test]
    fn aggression_above_one_ramps_faster_early() {
        let half = Duration::from_secs(15);
        let linear = factor(&config(1000), half);
        let aggressive = factor(&config(2000), half);
        assert!(aggressive > linear, "{aggressive} > {linear}");
        assert!((aggressive - 0.5f64.sqrt()).abs() < 1e-9);
    }
}
