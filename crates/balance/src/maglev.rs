//! `maglev`: Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and
//! Reliable Software Network Load Balancer", NSDI 2016, section 3.4), with
//! Envoy's weighted variant (`maglev_lb.cc`).
//!
//! A lookup table of prime size `M` maps `hash % M` to an endpoint: O(1)
//! per pick whatever the number of endpoints, and much more even than a
//! ring of the same memory. Each endpoint's key gives it a preference list,
//! the permutation `(offset + j * skip) mod M` for j = 0, 1, 2, ... with
//!
//! * `offset = xxh64(key, 0) mod M`,
//! * `skip = xxh64(key, 1) mod (M - 1) + 1`,
//!
//! (Envoy's seeds; `skip` in 1..M and `M` prime make every permutation visit
//! all M slots, which is why `M` must be prime: otherwise a permutation can
//! cycle through a subset of slots that are all taken and the build never
//! ends). Endpoints then take turns, each claiming its next preferred slot
//! that is still empty, until the table is full (the paper's Pseudocode 1).
//! Removing one of N endpoints changes its ~M/N slots and, as the paper
//! measures, somewhat more: Maglev trades perfect minimal disruption for
//! even shares. Measured over 100 000 keys with M = 65537
//! (`tests/consistency.rs`): removing one of N endpoints moves 1.00, 1.02,
//! 1.27 and 1.57 x 1/N of the keys for N = 5, 10, 50 and 100; every
//! endpoint of 100 holds 655 or 656 slots.
//!
//! **Weights** follow Envoy: turns are taken in rounds, round `r` = 1, 2,
//! ...; an endpoint of weight `w` takes its turn in round `r` only if
//! `r * w >= count * w_max`, where `count` is how many slots it already
//! holds and `w_max` the largest weight. The heaviest endpoints take a turn
//! every round and one of weight `w` about `w / w_max` of the rounds, so
//! table shares follow weights. Envoy compares normalised doubles; this
//! compares the same quantities as exact integers.
//!
//! The table depends only on the set of (key, weight) pairs: endpoints take
//! their turns in key order (see `keys.rs`), whatever order the caller
//! lists them in.

use std::fmt;

use crate::hash::{MAGLEV_OFFSET_SEED, MAGLEV_SKIP_SEED, xxh64};
use crate::keys::compact;
use crate::{Balancer, BuildError, PickContext, Policy};

/// Table size unless configured: the paper's and Envoy's default, prime.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65_537;
/// The largest table size accepted (a prime; Envoy's upper bound). The paper
/// recommends `M` well above 100 x the number of endpoints for shares within
/// about 1% of each other.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

/// A built Maglev lookup table. [`crate::build_with_keys`] with
/// [`Policy::Maglev`] returns one as a [`Balancer`]; it is public so that
/// callers (and the test vectors) can look at the table.
pub struct Maglev {
    /// `table[h % M]`: index (into the caller's weights) of the endpoint for
    /// hash `h`. Empty for an empty endpoint set.
    table: Box<[u32]>,
    table_size: u64,
}

impl Maglev {
    /// The table over endpoints with these weights (0 counts as 1) and keys
    /// (`keys[i]` names endpoint `i`; unique). Errors for a table size that
    /// is not a prime in `2..=MAX_MAGLEV_TABLE_SIZE`, a repeated key, or a
    /// key count that differs from the weight count.
    pub fn new(weights: &[u32], keys: &[&str], table_size: u64) -> Result<Self, BuildError> {
        Policy::Maglev { table_size }.validate()?;
        let order = crate::check_keys(weights, keys)?;
        Ok(Self::build(weights, keys, &order, table_size))
    }

