//! `peak_ewma`: latency-aware power of two choices, after Finagle's
//! `PeakEwma` load metric (`finagle-core/.../loadbalancer/PeakEwma.scala`)
//! and the Peak-EWMA balancer that tower and Linkerd 2 use (`tower::load::peak_ewma`,
//! linkerd/linkerd2#1080; "Beyond Round Robin: Load Balancing for Latency",
//! Linkerd blog, 2016).
//!
//! Each endpoint carries an estimate of its response time; a pick draws
//! `choice_count` candidates (in proportion to weight, as `least_request`
//! does; all of them for small sets) and takes the one with the lowest
//! `cost = estimate * (in_flight + 1)` per unit weight. In-flight counts
//! alone (`least_request`) only notice a slow endpoint once requests pile up
//! on it; the estimate notices from the first slow response.
//!
//! The estimate ([`PeakEwma`]) is an exponentially weighted moving average
//! over *time*, not over samples, and peak-sensitive:
//!
//! * a response slower than the estimate replaces it at once ("peak"), so
//!   one slow response is enough to shed traffic;
//! * a faster one is blended in as `est * w + rtt * (1 - w)`, with
//!   `w = exp(-elapsed / decay_ns)` and `elapsed` the time since the last
//!   update, so recovery is gradual, on the scale of `decay_ns` (default
//!   10 s, as Finagle and Linkerd);
//! * with no responses, the cost decays towards zero (Finagle and tower do
//!   this by observing a 0 on every read): an endpoint that got no traffic
//!   because it looked slow is eventually tried again, instead of being
//!   judged forever by its last bad response. Reads do not write, so picks
//!   do not contend on the estimate. The decay is a reason to probe, not an
//!   observation: the next response is blended with the last *observed*
//!   estimate (weight `w` from the time since that observation), so one
//!   fast probe after a bad spell does not wipe the spell out.
//!
//! **Failures.** A latency balancer rewards whatever answers fast, and an
//! endpoint that fails fast (a 503 from an overloaded or misconfigured
//! backend, a refused connection) answers fastest of all: it would attract
//! *more* traffic the more it fails. This is a known failure mode of every
//! least-loaded or latency-based balancer ("Site Reliability Engineering",
//! O'Reilly 2016, ch. 20, on least-loaded round robin "sinkholing" traffic
//! into an unhealthy task; ingress-nginx's EWMA in
//! kubernetes/ingress-nginx#5540 and #9882; MOSN's PeakEWMA in
//! mosn/mosn#2323); Linkerd answers it outside the estimate, with failure
//! accrual that takes failing endpoints out of the balancer
//! (linkerd/linkerd2-proxy#2375). Here [`PeakEwma::observe_failure`] records
//! a failure as if it were a response of
//! `max(failure_penalty_ns, failure_multiplier * current estimate)`
//! (defaults 1 s and 5), capped at [`MAX_ESTIMATE_NS`]:
//!
//! * 1 s is far slower than a healthy request/response backend (the
//!   defaults assume milliseconds to tens of milliseconds), so a failing
//!   endpoint's cost jumps above its peers' at once. It is then picked
//!   again only when its decaying estimate undercuts a peer's cost `p`
//!   (latency x (in flight + 1)), and that probe's failure sets it to
//!   `max(1 s, 5 p)`: a persistently failing endpoint is probed about
//!   every `decay_ns * ln(max(1 s / p, 5))`, at least 16 s with the
//!   defaults (simulated against one 20 ms peer at 1 request/ms: the
//!   first request, then probes at 6, 24, 41 and 57 s);
//! * `5 x` keeps a failure clearly worse than a success for backends whose
//!   normal latency is itself near or above 1 s, and compounds on
//!   consecutive failures (a burst of failures drives the estimate to the
//!   cap: a crude exponential back-off). Once the endpoint is healthy
//!   again, its successes bring the estimate down over a few `decay_ns`
//!   (simulated: after a 10 s outage of fast failures, an endpoint is back
//!   to half its fair share 30 s after recovering and to all of it after
//!   60 s).
//!
//! **New endpoints** start at `default_rtt_ns` (30 ms, Linkerd's
//! `EWMA_DEFAULT_RTT`), neither 0 (every new endpoint would be flooded the
//! moment it appears, before a single response) nor the penalty (it would
//! be starved until its estimate decayed). Against fast peers it waits for
//! them to queue a request or two; against slow ones it is tried at once. A
//! slower first response replaces the guess at once; faster ones pull it
//! down over `decay_ns`, while the guess also decays when idle.
//!
//! **State lives with the caller.** The server keeps one [`PeakEwma`] per
//! endpoint (so estimates survive balancer rebuilds on membership and health
//! changes), feeds it [`PeakEwma::observe`] / [`PeakEwma::observe_failure`]
//! when responses complete, and exposes it to the balancer through
//! [`crate::LoadView::peak_ewma`]; the balancer reads the time from
//! [`crate::PickContext::now_ns`]. Endpoints whose view returns `None` are
//! costed at `default_rtt_ns`.
//!
//! Time is any monotonic nanosecond count (e.g. since process start), the
//! same clock for `observe` and picks. It is kept internally in ticks of
//! 2^20 ns (about 1.05 ms), plenty for a decay of seconds; a time earlier
//! than the last update counts as no time elapsed.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rng::{splitmix64, uniform_u64};
use crate::sampler::WeightedDraw;
use crate::{Balancer, DEFAULT_CHOICE_COUNT, FULL_SCAN_MAX, PickContext, Policy};

