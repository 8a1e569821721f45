//! `weighted_round_robin`: NGINX's smooth weighted round robin
//! (`ngx_http_upstream_get_peer` in `ngx_http_upstream_round_robin.c`,
//! introduced in nginx 1.3.1).
//!
//! On every pick each endpoint's `current` grows by its weight, the endpoint
//! with the largest `current` wins (the first one on ties, as in NGINX), and
//! the winner's `current` drops by the total weight. The per-period shares are
//! the same as LVS, but the heavy endpoint is spread out instead of getting a
//! burst: {5, 1, 1} gives a a b a c a a.

use crate::schedule::{Schedule, Sequence};
use crate::{Balancer, PickContext, Policy};

/// Generator state of smooth WRR: one running `current` per endpoint.
#[derive(Debug)]
pub(crate) struct Smooth {
    weights: Box<[i64]>,
    current: Box<[i64]>,
    total: i64,
}

impl Sequence for Smooth {
    fn new(weights: &[u32]) -> Self {
        // |current| stays within the total weight, which fits i64 for any
        // endpoint count below 2^31.
        let weights: Box<[i64]> = weights.iter().map(|&w| i64::from(w)).collect();
        Self {
            total: weights.iter().sum(),
            current: vec![0; weights.len()].into(),
            weights,
        }
    }

    fn next_index(&mut self) -> usize {
        let mut best = 0;
        let mut best_current = i64::MIN;
        for (i, (c, w)) in self.current.iter_mut().zip(&self.weights).enumerate() {
            *c += w;
            if *c > best_current {
                best = i;
                best_current = *c;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

/// The `weighted_round_robin` balancer: a precomputed smooth WRR schedule.
#[derive(Debug)]
pub(crate) struct WeightedRoundRobin(Schedule<Smooth>);

impl WeightedRoundRobin {
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

impl Balancer for WeightedRoundRobin {
    fn pick(&self, _ctx: &PickContext<'_>) -> Option<usize> {
        self.0.next()
    }

    fn policy(&self) -> Policy {
        Policy::WeightedRoundRobin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{counts, picks};
    use std::sync::Arc;

    #[test]
    fn nginx_sequence_5_1_1() {
        // The example from the nginx 1.3.1 commit message.
        let expected = [0, 0, 1, 0, 2, 0, 0];
        let got = picks(&WeightedRoundRobin::new(&[5, 1, 1]), 14);
        assert_eq!(got[..7], expected);
        assert_eq!(got[7..], expected, "wraps around to the same period");
    }

    #[test]
    fn nginx_sequence_4_2_1() {
        // By hand (current after adding weights -> winner -> after subtracting 7):
        // [4,2,1] a [-3,2,1]; [1,4,2] b [1,-3,2]; [5,-1,3] a [-2,-1,3];
        // [2,1,4] c [2,1,-3]; [6,3,-2] a [-1,3,-2]; [3,5,-1] b [3,-2,-1];
        // [7,0,0] a [0,0,0].
        assert_eq!(
            picks(&WeightedRoundRobin::new(&[4, 2, 1]), 7),
            [0, 1, 0, 2, 0, 1, 0]
        );
    }

    #[test]
    fn equal_weights_cycle() {
        assert_eq!(
            picks(&WeightedRoundRobin::new(&[1, 1, 1]), 6),
            [0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn gcd_is_factored_out() {
        let scaled = picks(&WeightedRoundRobin::new(&[2, 4]), 9);
        assert_eq!(scaled, picks(&WeightedRoundRobin::new(&[1, 2]), 9));
        assert_eq!(scaled, [1, 0, 1, 1, 0, 1, 1, 0, 1]);
    }

    #[test]
    fn fallback_matches_table() {
        for weights in [&[5, 1, 1][..], &[4, 2, 1], &[3, 3, 2, 6], &[2, 4]] {
            let n = 3 * weights.iter().sum::<u32>() as usize;
            assert_eq!(
                picks(&WeightedRoundRobin::new_live(weights, 0), n),
                picks(&WeightedRoundRobin::new(weights), n),
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
                picks(&WeightedRoundRobin::new_live(&weights, 0), n),
                picks(&WeightedRoundRobin::new(&weights), n),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn one_period_is_exact_weight_share() {
        let weights = [5, 3, 1, 7, 2];
        let period = weights.iter().sum::<u32>() as usize;
        let got = counts(&WeightedRoundRobin::new(&weights), weights.len(), period);
        assert_eq!(got, weights.map(u64::from));
    }

    #[test]
    fn fewer_bursts_than_lvs() {
        fn longest_run(seq: &[usize]) -> usize {
            seq.chunk_by(|a, b| a == b)
                .map(<[usize]>::len)
                .max()
                .unwrap()
        }
        let weights = [5, 1, 1];
        let smooth = picks(&WeightedRoundRobin::new(&weights), 70);
        let lvs = picks(&crate::round_robin::RoundRobin::new(&weights), 70);
        // Within a period the heavy endpoint gets at most 2 in a row; across
        // the period boundary (a a | a a) at most 4; LVS sends it 5.
        assert_eq!(longest_run(&smooth[..7]), 2);
        assert_eq!(longest_run(&smooth), 4);
        assert_eq!(longest_run(&lvs), 5);
    }

    #[test]
    fn concurrent_picks_keep_global_sequence_exact() {
        // Period 8 divides 4 * 10_000, so the totals are exact.
        let weights = [5, 2, 1];
        let lb: Arc<dyn Balancer> = crate::build(Policy::WeightedRoundRobin, &weights);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lb = Arc::clone(&lb);
                std::thread::spawn(move || crate::test_util::counts(&*lb, 3, 10_000))
            })
            .collect();
        let mut total = [0u64; 3];
        for t in threads {
            for (sum, c) in total.iter_mut().zip(t.join().unwrap()) {
                *sum += c;
            }
        }
        assert_eq!(total, [25_000, 10_000, 5_000]);
    }
}
