//! Deterministic helpers shared by the unit tests.

use crate::rng::splitmix64;
use crate::{Balancer, LoadView, PickContext};

/// A cluster with nothing in flight.
pub(crate) struct ZeroLoad;

impl LoadView for ZeroLoad {
    fn active_requests(&self, _index: usize) -> u64 {
        0
    }
}

/// A pick context with `random` and no load.
pub(crate) fn ctx(random: u64) -> PickContext<'static> {
    PickContext::new(random, &ZeroLoad)
}

/// Seeded random words: iterates `splitmix64` from a fixed seed.
pub(crate) struct Seq(u64);

impl Seq {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Iterator for Seq {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.0 = splitmix64(self.0);
        Some(self.0)
    }
}

/// The first `n` picks under zero load.
pub(crate) fn picks(lb: &dyn Balancer, n: usize) -> Vec<usize> {
    Seq::new(0x5EED)
        .take(n)
        .map(|random| lb.pick(&ctx(random)).expect("non-empty set"))
        .collect()
}

/// How often each of `len` endpoints is picked in `n` picks under zero load.
pub(crate) fn counts(lb: &dyn Balancer, len: usize, n: usize) -> Vec<u64> {
    counts_with(lb, &ZeroLoad, len, n)
}

/// How often each of `len` endpoints is picked in `n` picks under `load`.
pub(crate) fn counts_with(
    lb: &dyn Balancer,
    load: &dyn LoadView,
    len: usize,
    n: usize,
) -> Vec<u64> {
    let mut counts = vec![0; len];
    for random in Seq::new(0xC0FFEE).take(n) {
        let pick = PickContext::new(random, load);
        counts[lb.pick(&pick).expect("non-empty set")] += 1;
    }
    counts
}