/// The largest estimate kept: 60 s. Bounds the cost of compounding
/// failures (an endpoint at the cap looks cheaper than a 20 ms peer again
/// after `decay_ns * ln(60 s / 20 ms)`, about 80 s with the defaults) and
/// keeps costs finite.
pub const MAX_ESTIMATE_NS: u64 = 60_000_000_000;

/// Tuning of [`PeakEwma`]; see the module documentation for the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeakEwmaConfig {
    /// Time constant of the decay, in ns: after `decay_ns` without
    /// responses the cost has fallen to 1/e (37%). Default 10 s. 0 is
    /// treated as 1 ns (each response replaces the estimate).
    pub decay_ns: u64,
    /// Estimate of an endpoint before its first response, in ns. Default
    /// 30 ms.
    pub default_rtt_ns: u64,
    /// Least latency a failure counts as, in ns. Default 1 s.
    pub failure_penalty_ns: u64,
    /// A failure counts as at least this many times the current estimate.
    /// Default 5.
    pub failure_multiplier: u32,
}

impl PeakEwmaConfig {
    /// 10 s decay, 30 ms default, failures count as `max(1 s, 5 x estimate)`.
    pub const DEFAULT: Self = Self {
        decay_ns: 10_000_000_000,
        default_rtt_ns: 30_000_000,
        failure_penalty_ns: 1_000_000_000,
        failure_multiplier: 5,
    };
}

impl Default for PeakEwmaConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Ticks of 2^20 ns: time is stored as `now_ns >> TICK_SHIFT`.
const TICK_SHIFT: u32 = 20;
/// Low bits of the state word: the tick of the last update, wrapping. Half
/// the range (2^32 ticks, about 52 days) is the longest gap told apart from
/// a time in the past; only a cluster that sees no response at all for that
/// long could be misread, and then merely as "no time elapsed".
const STAMP_BITS: u32 = 33;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
const HALF_RANGE: u64 = 1 << (STAMP_BITS - 1);

/// The latency estimate of one endpoint: peak-sensitive, decaying over
/// time, updated lock-free (see the module documentation).
///
/// The estimate and the time of its last update live together in one
/// `AtomicU64`, so readers never see one without the other and writers
/// update both with a single compare-and-swap: the estimate as the bits of
/// a non-negative `f32` (31 bits, relative precision 2^-24) and the time as
/// a 33-bit tick count.
#[derive(Debug)]
pub struct PeakEwma {
    state: AtomicU64,
    config: PeakEwmaConfig,
}

impl PeakEwma {
    /// A new endpoint's estimate: `config.default_rtt_ns` as of `now_ns`.
    pub fn new(config: PeakEwmaConfig, now_ns: u64) -> Self {
        Self {
            state: AtomicU64::new(pack(encode(config.default_rtt_ns as f64), tick(now_ns))),
            config,
        }
    }

    /// The configuration this estimate was created with.
    pub const fn config(&self) -> &PeakEwmaConfig {
        &self.config
    }

