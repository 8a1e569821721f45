//! `ring_hash`: consistent hashing on a ring of virtual nodes, as Envoy's
//! `ring_hash` load balancer builds it (`ring_hash_lb.cc`), itself Ketama
//! (Richard Jones, last.fm's `libketama`, 2007) after Karger et al.,
//! "Consistent Hashing and Random Trees", STOC 1997.
//!
//! Each endpoint puts virtual nodes on a 64-bit ring at
//! `xxh64("{endpoint_key}_{replica}", 0)` for replica = 0, 1, 2, ...; a
//! request with hash `h` goes to the owner of the first node at or after `h`,
//! wrapping past the top. Removing an endpoint hands only its arcs to the
//! nodes that follow them, so about 1/N of the keys move; adding one takes
//! about 1/(N+1). One caveat, inherited from Envoy's sizing below: every
//! endpoint gets about `min_ring_size / N` nodes, and when a change of N
//! changes that count (N = 5 -> 4: 205 -> 256 nodes each), the survivors'
//! new nodes also take keys from one another. Measured over 100 000 keys
//! (`tests/consistency.rs`): removing one of 5 or 10 endpoints moves about
//! 1.5 x 1/N, one of 50 or 100 exactly the removed endpoint's keys.
//!
//! The number of nodes follows Envoy exactly: with normalised weights
//! `w_i / sum(w)`, the scale is
//! `min(ceil(min_w * min_ring_size) / min_w, max_ring_size)` (so the lightest
//! endpoint gets at least about `min_ring_size * min_w` nodes, and the ring
//! at most about `max_ring_size`), and endpoints take turns adding nodes
//! while a running count stays below the running target `scale * sum of
//! normalised weights so far`, which hands out the fractional parts fairly.
//! Two deliberate differences, both so that every instance agrees and every
//! endpoint is reachable:
//!
//! * Endpoints are visited in key order (see `keys.rs`), not in the caller's
//!   order, and nodes with equal hashes are ordered by that key order too.
//!   With the endpoint address as key, the node positions are Envoy's.
//! * Every endpoint gets at least one node. Envoy can give an endpoint none
//!   when `max_ring_size` is too small for the spread of weights; here it
//!   still gets one, so it can still be picked, and consistent hashing with
//!   bounded loads (which walks the ring) always finds every endpoint.

use std::fmt;

use crate::hash::{RING_HASH_SEED, xxh64};
use crate::keys::compact;
use crate::{Balancer, BuildError, PickContext, Policy};

/// Nodes on the ring unless configured: Envoy's default `minimum_ring_size`.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy's default, and upper bound, for `maximum_ring_size` (2^23).
pub const DEFAULT_MAX_RING_SIZE: u64 = 8_388_608;
/// The largest `max_ring_size` accepted: a ring is 12 bytes per node, so
/// this caps one at about 100 MB, as Envoy does.
pub const MAX_RING_SIZE: u64 = DEFAULT_MAX_RING_SIZE;

/// A built hash ring. [`crate::build_with_keys`] with [`Policy::RingHash`]
/// returns one as a [`Balancer`]; it is public so that callers (and the
/// test vectors) can look at the nodes.
pub struct RingHash {
    /// Node positions, ascending.
    hashes: Box<[u64]>,
    /// `owners[i]`: index (into the caller's weights) of the endpoint that
    /// owns node `i`.
    owners: Box<[u32]>,
    min_ring_size: u64,
    max_ring_size: u64,
}

impl RingHash {
    /// The ring over endpoints with these weights (0 counts as 1) and keys
    /// (`keys[i]` names endpoint `i`; unique). Errors for bounds that are out
    /// of range (see [`Policy::validate`]), a repeated key, or a key count
    /// that differs from the weight count.
    pub fn new(
        weights: &[u32],
        keys: &[&str],
        min_ring_size: u64,
        max_ring_size: u64,
    ) -> Result<Self, BuildError> {
        Policy::RingHash {
            min_ring_size,
            max_ring_size,
        }
        .validate()?;
        let order = crate::check_keys(weights, keys)?;
        Ok(Self::build(
            weights,
            keys,
            &order,
            min_ring_size,
            max_ring_size,
        ))
    }