    /// The table, for a validated (prime, bounded) `table_size` and `order`
    /// = `key_order(keys)`.
    pub(crate) fn build(weights: &[u32], keys: &[&str], order: &[usize], table_size: u64) -> Self {
        if order.is_empty() {
            return Self {
                table: Box::new([]),
                table_size,
            };
        }
        // table_size <= MAX_MAGLEV_TABLE_SIZE, so this fits usize and u64
        // arithmetic below cannot overflow.
        let m = table_size as usize;
        struct Turn {
            index: u32,
            weight: u64,
            /// Next slot in this endpoint's permutation.
            slot: u64,
            skip: u64,
            /// Slots claimed so far.
            count: u64,
        }
        let mut turns: Vec<Turn> = order
            .iter()
            .map(|&i| {
                let key = keys[i].as_bytes();
                Turn {
                    index: compact(i),
                    weight: u64::from(weights[i].max(1)),
                    slot: xxh64(key, MAGLEV_OFFSET_SEED) % table_size,
                    skip: xxh64(key, MAGLEV_SKIP_SEED) % (table_size - 1) + 1,
                    count: 0,
                }
            })
            .collect();
        let max_weight = turns.iter().map(|t| t.weight).max().unwrap_or(1);
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; m];
        let mut filled = 0;
        // Terminates: a heaviest endpoint claims a slot every round, and each
        // claim ends because a permutation visits every slot (M prime) and
        // the table is not full yet. round * weight <= M * 2^32 fits u64.
        let mut round = 1u64;
        while filled < m {
            for t in &mut turns {
                if filled == m {
                    break;
                }
                if round * t.weight < t.count * max_weight {
                    continue;
                }
                // The paper's "next preferred slot that is still empty".
                let mut slot = t.slot as usize;
                while table[slot] != EMPTY {
                    t.slot = (t.slot + t.skip) % table_size;
                    slot = t.slot as usize;
                }
                table[slot] = t.index;
                t.slot = (t.slot + t.skip) % table_size;
                t.count += 1;
                filled += 1;
            }
            round += 1;
        }
        Self {
            table: table.into(),
            table_size,
        }
    }

    /// The table: entry `h % M` is the index of the endpoint for hash `h`.
    /// Empty for an empty endpoint set.
    pub fn table(&self) -> &[u32] {
        &self.table
    }

    /// The endpoint for `hash` (`table[hash % M]`); `None` for an empty set.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        // hash % M < M = table.len(), so the conversion is lossless.
        let slot = (hash % self.table_size) as usize;
        self.table.get(slot).map(|&i| i as usize)
    }
}

/// Whether `n` is prime (trial division by 6k ± 1: at most ~750 steps for
/// the largest table size accepted).
pub(crate) const fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// The nearest primes below and above `n`, for error messages about table
/// sizes up to [`MAX_MAGLEV_TABLE_SIZE`].
pub(crate) fn nearest_primes(n: u64) -> (Option<u64>, Option<u64>) {
    let below = (2..n).rev().find(|&p| is_prime(p));
    let above = (n + 1..=MAX_MAGLEV_TABLE_SIZE).find(|&p| is_prime(p));
    (below, above)
}

/// The smallest valid table size >= `n` (or the largest one).
pub(crate) fn next_valid_table_size(n: u64) -> u64 {
    (n.max(2)..MAX_MAGLEV_TABLE_SIZE)
        .find(|&p| is_prime(p))
        .unwrap_or(MAX_MAGLEV_TABLE_SIZE)
}

impl fmt::Debug for Maglev {
    // Summarise instead of dumping the table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("table_size", &self.table_size)
            .field("empty", &self.table.is_empty())
            .finish()
    }
}