    /// Records a response that took `rtt_ns`, completing at `now_ns`.
    pub fn observe(&self, now_ns: u64, rtt_ns: u64) {
        let sample = rtt_ns.min(MAX_ESTIMATE_NS) as f64;
        self.update(now_ns, |_| sample);
    }

    /// Records a failed request at `now_ns` as a response of
    /// `max(failure_penalty_ns, failure_multiplier * current estimate)`,
    /// capped at [`MAX_ESTIMATE_NS`]. For a failure that itself took longer
    /// (a timeout), also [`observe`](Self::observe) its duration: both are
    /// peaks, and the larger one stays.
    pub fn observe_failure(&self, now_ns: u64) {
        let floor = self.config.failure_penalty_ns.min(MAX_ESTIMATE_NS) as f64;
        let multiplier = f64::from(self.config.failure_multiplier);
        self.update(now_ns, |current| {
            (current * multiplier)
                .max(floor)
                .min(MAX_ESTIMATE_NS as f64)
        });
    }

    /// The estimate as seen at `now_ns`, in ns: the stored estimate decayed
    /// by the time since its last update.
    pub fn estimate_ns(&self, now_ns: u64) -> f64 {
        let (estimate, stamp) = unpack(self.state.load(Ordering::Relaxed));
        estimate * self.weight(elapsed_ticks(tick(now_ns), stamp))
    }

    /// Peak-EWMA cost of sending one more request to this endpoint with
    /// `in_flight` requests already outstanding:
    /// `estimate_ns(now_ns) * (in_flight + 1)`.
    pub fn cost(&self, now_ns: u64, in_flight: u64) -> f64 {
        self.estimate_ns(now_ns) * (in_flight as f64 + 1.0)
    }

    /// `exp(-elapsed / decay)`, the weight the old estimate keeps.
    fn weight(&self, elapsed_ticks: u64) -> f64 {
        if elapsed_ticks == 0 {
            return 1.0;
        }
        let elapsed_ns = (elapsed_ticks << TICK_SHIFT) as f64;
        (-elapsed_ns / self.config.decay_ns.max(1) as f64).exp()
    }

