//! Random candidates for the balancers that compare a few of them
//! (`least_request`, `peak_ewma`): drawn uniformly when all weights are equal,
//! in proportion to weight otherwise, and never the same endpoint twice in a
//! row.

use crate::rng::{uniform, uniform_u64};

#[derive(Debug)]
pub(crate) struct WeightedDraw {
    len: usize,
    /// Prefix sums of the weights (`cumulative[i]` = sum of weights `0..=i`)
    /// when they are not all equal; `None` means draw uniformly.
    cumulative: Option<Box<[u64]>>,
}

impl WeightedDraw {
    /// A weight of 0 is treated as 1, as in [`crate::build`].
    pub(crate) fn new(weights: &[u32]) -> Self {
        let equal = weights.windows(2).all(|w| w[0].max(1) == w[1].max(1));
        // The sum of n weights < 2^32 fits u64 for any n < 2^32, so the
        // saturation never triggers in practice.
        let cumulative = (!equal).then(|| {
            weights
                .iter()
                .scan(0u64, |acc, &w| {
                    *acc = acc.saturating_add(u64::from(w.max(1)));
                    Some(*acc)
                })
                .collect()
        });
        Self {
            len: weights.len(),
            cumulative,
        }
    }

    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Whether all weights are equal (and so every weight counts as 1).
    #[cfg(test)]
    pub(crate) const fn is_uniform(&self) -> bool {
        self.cumulative.is_none()
    }

    /// Weight of endpoint `i`, for drawing and for scoring: 1 for all when
    /// weights are equal.
    pub(crate) fn weight(&self, i: usize) -> u64 {
        match &self.cumulative {
            None => 1,
            Some(c) => c[i] - if i == 0 { 0 } else { c[i - 1] },
        }
    }

    /// One endpoint, uniformly or in proportion to weight. Needs `len >= 1`.
    pub(crate) fn first(&self, random: u64) -> usize {
        match &self.cumulative {
            None => uniform(random, self.len),
            Some(c) => {
                let r = uniform_u64(random, c[self.len - 1]);
                c.partition_point(|&c| c <= r)
            }
        }
    }

    /// One endpoint other than `previous`, uniformly or in proportion to
    /// weight among the others, so two choices are always two distinct
    /// endpoints. Needs `len >= 2`.
    pub(crate) fn other(&self, random: u64, previous: usize) -> usize {
        match &self.cumulative {
            // An offset in 1..n from the previous candidate.
            None => (previous + 1 + uniform(random, self.len - 1)) % self.len,
            Some(c) => {
                // Draw over the total weight with `previous`'s interval
                // [start, start + w) cut out, then shift the part above it.
                let w = self.weight(previous);
                let start = c[previous] - w;
                let mut r = uniform_u64(random, c[self.len - 1] - w);
                if r >= start {
                    r += w;
                }
                c.partition_point(|&c| c <= r)
            }
        }
    }
}
