//! Load-balancing algorithms for fulcrum.
//!
//! The contract, and why:
//!
//! * **Built off the hot path.** The control side calls [`build`] (or
//!   [`build_seeded`], to randomise where round robin starts) once per
//!   endpoint set (on config load or membership change) with the endpoints'
//!   weights. Anything expensive — precomputing a round-robin period, prefix
//!   sums — happens there.
//! * **Picked lock-free.** Many worker threads then call [`Balancer::pick`]
//!   concurrently through `&self`. A pick is at most one relaxed atomic
//!   `fetch_add` plus reads; there is no lock except in a documented fallback
//!   for absurd round-robin weight sets (see `schedule.rs`).
//! * **Pure.** No I/O, no clock, no global RNG, no dependencies. Everything a
//!   pick may depend on comes in through [`PickContext`]: a fresh random word
//!   from the caller and a read-only [`LoadView`] of live load. That keeps the
//!   crate deterministic under test and lets the server choose its own RNG.
//!
//! A pick returns an index into the `weights` slice the balancer was built
//! from; mapping it back to an endpoint is the caller's business.
//!
//! ```
//! use std::sync::atomic::AtomicU64;
//! use fulcrum_balance::{build, PickContext, Policy, rng::splitmix64};
//!
//! // Control side, once per endpoint set.
//! let lb = build(Policy::WeightedRoundRobin, &[5, 1, 1]);
//! let active: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
//!
//! // Worker side, per request (any RNG will do; this one is deterministic).
//! let mut seed = 42;
//! let picks: Vec<usize> = (0..7)
//!     .map(|_| {
//!         seed = splitmix64(seed);
//!         lb.pick(&PickContext { random: seed, hash: None, load: &active }).unwrap()
//!     })
//!     .collect();
//! assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
//! ```

mod least_request;
mod random;
mod round_robin;
mod schedule;
mod weighted_round_robin;

pub mod rng;

#[cfg(test)]
mod test_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use least_request::FULL_SCAN_MAX;

/// What a balancer may read about live load at pick time (implemented by the server over per-endpoint atomics).
pub trait LoadView {
    /// Requests currently in flight to endpoint `index`.
    fn active_requests(&self, index: usize) -> u64;
}

/// Implements [`LoadView`] for `Vec`, boxed slices and arrays of `$elem`.
/// (Owned containers rather than `[$elem]`, because `&dyn LoadView` needs a
/// sized referent.)
macro_rules! impl_load_view {
    ($elem:ty, |$c:ident| $read:expr) => {
        impl LoadView for Vec<$elem> {
            fn active_requests(&self, index: usize) -> u64 {
                let $c = &self[index];
                $read
            }
        }
        impl LoadView for Box<[$elem]> {
            fn active_requests(&self, index: usize) -> u64 {
                let $c = &self[index];
                $read
            }
        }
        impl<const N: usize> LoadView for [$elem; N] {
            fn active_requests(&self, index: usize) -> u64 {
                let $c = &self[index];
                $read
            }
        }
    };
}

// Per-endpoint in-flight counters, the shape the server keeps. Relaxed: the
// value is advisory and may be stale by the time it is used anyway.
impl_load_view!(AtomicU64, |c| c.load(Ordering::Relaxed));
// A fixed snapshot of load, handy for tests and simulations.
impl_load_view!(u64, |c| *c);

/// Inputs for one pick. `random` is a fresh uniformly random u64 from the caller for every pick; `hash` is the request's hash key for hashing policies (unused by the first algorithms, present so later ones plug in).
pub struct PickContext<'a> {
    pub random: u64,
    pub hash: Option<u64>,
    pub load: &'a dyn LoadView,
}

/// A balancer is built once per endpoint set (by the control side, off the hot path) over the endpoints' weights, and then picked from concurrently by many worker threads with `&self`: no locks on the hot path (atomics only).
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// Returns an index into the `weights` slice the balancer was built from, or None if it was built from an empty set.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize>;
    /// The policy this balancer implements (with the parameters actually in
    /// effect, e.g. a `choice_count` raised to the minimum of 2).
    fn policy(&self) -> Policy;
}

/// Which algorithm to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// LVS interleaved weighted round robin; plain cycling for equal weights.
    RoundRobin,
    /// NGINX smooth weighted round robin.
    WeightedRoundRobin,
    /// Weighted random.
    Random,
    /// Fewest active requests per unit weight among `choice_count` random
    /// candidates (all endpoints for small sets), candidates drawn in
    /// proportion to weight and ties broken by weight; `choice_count` < 2 is
    /// treated as 2.
    LeastRequest { choice_count: u32 },
}