    /// Folds in one sample, computed from the decayed current estimate.
    fn update(&self, now_ns: u64, sample_of: impl Fn(f64) -> f64) {
        let now = tick(now_ns);
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (estimate, stamp) = unpack(current);
            let elapsed = elapsed_ticks(now, stamp);
            let w = self.weight(elapsed);
            let sample = sample_of(estimate * w);
            let next = if sample >= estimate {
                sample
            } else {
                estimate * w + sample * (1.0 - w)
            };
            // A time before the stamp (another thread got in first with a
            // later clock reading) leaves the stamp where it is.
            let stamp = if elapsed > 0 { now } else { stamp };
            let new = pack(encode(next), stamp);
            if new == current {
                return;
            }
            match self.state.compare_exchange_weak(
                current,
                new,
                // The word publishes nothing but itself.
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

const fn tick(now_ns: u64) -> u64 {
    (now_ns >> TICK_SHIFT) & STAMP_MASK
}

/// Ticks from `stamp` to `now`, modulo the stamp range; 0 when `now` is
/// before `stamp`.
const fn elapsed_ticks(now: u64, stamp: u64) -> u64 {
    let d = now.wrapping_sub(stamp) & STAMP_MASK;
    if d >= HALF_RANGE { 0 } else { d }
}

/// An estimate in ns (clamped to `0..=MAX_ESTIMATE_NS`) as the bits of an
/// `f32`: 31 bits, the sign bit being 0.
fn encode(estimate_ns: f64) -> u64 {
    let clamped = estimate_ns.clamp(0.0, MAX_ESTIMATE_NS as f64);
    // NaN (cannot arise from the arithmetic above) would clamp to NaN and
    // then convert to a NaN f32; map it to 0 instead.
    let value = if clamped.is_nan() {
        0.0
    } else {
        clamped as f32
    };
    u64::from(value.to_bits())
}

fn decode(bits: u64) -> f64 {
    // bits < 2^31 (see `encode`), so the conversion is lossless.
    f64::from(f32::from_bits(bits as u32))
}

const fn pack(estimate_bits: u64, stamp: u64) -> u64 {
    (estimate_bits << STAMP_BITS) | (stamp & STAMP_MASK)
}

fn unpack(word: u64) -> (f64, u64) {
    (decode(word >> STAMP_BITS), word & STAMP_MASK)
}

/// The `peak_ewma` balancer: the draw of `least_request`, scored by cost.
#[derive(Debug)]
pub(crate) struct PeakEwmaBalancer {
    draw: WeightedDraw,
    choice_count: u32,
    config: PeakEwmaConfig,
}

impl PeakEwmaBalancer {
    /// `choice_count` below 2 is raised to 2, as for `least_request`.
    pub(crate) fn new(weights: &[u32], choice_count: u32, config: PeakEwmaConfig) -> Self {
        Self {
            draw: WeightedDraw::new(weights),
            choice_count: choice_count.max(DEFAULT_CHOICE_COUNT),
            config,
        }
    }

    /// Cost of endpoint `i` (not yet divided by its weight).
    fn cost(&self, i: usize, ctx: &PickContext<'_>) -> f64 {
        let in_flight = ctx.load.active_requests(i);
        match ctx.load.peak_ewma(i) {
            Some(e) => e.cost(ctx.now_ns, in_flight),
            None => self.config.default_rtt_ns as f64 * (in_flight as f64 + 1.0),
        }
    }

    /// `cost_a / w_a < cost_b / w_b`, cross-multiplied (weights < 2^32 are
    /// exact in f64).
    fn cheaper(&self, a: usize, cost_a: f64, b: usize, cost_b: f64) -> std::cmp::Ordering {
        let lhs = cost_a * self.draw.weight(b) as f64;
        let rhs = cost_b * self.draw.weight(a) as f64;
        lhs.total_cmp(&rhs)
    }

    /// The cheapest of all, ties broken at random in proportion to weight.
    fn full_scan(&self, ctx: &PickContext<'_>) -> usize {
        let mut best = 0;
        let mut best_cost = self.cost(0, ctx);
        let mut tied = self.draw.weight(0);
        let mut r = ctx.random;
        for i in 1..self.draw.len() {
            let c = self.cost(i, ctx);
            match self.cheaper(i, c, best, best_cost) {
                std::cmp::Ordering::Less => (best, best_cost, tied) = (i, c, self.draw.weight(i)),
                std::cmp::Ordering::Equal => {
                    // Weighted reservoir sampling, as in `least_request`.
                    let w = self.draw.weight(i);
                    tied += w;
                    r = splitmix64(r);
                    if uniform_u64(r, tied) < w {
                        (best, best_cost) = (i, c);
                    }
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        best
    }

    /// The cheapest of `choice_count` candidates, each distinct from the
    /// previous one; ties keep the earlier draw.
    fn sample(&self, ctx: &PickContext<'_>) -> usize {
        let mut r = ctx.random;
        let mut index = self.draw.first(r);
        let mut best = (index, self.cost(index, ctx));
        for _ in 1..self.choice_count {
            r = splitmix64(r);
            index = self.draw.other(r, index);
            let c = self.cost(index, ctx);
            if self.cheaper(index, c, best.0, best.1).is_lt() {
                best = (index, c);
            }
        }
        best.0
    }
}

impl Balancer for PeakEwmaBalancer {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let n = self.draw.len();
        Some(match n {
            0 => return None,
            1 => 0,
            _ if n <= FULL_SCAN_MAX || n <= self.choice_count as usize => self.full_scan(ctx),
            _ => self.sample(ctx),
        })
    }

    fn policy(&self) -> Policy {
        Policy::PeakEwma {
            choice_count: self.choice_count,
            config: self.config,
        }
    }
}

/// A [`LoadView`] over plain per-endpoint vectors, for tests and
/// simulations.
#[cfg(test)]
pub(crate) struct EwmaLoad {
    pub(crate) active: Vec<u64>,
    pub(crate) ewma: Vec<PeakEwma>,
}

#[cfg(test)]
impl crate::LoadView for EwmaLoad {
    fn active_requests(&self, index: usize) -> u64 {
        self.active[index]
    }
    fn peak_ewma(&self, index: usize) -> Option<&PeakEwma> {
        self.ewma.get(index)
    }
}

#[cfg(test)]
mod tests;
