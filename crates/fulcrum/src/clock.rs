//! One monotonic clock for the whole process, in nanoseconds since start: the
//! time the pure state machines (peak-EWMA today; breakers, slow start later)
//! are driven with.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process (never 0, which the
/// balancers read as "no clock").
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}
