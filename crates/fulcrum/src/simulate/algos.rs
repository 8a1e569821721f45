//! The non-hashing algorithms under test (scenarios 1 and 4) and how a
//! simulated request is routed to one: through the real
//! `fulcrum_balance` balancers, except where noted.

use std::sync::Arc;

use fulcrum_balance::{Balancer, LoadView, PickContext, Policy, build_seeded};

use super::engine::PsCluster;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Algo {
    Random,
    RoundRobin,
    /// `least_request` with its default two choices.
    P2c,
    /// Least request over all backends.
    FullLeastRequest,
    /// `peak_ewma` with its defaults (two choices, 10 s decay).
    PeakEwma,
}

impl Algo {
    pub(crate) const ALL: [Self; 5] = [
        Self::Random,
        Self::RoundRobin,
        Self::P2c,
        Self::FullLeastRequest,
        Self::PeakEwma,
    ];

    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::RoundRobin => "round_robin",
            Self::P2c => "least_request (P2C)",
            Self::FullLeastRequest => "full least-request",
            Self::PeakEwma => "peak_ewma (P2C)",
        }
    }

    /// Palette index, the same in every chart.
    pub(crate) const fn color(self) -> usize {
        match self {
            Self::Random => 3,
            Self::RoundRobin => 7,
            Self::P2c => 0,
            Self::FullLeastRequest => 2,
            Self::PeakEwma => 4,
        }
    }

    /// A stable number for seeding this algorithm's stream.
    pub(crate) const fn tag(self) -> u64 {
        self as u64
    }
}

/// How picks are made for one algorithm.
pub(crate) enum Picker {
    Library(Arc<dyn Balancer>),
    /// Full least-request by [`PsCluster::least_loaded`]: the choice
    /// `LeastRequest { choice_count: n }` makes (fewest in flight, ties
    /// uniform), kept in O(1) per pick, where the library's scan reads all n
    /// counters (10 000 per request at the largest n).
    Exact,
}

impl Picker {
    /// The balancer for `algo` over `n` equal backends; `exact_full` selects
    /// [`Picker::Exact`] for full least-request (needs a [`PsCluster`]).
    pub(crate) fn new(algo: Algo, n: usize, seed: u64, exact_full: bool) -> Self {
        let policy = match algo {
            Algo::Random => Policy::Random,
            Algo::RoundRobin => Policy::RoundRobin,
            Algo::P2c => Policy::LeastRequest { choice_count: 2 },
            Algo::FullLeastRequest if exact_full => return Self::Exact,
            Algo::FullLeastRequest => Policy::LeastRequest {
                choice_count: u32::try_from(n).unwrap_or(u32::MAX),
            },
            Algo::PeakEwma => Policy::PEAK_EWMA,
        };
        // build_seeded: round robin starts at a seeded position, as a
        // fulcrum instance's would.
        Self::Library(build_seeded(policy, &vec![1; n], seed))
    }

    /// A pick over `load` at simulated time `now_ns` (never 0, which
    /// `peak_ewma` reads as "no clock").
    pub(crate) fn pick_view(&self, load: &dyn LoadView, random: u64, now_ns: u64) -> usize {
        match self {
            Self::Library(lb) => {
                let ctx = PickContext::new(random, load).with_now_ns(now_ns.max(1));
                lb.pick(&ctx).unwrap_or(0)
            }
            Self::Exact => unreachable!("exact least-request needs a PsCluster"),
        }
    }

    /// A pick for a request arriving at `cluster` at `now` (ns).
    pub(crate) fn pick(&self, cluster: &PsCluster, random: u64, now: f64) -> usize {
        match self {
            Self::Exact => cluster.least_loaded(random),
            Self::Library(_) => self.pick_view(&cluster.load, random, now as u64),
        }
    }
}