impl Balancer for Maglev {
    /// `table[hash % M]`; without a hash, `table[random % M]`, a random pick
    /// in proportion to table share.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        self.lookup(ctx.hash.unwrap_or(ctx.random))
    }

    fn policy(&self) -> Policy {
        Policy::Maglev {
            table_size: self.table_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    fn maglev(weights: &[u32], keys: &[String], m: u64) -> Maglev {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        Maglev::new(weights, &keys, m).unwrap()
    }

    fn slots(t: &Maglev, n: usize) -> Vec<u64> {
        let mut counts = vec![0; n];
        for &i in t.table() {
            counts[i as usize] += 1;
        }
        counts
    }

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        for p in [65_537, 655_373, MAX_MAGLEV_TABLE_SIZE] {
            assert!(is_prime(p), "{p}");
        }
        assert!(!is_prime(65_536) && !is_prime(25) && !is_prime(65_537 * 3));
        assert_eq!(nearest_primes(65_536), (Some(65_521), Some(65_537)));
        assert_eq!(next_valid_table_size(65_536), 65_537);
        assert_eq!(next_valid_table_size(0), 2);
        assert_eq!(next_valid_table_size(u64::MAX), MAX_MAGLEV_TABLE_SIZE);
    }

    #[test]
    fn paper_example_shape() {
        // The paper's figure uses M = 7 and three backends; any prime works
        // and every slot gets filled.
        let t = maglev(&[1, 1, 1], &keys(3), 7);
        assert_eq!(t.table().len(), 7);
        assert_eq!(slots(&t, 3).iter().sum::<u64>(), 7);
        // Unweighted: the round robin gives each endpoint 2 or 3 slots.
        assert!(slots(&t, 3).iter().all(|&c| (2..=3).contains(&c)));
    }

    #[test]
    fn first_turn_takes_the_offset_slot() {
        // A single endpoint fills the table; its first slot is its offset.
        let t = maglev(&[1], &keys(1), 13);
        assert!(t.table().iter().all(|&i| i == 0));
        // Two endpoints: each one's offset slot is its own unless the other
        // took it first (key order decides who goes first).
        let k = keys(2);
        let t = maglev(&[1, 1], &k, 65_537);
        let offset = |i: usize| (xxh64(k[i].as_bytes(), 0) % 65_537) as usize;
        assert_eq!(t.table()[offset(0)], 0);
        if offset(1) != offset(0) {
            assert_eq!(t.table()[offset(1)], 1);
        }
    }

    #[test]
    fn unweighted_shares_are_nearly_equal() {
        // Round robin over turns: counts differ by at most one.
        let t = maglev(&[1; 10], &keys(10), 65_537);
        let s = slots(&t, 10);
        let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
        assert!(max - min <= 1, "{s:?}");
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let w = [1, 2, 3, 4];
        let t = maglev(&w, &keys(4), 65_537);
        let s = slots(&t, 4);
        for (i, &c) in s.iter().enumerate() {
            let expected = 65_537.0 * f64::from(w[i]) / 10.0;
            assert!((c as f64 - expected).abs() < 0.005 * expected, "{s:?}");
        }
        // Weight 0 counts as 1.
        let a = maglev(&[0, 1], &keys(2), 101);
        let b = maglev(&[1, 1], &keys(2), 101);
        assert_eq!(a.table(), b.table());
    }

    #[test]
    fn order_of_endpoints_does_not_matter() {
        let k = keys(5);
        let w = [5, 1, 3, 1, 2];
        let a = maglev(&w, &k, 65_537);
        // Reverse the listing; map indices back.
        let kr: Vec<String> = k.iter().rev().cloned().collect();
        let wr: Vec<u32> = w.iter().rev().copied().collect();
        let b = maglev(&wr, &kr, 65_537);
        let back: Vec<u32> = b.table().iter().map(|&i| 4 - i).collect();
        assert_eq!(a.table(), &back[..]);
    }

    #[test]
    fn rejects_a_non_prime_size() {
        let k = ["a"];
        let err = Maglev::new(&[1], &k, 65_536).unwrap_err();
        assert_eq!(
            err,
            BuildError::MaglevTableSizeNotPrime { table_size: 65_536 }
        );
        let msg = err.to_string();
        assert!(msg.contains("65536") && msg.contains("65537"), "{msg}");
        assert!(matches!(
            Maglev::new(&[1], &k, 1),
            Err(BuildError::MaglevTableSizeNotPrime { .. })
        ));
        assert!(matches!(
            Maglev::new(&[1], &k, 5_000_077),
            Err(BuildError::MaglevTableSizeTooLarge { .. })
        ));
    }

    #[test]
    fn empty_set() {
        let t = Maglev::new(&[], &[], 7).unwrap();
        assert!(t.table().is_empty());
        assert_eq!(t.lookup(3), None);
    }
}
