//! `random`: weighted random choice, stateless, so picks never contend.
//!
//! Prefix sums of the weights are built once; a pick draws `r` uniformly in
//! `0..total` and binary-searches the first endpoint whose cumulative weight
//! exceeds it, so endpoint `i` wins with probability `weight[i] / total` at
//! O(log n) per pick.

use crate::rng::{uniform, uniform_u64};
use crate::{Balancer, PickContext, Policy};

#[derive(Debug)]
pub(crate) struct Random {
    /// `cumulative[i]` = sum of weights `0..=i`; empty for an empty set.
    cumulative: Box<[u64]>,
    /// All weights equal: skip the search and draw an index directly.
    uniform: bool,
}

impl Random {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let cumulative = weights
            .iter()
            .scan(0u64, |acc, &w| {
                *acc = acc.saturating_add(u64::from(w));
                Some(*acc)
            })
            .collect();
        Self {
            cumulative,
            uniform: weights.windows(2).all(|w| w[0] == w[1]),
        }
    }
}

impl Balancer for Random {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if self.uniform {
            return Some(uniform(ctx.random, self.cumulative.len()));
        }
        let r = uniform_u64(ctx.random, total);
        Some(self.cumulative.partition_point(|&c| c <= r))
    }

    fn policy(&self) -> Policy {
        Policy::Random
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::counts;

    #[test]
    fn boundaries_map_to_the_right_endpoint() {
        // Weights {2, 1, 3}: r in 0..2 -> 0, 2..3 -> 1, 3..6 -> 2.
        let lb = Random::new(&[2, 1, 3]);
        let expect = [0, 0, 1, 2, 2, 2];
        for (r, &want) in expect.iter().enumerate() {
            assert_eq!(lb.cumulative.partition_point(|&c| c <= r as u64), want);
        }
        let at = |random| lb.pick(&crate::test_util::ctx(random)).unwrap();
        assert_eq!(at(0), 0);
        assert_eq!(at(u64::MAX), 2);
    }

    #[test]
    fn weighted_shares_within_two_percent() {
        let weights = [5u32, 1, 3, 1];
        let n = 100_000;
        let got = counts(&Random::new(&weights), weights.len(), n);
        let total: u32 = weights.iter().sum();
        for (&w, &c) in weights.iter().zip(&got) {
            let expected = n as f64 * f64::from(w) / f64::from(total);
            let share_error = (c as f64 - expected).abs() / n as f64;
            assert!(share_error < 0.02, "{got:?} vs weights {weights:?}");
        }
    }

    #[test]
    fn equal_weights_are_uniform() {
        let got = counts(&Random::new(&[4, 4, 4, 4]), 4, 100_000);
        assert!(got.iter().all(|&c| c.abs_diff(25_000) < 2_000), "{got:?}");
    }
}
