//! The lock-free machinery shared by both round-robin variants.
//!
//! Deterministic weighted round robin (LVS interleaved WRR, NGINX smooth WRR)
//! is a stateful generator: each pick depends on the previous one. Running it
//! under a lock on every pick would serialise all worker threads, so instead we
//! run it once at build time for a whole period and store the result. The
//! sequence is periodic with period `sum(weights) / gcd(weights)` (both
//! algorithms return to their initial state after that many picks), so a
//! shared relaxed counter indexing into the table reproduces the exact global
//! sequence with a single `fetch_add` per pick.
//!
//! The cursor may start anywhere in the period ([`Schedule::new`]'s `seed`):
//! a schedule always starting at position 0 sends the first request of every
//! proxy instance, and of every rebuild after a membership or health change,
//! to the same endpoint (Envoy randomises its round-robin start index for the
//! same reason). Starting at position `k` yields the unseeded sequence
//! shifted by `k`, so the shares over a period are unchanged.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::rng::{uniform, uniform_u64};

/// Largest period precomputed into a table: 1 Mi entries, i.e. 4 MiB of `u32`.
/// Beyond that the table would cost more memory than the endpoint set is worth.
pub(crate) const MAX_PRECOMPUTED: u64 = 1 << 20;

/// A stateful weighted round-robin generator (one step = one pick).
pub(crate) trait Sequence: Send + fmt::Debug {
    /// Builds the generator in its initial state over weights that are all
    /// >= 1 and have a gcd of 1.
    fn new(weights: &[u32]) -> Self;
    /// Advances one pick and returns the chosen index.
    fn next_index(&mut self) -> usize;
}

/// One period of a [`Sequence`], picked from concurrently.
pub(crate) enum Schedule<S> {
    /// Built from no endpoints: every pick is `None`.
    Empty,
    /// All weights equal: every algorithm degenerates to plain cycling, so no
    /// table is needed (and huge equal-weight sets never hit the fallback).
    Cycle { len: usize, next: AtomicUsize },
    /// The common case: one precomputed period and a shared cursor.
    Table {
        table: Box<[u32]>,
        next: AtomicUsize,
    },
    /// Fallback for absurd weight sets whose period exceeds
    /// [`MAX_PRECOMPUTED`] (e.g. weights {1_000_000, 999_999}): the generator
    /// runs on the fly under a mutex. Correct, but contended; real
    /// configurations never get here.
    Live(Mutex<S>),
}

impl<S: Sequence> Schedule<S> {
    /// Builds the schedule, precomputing a period when it is small enough,
    /// with the cursor at position `uniform(seed, period)` of the sequence
    /// (seed 0: position 0).
    pub(crate) fn new(weights: &[u32], seed: u64) -> Self {
        Self::build(weights, seed, false)
    }

    /// Like [`Schedule::new`] but always takes the mutex fallback, so tests can
    /// check that both paths produce the same sequence.
    #[cfg(test)]
    pub(crate) fn new_live(weights: &[u32], seed: u64) -> Self {
        Self::build(weights, seed, true)
    }

    fn build(weights: &[u32], seed: u64, force_live: bool) -> Self {
        let Some(&first) = weights.first() else {
            return Self::Empty;
        };
        if !force_live && weights.iter().all(|&w| w == first) {
            return Self::Cycle {
                len: weights.len(),
                next: AtomicUsize::new(uniform(seed, weights.len())),
            };
        }
        // Scaling every weight by a common factor does not change either
        // algorithm's sequence, only its period; dividing by the gcd first
        // gives the shortest table and the smallest numbers in the generator.
        let g = weights.iter().copied().fold(0, gcd);
        let normalized: Vec<u32> = weights.iter().map(|&w| w / g).collect();
        let period = normalized
            .iter()
            .fold(0u64, |acc, &w| acc.saturating_add(u64::from(w)));
        let mut generator = S::new(&normalized);
        if force_live || period > MAX_PRECOMPUTED {
            // No table to index into, so the generator is stepped to the start
            // position. Capped at MAX_PRECOMPUTED steps, which bounds the cost
            // by that of building a table; for such periods the start is then
            // uniform over the first MAX_PRECOMPUTED positions only.
            for _ in 0..uniform_u64(seed, period.min(MAX_PRECOMPUTED)) {
                generator.next_index();
            }
            return Self::Live(Mutex::new(generator));
        }
        // period <= 2^20, and every index < len <= period, so both conversions
        // are lossless.
        let table: Box<[u32]> = (0..period).map(|_| generator.next_index() as u32).collect();
        Self::Table {
            next: AtomicUsize::new(uniform(seed, table.len())),
            table,
        }
    }

    /// The next index of the global sequence.
    ///
    /// `Relaxed` is enough: the counter only has to hand out distinct
    /// tickets, it publishes no other memory. When the `usize` counter wraps
    /// (after 2^64 picks, or 2^32 on 32-bit targets) the sequence may restart
    /// mid-period once, which is harmless.
    pub(crate) fn next(&self) -> Option<usize> {
        match self {
            Self::Empty => None,
            Self::Cycle { len, next } => Some(next.fetch_add(1, Ordering::Relaxed) % len),
            Self::Table { table, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % table.len();
                Some(table[i] as usize)
            }
            Self::Live(generator) => Some(
                generator
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .next_index(),
            ),
        }
    }
}

impl<S> fmt::Debug for Schedule<S> {
    // Summarise instead of dumping a table of up to a million entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Cycle { len, .. } => f.debug_struct("Cycle").field("len", len).finish(),
            Self::Table { table, .. } => f
                .debug_struct("Table")
                .field("period", &table.len())
                .finish(),
            Self::Live(_) => f.write_str("Live"),
        }
    }
}

/// Greatest common divisor; `gcd(0, x) == x`, so it folds from 0.
pub(crate) const fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cycles 0..n regardless of weights, to exercise the mechanism alone.
    #[derive(Debug)]
    struct Counter(usize, usize);

    impl Sequence for Counter {
        fn new(weights: &[u32]) -> Self {
            Self(0, weights.len())
        }
        fn next_index(&mut self) -> usize {
            let i = self.0;
            self.0 = (self.0 + 1) % self.1;
            i
        }
    }

    #[test]
    fn gcd_folds() {
        assert_eq!([12, 18, 30].into_iter().fold(0, gcd), 6);
        assert_eq!([7].into_iter().fold(0, gcd), 7);
        assert_eq!(gcd(5, 0), 5);
    }

    #[test]
    fn picks_variant_by_weights() {
        assert!(matches!(Schedule::<Counter>::new(&[], 0), Schedule::Empty));
        assert!(matches!(
            Schedule::<Counter>::new(&[3, 3, 3], 0),
            Schedule::Cycle { len: 3, .. }
        ));
        // {2, 4} normalises to {1, 2}: period 3.
        match Schedule::<Counter>::new(&[2, 4], 0) {
            Schedule::Table { table, .. } => assert_eq!(table.len(), 3),
            other => panic!("expected a table, got {other:?}"),
        }
        let huge = u32::try_from(MAX_PRECOMPUTED).unwrap();
        assert!(matches!(
            Schedule::<Counter>::new(&[huge, 1], 0),
            Schedule::Live(_)
        ));
    }

    #[test]
    fn table_wraps_around() {
        let s = Schedule::<Counter>::new(&[1, 2], 0);
        let got: Vec<_> = (0..7).map(|_| s.next().unwrap()).collect();
        // Counter over a period of 3 entries yields 0, 1, 0 and repeats.
        assert_eq!(got, [0, 1, 0, 0, 1, 0, 0]);
    }
}
