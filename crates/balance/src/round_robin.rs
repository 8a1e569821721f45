//! `round_robin`: interleaved weighted round robin as in LVS (`ip_vs_wrr.c`,
//! <http://kb.linuxvirtualserver.org/wiki/Weighted_Round-Robin_Scheduling>).
//!
//! Each round the current weight steps down by the gcd of the weights (from
//! the maximum), and every endpoint whose weight is >= the current weight is
//! picked, in index order. With equal weights this is plain cycling
//! 0, 1, 2, ...; with unequal weights heavy endpoints come in bursts
//! ({5, 1, 1} gives a a a a a b c). `weighted_round_robin` is the smooth
//! alternative.

use crate::schedule::{Schedule, Sequence, gcd};
use crate::{Balancer, PickContext, Policy};

/// Generator state of LVS WRR: last index and current weight.
#[derive(Debug)]
pub(crate) struct Lvs {
    weights: Box<[u32]>,
    gcd: u32,
    max: u32,
    /// Index of the last pick; starts "before 0" (`len - 1`).
    i: usize,
    /// Current weight; 0 means "start a new period at max".
    cw: u32,
}

impl Sequence for Lvs {
    fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.into(),
            gcd: weights.iter().copied().fold(0, gcd),
            max: weights.iter().copied().max().unwrap_or(0),
            i: weights.len().saturating_sub(1),
            cw: 0,
        }
    }

    fn next_index(&mut self) -> usize {
        // Terminates: the endpoint(s) with the max weight qualify every round.
        loop {
            self.i = (self.i + 1) % self.weights.len();
            if self.i == 0 {
                self.cw = match self.cw.checked_sub(self.gcd) {
                    Some(cw) if cw > 0 => cw,
                    _ => self.max,
                };
            }
            if self.weights[self.i] >= self.cw {
                return self.i;
            }
        }
    }
}

/// The `round_robin` balancer: a precomputed LVS schedule.
#[derive(Debug)]
pub(crate) struct RoundRobin(Schedule<Lvs>);

impl RoundRobin {
    #[cfg(test)]
    pub(crate) fn new(weights: &[u32]) -> Self {
        Self::with_seed(weights, 0)
    }

    /// Starts at position `uniform(seed, period)` of the sequence.
    pub(crate) fn with_seed(weights: &[u32], seed: u64) -> Self {
        Self(Schedule::new(weights, seed))
    }

    #[cfg(test)]
    pub(crate) fn new_live(weights: &[u32], seed: u64) -> Self {
        Self(Schedule::new_live(weights, seed))
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, _ctx: &PickContext<'_>) -> Option<usize> {
        self.0.next()
    }

    fn policy(&self) -> Policy {
        Policy::RoundRobin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{counts, picks};

    #[test]
    fn equal_weights_cycle() {
        assert_eq!(picks(&RoundRobin::new(&[1, 1, 1]), 6), [0, 1, 2, 0, 1, 2]);
        assert_eq!(picks(&RoundRobin::new(&[7, 7]), 5), [0, 1, 0, 1, 0]);
    }

    #[test]
    fn lvs_sequence_5_1_1() {
        assert_eq!(
            picks(&RoundRobin::new(&[5, 1, 1]), 14),
            [0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 1, 2]
        );
    }

    #[test]
    fn lvs_sequence_4_3_2() {
        // cw = 4: a; 3: a b; 2: a b c; 1: a b c.
        assert_eq!(
            picks(&RoundRobin::new(&[4, 3, 2]), 9),
            [0, 0, 1, 0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn gcd_is_factored_out() {
        let scaled = picks(&RoundRobin::new(&[2, 4]), 9);
        assert_eq!(scaled, picks(&RoundRobin::new(&[1, 2]), 9));
        assert_eq!(scaled, [1, 0, 1, 1, 0, 1, 1, 0, 1]);
    }

    #[test]
    fn raw_generator_steps_by_gcd() {
        // Without normalisation the generator itself steps cw 6 -> 4 -> 2.
        let mut g = Lvs::new(&[2, 6, 4]);
        let got: Vec<_> = (0..6).map(|_| g.next_index()).collect();
        assert_eq!(got, [1, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn fallback_matches_table() {
        for weights in [&[5, 1, 1][..], &[4, 2, 1], &[3, 3, 2, 6], &[2, 4]] {
            let n = 3 * weights.iter().sum::<u32>() as usize;
            assert_eq!(
                picks(&RoundRobin::new_live(weights, 0), n),
                picks(&RoundRobin::new(weights), n),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn fallback_matches_table_for_random_weight_sets() {
        // The table assumes the sequence has period sum / gcd; the live
        // generator assumes nothing, so agreement over two periods checks it.
        let mut random = crate::test_util::Seq::new(3);
        for _ in 0..50 {
            let len = 2 + crate::rng::uniform(random.next().unwrap(), 6);
            let weights: Vec<u32> = (0..len)
                .map(|_| 1 + crate::rng::uniform(random.next().unwrap(), 12) as u32)
                .collect();
            let n = 2 * weights.iter().sum::<u32>() as usize;
            assert_eq!(
                picks(&RoundRobin::new_live(&weights, 0), n),
                picks(&RoundRobin::new(&weights), n),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn one_period_is_exact_weight_share() {
        let weights = [5, 3, 1, 7, 2];
        let period = weights.iter().sum::<u32>() as usize;
        let got = counts(&RoundRobin::new(&weights), weights.len(), period);
        assert_eq!(got, weights.map(u64::from));
    }
}