    /// The ring, for bounds already validated and `order` = `key_order(keys)`.
    pub(crate) fn build(
        weights: &[u32],
        keys: &[&str],
        order: &[usize],
        min_ring_size: u64,
        max_ring_size: u64,
    ) -> Self {
        if order.is_empty() {
            return Self {
                hashes: Box::new([]),
                owners: Box::new([]),
                min_ring_size,
                max_ring_size,
            };
        }
        let mut nodes: Vec<(u64, u32, u32)> = Vec::new();
        let total: f64 = weights.iter().map(|&w| f64::from(w.max(1))).sum();
        let min_weight = weights.iter().map(|&w| w.max(1)).min().unwrap_or(1);
        let min_normalized = f64::from(min_weight) / total;
        // Both bounds are <= 2^23, so the f64 arithmetic is exact enough and
        // deterministic (IEEE 754, no fused operations).
        let scale = ((min_normalized * min_ring_size as f64).ceil() / min_normalized)
            .min(max_ring_size as f64);
        nodes.reserve(scale.ceil() as usize + weights.len());
        let mut current = 0.0_f64;
        let mut target = 0.0_f64;
        let mut key = Vec::new();
        for (rank, &i) in order.iter().enumerate() {
            target += scale * (f64::from(weights[i].max(1)) / total);
            key.clear();
            key.extend_from_slice(keys[i].as_bytes());
            key.push(b'_');
            let prefix = key.len();
            let mut replica = 0u64;
            while current < target || replica == 0 {
                key.truncate(prefix);
                push_decimal(&mut key, replica);
                nodes.push((xxh64(&key, RING_HASH_SEED), compact(rank), compact(i)));
                replica += 1;
                current += 1.0;
            }
        }
        // Equal hashes (vanishingly rare) are ordered by key order, not by
        // the caller's order.
        nodes.sort_unstable();
        Self {
            hashes: nodes.iter().map(|n| n.0).collect(),
            owners: nodes.iter().map(|n| n.2).collect(),
            min_ring_size,
            max_ring_size,
        }
    }

    /// Number of nodes on the ring (0 for an empty endpoint set).
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the ring is empty (built from no endpoints).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The nodes in ring order: (position, index of the owning endpoint).
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (u64, usize)> + '_ {
        self.hashes
            .iter()
            .zip(&self.owners)
            .map(|(&h, &o)| (h, o as usize))
    }

    /// The endpoint that owns `hash`: the owner of the first node at or
    /// after it, wrapping around; `None` for an empty ring.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        (!self.is_empty()).then(|| self.owner_at(self.position(hash)))
    }

    /// Index of the first node at or after `hash`, wrapping to 0. Needs a
    /// non-empty ring.
    pub(crate) fn position(&self, hash: u64) -> usize {
        let p = self.hashes.partition_point(|&h| h < hash);
        if p == self.hashes.len() { 0 } else { p }
    }

    /// Owner of node `position` (< len).
    pub(crate) fn owner_at(&self, position: usize) -> usize {
        self.owners[position] as usize
    }

    pub(crate) const fn ring_sizes(&self) -> (u64, u64) {
        (self.min_ring_size, self.max_ring_size)
    }
}

/// Appends `n` in decimal, as `format!("{n}")` would, without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the conversion is lossless.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl fmt::Debug for RingHash {
    // Summarise instead of dumping up to millions of nodes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingHash")
            .field("nodes", &self.len())
            .field("min_ring_size", &self.min_ring_size)
            .field("max_ring_size", &self.max_ring_size)
            .finish()
    }
}

