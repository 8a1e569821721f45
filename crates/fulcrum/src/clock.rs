//! The one place fulcrum reads the clock (`clippy.toml` bans direct reads
//! elsewhere): a monotonic clock for durations and deadlines, and the time
//! the pure state machines (peak-EWMA today; breakers, slow start later) are
//! driven with, in nanoseconds since start. Keeping reads here means a test
//! or a simulation can find every place time enters the program.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Now, on the monotonic clock.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Time since `start` (zero if `start` is in the future).
pub fn elapsed(start: Instant) -> Duration {
    now().saturating_duration_since(start)
}

/// A tokio deadline `after` from now, for `timeout_at` and `sleep_until`.
pub fn deadline(after: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(now()) + after
}

/// Wall-clock seconds since the Unix epoch, for timestamps operators read
/// (never for durations: the wall clock can step).
#[allow(clippy::disallowed_methods)]
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nanoseconds since the first call in this process (never 0, which the
/// balancers read as "no clock").
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(now);
    u64::try_from(elapsed(*epoch).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ns_is_never_zero_and_never_goes_back() {
        let a = now_ns();
        let b = now_ns();
        assert!(a >= 1);
        assert!(b >= a);
    }

    #[test]
    fn elapsed_of_a_future_instant_is_zero() {
        let future = now() + Duration::from_secs(3600);
        assert_eq!(elapsed(future), Duration::ZERO);
    }
}