impl Policy {
    /// The policy's configuration name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::Random => "random",
            Self::LeastRequest { .. } => "least_request",
        }
    }
}

/// Candidates sampled by [`Policy::LeastRequest`] unless configured: two
/// choices already give most of the benefit (Mitzenmacher).
pub const DEFAULT_CHOICE_COUNT: u32 = 2;

/// Builds the balancer for `policy` over endpoints with these weights (each weight >= 1; a weight of 0 is treated as 1 — the config layer rejects 0 before it gets here).
///
/// The round-robin policies start at the beginning of their sequence (the
/// same as [`build_seeded`] with seed 0), so the first pick is deterministic;
/// see [`build_seeded`] to spread starts across instances and rebuilds.
pub fn build(policy: Policy, weights: &[u32]) -> Arc<dyn Balancer> {
    build_seeded(policy, weights, 0)
}

/// Like [`build`], but [`Policy::RoundRobin`] and
/// [`Policy::WeightedRoundRobin`] start at position `uniform(seed, period)`
/// of their sequence instead of at 0 (`period`: the length of one round,
/// `sum(weights) / gcd(weights)`; see [`rng::uniform`]). Otherwise every proxy
/// instance, and every rebuild after a membership or health change, would
/// send its first request to the same endpoint (Envoy randomises the
/// round-robin start index for the same reason). The sequence itself and its
/// per-period shares are unchanged, only rotated. The other policies are
/// stateless and ignore `seed`.
///
/// `seed` should be a uniformly random `u64` (fresh per build, from the same
/// RNG that feeds [`PickContext::random`]): [`rng::uniform`] uses the high
/// bits, so small integers such as an instance number all map to position 0
/// — pass them through [`rng::splitmix64`] first. Seed 0 is [`build`].
///
/// For absurd weight sets whose period is too long to precompute (see
/// `schedule.rs`), the start is uniform over the first 2^20 positions only.
pub fn build_seeded(policy: Policy, weights: &[u32], seed: u64) -> Arc<dyn Balancer> {
    let weights: Vec<u32> = weights.iter().map(|&w| w.max(1)).collect();
    match policy {
        Policy::RoundRobin => Arc::new(round_robin::RoundRobin::with_seed(&weights, seed)),
        Policy::WeightedRoundRobin => Arc::new(
            weighted_round_robin::WeightedRoundRobin::with_seed(&weights, seed),
        ),
        Policy::Random => Arc::new(random::Random::new(&weights)),
        Policy::LeastRequest { choice_count } => {
            Arc::new(least_request::LeastRequest::new(&weights, choice_count))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{ctx, picks};

    const ALL: [Policy; 5] = [
        Policy::RoundRobin,
        Policy::WeightedRoundRobin,
        Policy::Random,
        Policy::LeastRequest {
            choice_count: DEFAULT_CHOICE_COUNT,
        },
        Policy::LeastRequest { choice_count: 3 },
    ];

    #[test]
    fn empty_set_picks_none() {
        for policy in ALL {
            let lb = build(policy, &[]);
            for random in [0, 1, u64::MAX] {
                assert_eq!(lb.pick(&ctx(random)), None, "{policy:?}");
            }
        }
    }

    #[test]
    fn single_endpoint_always_zero() {
        for policy in ALL {
            for weight in [1, 7, u32::MAX] {
                let lb = build(policy, &[weight]);
                assert!(picks(&*lb, 100).iter().all(|&i| i == 0), "{policy:?}");
            }
        }
    }

    #[test]
    fn picks_stay_in_range() {
        let weights = [3, 1, 4, 1, 5, 9, 2, 6];
        for policy in ALL {
            let lb = build(policy, &weights);
            assert!(picks(&*lb, 1_000).iter().all(|&i| i < weights.len()));
        }
    }

    #[test]
    fn zero_weight_is_treated_as_one() {
        for policy in [Policy::RoundRobin, Policy::WeightedRoundRobin] {
            let lb = build(policy, &[0, 0, 2]);
            assert_eq!(picks(&*lb, 4), picks(&*build(policy, &[1, 1, 2]), 4));
        }
        let got = crate::test_util::counts(&*build(Policy::Random, &[0, 1]), 2, 10_000);
        assert!(got[0].abs_diff(5_000) < 500, "{got:?}");
    }

    #[test]
    fn names_and_policies() {
        let names: Vec<_> = ALL.iter().map(Policy::name).collect();
        assert_eq!(
            names,
            [
                "round_robin",
                "weighted_round_robin",
                "random",
                "least_request",
                "least_request"
            ]
        );
        for policy in ALL {
            assert_eq!(build(policy, &[1, 2]).policy(), policy);
        }
        assert_eq!(
            build(Policy::LeastRequest { choice_count: 0 }, &[1]).policy(),
            Policy::LeastRequest { choice_count: 2 }
        );
    }

    #[test]
    fn atomic_counters_are_a_load_view() {
        let active: Vec<AtomicU64> = [3, 0, 1].map(AtomicU64::new).into();
        let load: &dyn LoadView = &active;
        assert_eq!(load.active_requests(0), 3);
        let lb = build(Policy::LeastRequest { choice_count: 2 }, &[1, 1, 1]);
        let pick = lb.pick(&PickContext {
            random: 42,
            hash: None,
            load,
        });
        assert_eq!(pick, Some(1));
    }

    #[test]
    fn seeded_start_rotates_the_unseeded_sequence() {
        // Period = sum / gcd of the weights (len for equal weights).
        let cases: [(&[u32], usize); 5] = [
            (&[1, 1, 1], 3),
            (&[7, 7, 7, 7, 7], 5),
            (&[5, 1, 1], 7),
            (&[4, 2, 1], 7),
            (&[6, 2, 4, 10], 11),
        ];
        for policy in [Policy::RoundRobin, Policy::WeightedRoundRobin] {
            for (weights, period) in cases {
                let unseeded = picks(&*build(policy, weights), 2 * period);
                let mut starts = std::collections::BTreeSet::new();
                for s in crate::test_util::Seq::new(11)
                    .take(200)
                    .chain([0, u64::MAX])
                {
                    let k = crate::rng::uniform(s, period);
                    starts.insert(k);
                    let seeded = picks(&*build_seeded(policy, weights, s), period);
                    // The first pick is the unseeded pick at position k, and
                    // the rest follows on from there.
                    assert_eq!(seeded[0], unseeded[k], "{policy:?} {weights:?} seed {s}");
                    assert_eq!(seeded, unseeded[k..k + period], "{policy:?} {weights:?}");
                }
                // Seeds really spread the start over the whole period.
                assert_eq!(starts.len(), period, "{policy:?} {weights:?}");
            }
        }
    }

    #[test]
    fn seed_zero_is_build() {
        for policy in [Policy::RoundRobin, Policy::WeightedRoundRobin] {
            for weights in [&[1, 1, 1][..], &[5, 1, 1]] {
                assert_eq!(
                    picks(&*build_seeded(policy, weights, 0), 20),
                    picks(&*build(policy, weights), 20)
                );
            }
        }
    }

    #[test]
    fn seeded_live_fallback_matches_table() {
        use crate::round_robin::RoundRobin;
        use crate::weighted_round_robin::WeightedRoundRobin;
        for weights in [&[5, 1, 1][..], &[4, 2, 1], &[3, 3, 2, 6], &[2, 2]] {
            let n = 2 * weights.iter().sum::<u32>() as usize;
            for s in crate::test_util::Seq::new(12).take(20) {
                assert_eq!(
                    picks(&RoundRobin::new_live(weights, s), n),
                    picks(&RoundRobin::with_seed(weights, s), n),
                    "{weights:?}"
                );
                assert_eq!(
                    picks(&WeightedRoundRobin::new_live(weights, s), n),
                    picks(&WeightedRoundRobin::with_seed(weights, s), n),
                    "{weights:?}"
                );
            }
        }
    }

    #[test]
    fn seed_is_ignored_by_stateless_policies() {
        for policy in [Policy::Random, Policy::LeastRequest { choice_count: 2 }] {
            for weights in [&[3, 1][..], &[1, 1, 1, 1, 1, 1]] {
                assert_eq!(
                    picks(&*build_seeded(policy, weights, 12_345), 50),
                    picks(&*build(policy, weights), 50)
                );
            }
        }
    }

    #[test]
    fn balancers_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Balancer>();
        assert_send_sync::<Arc<dyn Balancer>>();
    }
}