impl Balancer for RingHash {
    /// The owner of `ctx.hash`; without a hash, of `ctx.random` (a uniformly
    /// random point, so a random pick in proportion to ring share).
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        self.lookup(ctx.hash.unwrap_or(ctx.random))
    }

    fn policy(&self) -> Policy {
        Policy::RingHash {
            min_ring_size: self.min_ring_size,
            max_ring_size: self.max_ring_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Seq;

    fn ring(weights: &[u32], keys: &[&str]) -> RingHash {
        RingHash::new(weights, keys, DEFAULT_MIN_RING_SIZE, DEFAULT_MAX_RING_SIZE).unwrap()
    }

    fn share(r: &RingHash, len: usize) -> Vec<u64> {
        let mut counts = vec![0; len];
        for h in Seq::new(1).take(100_000) {
            counts[r.lookup(h).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn decimal_matches_format() {
        for n in [0, 7, 10, 1234, u64::MAX] {
            let mut v = b"x_".to_vec();
            push_decimal(&mut v, n);
            assert_eq!(v, format!("x_{n}").into_bytes());
        }
    }

    #[test]
    fn node_positions_are_envoys() {
        // One endpoint: 1024 nodes at xxh64("{key}_{i}", 0), as Envoy.
        let r = ring(&[1], &["10.0.0.1:8080"]);
        assert_eq!(r.len(), 1024);
        let mut expected: Vec<u64> = (0..1024)
            .map(|i| xxh64(format!("10.0.0.1:8080_{i}").as_bytes(), 0))
            .collect();
        expected.sort_unstable();
        assert_eq!(r.nodes().map(|n| n.0).collect::<Vec<_>>(), expected);
        assert!(expected.contains(&0x23A2_9AE7_75DF_D4A3)); // replica 0
    }

    #[test]
    fn ring_sizes_follow_envoys_formula() {
        // Four equal endpoints, max 6: scale 6, 1.5 nodes each -> 2, 1, 2, 1
        // (Envoy's own example in ring_hash_lb.cc; min 6 asks for 8).
        let keys = ["a", "b", "c", "d"];
        let r = RingHash::new(&[1; 4], &keys, 6, 6).unwrap();
        let mut per = [0; 4];
        for (_, o) in r.nodes() {
            per[o] += 1;
        }
        assert_eq!(per, [2, 1, 2, 1]);
        // Weights 1:3 with the defaults: the light one gets ceil(0.25 *
        // 1024) = 256 nodes, scale 1024, and the heavy one 768.
        let r = ring(&[1, 3], &["a", "b"]);
        let mut per = [0; 2];
        for (_, o) in r.nodes() {
            per[o] += 1;
        }
        assert_eq!(per, [256, 768]);
        // The maximum caps the ring, and every endpoint keeps a node even
        // when its share rounds to none.
        let r = RingHash::new(&[1, 1_000_000], &["a", "b"], 1024, 2048).unwrap();
        assert!(r.len() <= 2049, "{}", r.len());
        assert!(r.nodes().any(|(_, o)| o == 0));
    }

    #[test]
    fn lookup_takes_first_node_at_or_after_and_wraps() {
        let r = ring(&[1, 1, 1], &["a", "b", "c"]);
        let nodes: Vec<_> = r.nodes().collect();
        let (first, last) = (nodes[0], nodes[nodes.len() - 1]);
        assert_eq!(r.lookup(first.0), Some(first.1));
        assert_eq!(r.lookup(0), Some(first.1));
        assert_eq!(r.lookup(last.0), Some(last.1));
        if last.0 < u64::MAX {
            assert_eq!(r.lookup(last.0 + 1), Some(first.1), "wraps");
        }
        assert_eq!(r.lookup(nodes[5].0 - 1), Some(nodes[5].1));
        assert_eq!(r.lookup(nodes[5].0 + 1), Some(nodes[6].1));
    }

    #[test]
    fn order_of_endpoints_does_not_matter() {
        let a = ring(&[3, 1, 2], &["x", "y", "z"]);
        let b = ring(&[2, 3, 1], &["z", "x", "y"]);
        // Same nodes, owners renumbered by the permutation.
        let map = [1, 2, 0];
        let na: Vec<_> = a.nodes().map(|(h, o)| (h, map[o])).collect();
        let nb: Vec<_> = b.nodes().collect();
        assert_eq!(na, nb);
    }

    #[test]
    fn shares_follow_weights() {
        let keys: Vec<String> = (0..4).map(|i| format!("10.0.0.{i}:80")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let got = share(&ring(&[1, 2, 3, 4], &keys), 4);
        // Ring hash is lumpy: ~1024 nodes per unit weight keep each share
        // within a few percent of its weight.
        for (i, &c) in got.iter().enumerate() {
            let expected = 10_000.0 * (i + 1) as f64;
            assert!((c as f64 - expected).abs() < 0.1 * expected, "{got:?}");
        }
    }

    #[test]
    fn empty_ring() {
        let r = ring(&[], &[]);
        assert!(r.is_empty());
        assert_eq!(r.lookup(5), None);
    }

    #[test]
    fn no_hash_falls_back_to_random() {
        let r = ring(&[1, 1], &["a", "b"]);
        let got = crate::test_util::counts(&r, 2, 20_000);
        assert!(got.iter().all(|&c| c.abs_diff(10_000) < 1_500), "{got:?}");
    }
}
