//! Scenario 2: Maglev vs ring hash, the two table-driven hashing policies.
//!
//! * **Imbalance**: max share / mean share over the backends, computed
//!   exactly from the structures (a Maglev backend's share is its slots / M,
//!   a ring backend's the arcs that end at its nodes), so no key sampling
//!   noise. Maglev at table sizes 65 537 (its default, and Envoy's) and
//!   655 373 (the paper's large table); the ring at Envoy's default size
//!   (about 1 024 nodes in all) and with as many nodes as each Maglev table
//!   has slots, the same-memory comparison.
//! * **Keys moved** when backends are removed (chosen at random, as the paper
//!   does) or added: the fraction of the hash space whose backend changes,
//!   computed exactly (slot by slot, arc by arc) rather than over sampled
//!   request hashes, whose noise would swamp the minimum of 0.1% at
//!   N = 1 000; against that minimum (the share of the removed backends, or
//!   of the added ones).
//!
//! The paper is Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016, section 5.3 and Figures 11 and 12.

use fulcrum_balance::{Maglev, RingHash};

use super::Ctx;
use super::report::Section;
use super::workload::{Stream, derive};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Variant {
    Maglev(u64),
    /// Ring hash with this `min_ring_size` (nodes in all, about).
    Ring(u64),
}

pub(super) const VARIANTS: [Variant; 5] = [
    Variant::Maglev(65_537),
    Variant::Maglev(655_373),
    Variant::Ring(1_024),
    Variant::Ring(65_537),
    Variant::Ring(655_373),
];

impl Variant {
    pub(super) fn label(self) -> String {
        match self {
            Self::Maglev(m) => format!("maglev, M = {}", thousands(m)),
            Self::Ring(1_024) => "ring_hash, default (1 024 nodes)".into(),
            Self::Ring(m) => format!("ring_hash, {} nodes", thousands(m)),
        }
    }

    pub(super) fn color(self) -> usize {
        match self {
            Self::Maglev(65_537) => 0,
            Self::Maglev(_) => 9,
            Self::Ring(1_024) => 3,
            Self::Ring(65_537) => 1,
            Self::Ring(_) => 5,
        }
    }
}

fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

/// Endpoint `i`'s key, as the server would name it.
fn name(i: usize) -> String {
    format!("10.0.{}.{}:80", i / 256, i % 256)
}

enum Built {
    Maglev(Maglev),
    Ring(RingHash),
}

impl Built {
    fn new(v: Variant, names: &[String]) -> anyhow::Result<Self> {
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let weights = vec![1; keys.len()];
        Ok(match v {
            Variant::Maglev(m) => Self::Maglev(Maglev::new(&weights, &keys, m)?),
            Variant::Ring(min) => Self::Ring(RingHash::new(
                &weights,
                &keys,
                min,
                fulcrum_balance::DEFAULT_MAX_RING_SIZE,
            )?),
        })
    }

    fn lookup(&self, hash: u64) -> usize {
        match self {
            Self::Maglev(t) => t.lookup(hash),
            Self::Ring(r) => r.lookup(hash),
        }
        .unwrap_or(0)
    }

    /// Exact share of the hash space of each of `n` backends.
    fn shares(&self, n: usize) -> Vec<f64> {
        let mut share = vec![0.0; n];
        match self {
            Self::Maglev(t) => {
                for &i in t.table() {
                    share[i as usize] += 1.0 / t.table().len() as f64;
                }
            }
            Self::Ring(r) => {
                // A node owns the arc from the previous node (exclusive) up
                // to itself; the first node also owns the wrap past the top.
                let last = r.nodes().last().map_or(0, |(h, _)| h);
                let mut prev = last;
                for (h, owner) in r.nodes() {
                    share[owner] += h.wrapping_sub(prev) as f64 / 2f64.powi(64);
                    prev = h;
                }
            }
        }
        share
    }
}

/// Max share / mean share.
fn imbalance(shares: &[f64]) -> f64 {
    let total: f64 = shares.iter().sum();
    shares.iter().copied().fold(0.0, f64::max) * shares.len() as f64 / total
}

/// Backends removed or added: 1, then 1%, 5% and 10% of n (at least 1,
/// repeated counts dropped); with `quick`, 1 and 10% only.
fn changes(n: usize, quick: bool) -> Vec<usize> {
    let fractions: &[f64] = if quick {
        &[0.0, 0.10]
    } else {
        &[0.0, 0.01, 0.05, 0.10]
    };
    let mut ks: Vec<usize> = fractions
        .iter()
        .map(|&f| ((f * n as f64).round() as usize).max(1))
        .collect();
    ks.dedup();
    ks
}

pub(super) struct Moved {
    pub(super) k: usize,
    /// Fraction of the hash space whose backend changed.
    pub(super) moved: f64,
    /// Fraction that had to: on a removed backend, or now on an added one.
    pub(super) minimal: f64,
}

pub(super) struct Cell {
    pub(super) imbalance: f64,
    pub(super) removed: Vec<Moved>,
    pub(super) added: Vec<Moved>,
}

/// The fraction of the hash space (so of uniformly random request keys,
/// without sampling noise) whose backend differs between `x` and `y`, whose
/// indices map to backend ids through `ix` and `iy`.
fn moved(x: &Built, ix: &[usize], y: &Built, iy: &[usize]) -> f64 {
    match (x, y) {
        (Built::Maglev(x), Built::Maglev(y)) => {
            let (tx, ty) = (x.table(), y.table());
            let differ = tx
                .iter()
                .zip(ty)
                .filter(|&(&a, &b)| ix[a as usize] != iy[b as usize])
                .count();
            differ as f64 / tx.len() as f64
        }
        (Built::Ring(x), Built::Ring(y)) => {
            // Walk both rings' nodes in order: between two consecutive node
            // positions of either ring, each ring's owner is constant (the
            // owner of its next node, wrapping to its first).
            let xs: Vec<(u64, usize)> = x.nodes().collect();
            let ys: Vec<(u64, usize)> = y.nodes().collect();
            let (mut i, mut j, mut prev, mut differ) = (0, 0, 0u64, 0.0);
            loop {
                let p = match (xs.get(i), ys.get(j)) {
                    (Some(a), Some(b)) => a.0.min(b.0),
                    (Some(a), None) => a.0,
                    (None, Some(b)) => b.0,
                    (None, None) => break,
                };
                let ox = xs.get(i).unwrap_or(&xs[0]).1;
                let oy = ys.get(j).unwrap_or(&ys[0]).1;
                if ix[ox] != iy[oy] {
                    differ += (p - prev) as f64;
                }
                prev = p;
                while xs.get(i).is_some_and(|n| n.0 <= p) {
                    i += 1;
                }
                while ys.get(j).is_some_and(|n| n.0 <= p) {
                    j += 1;
                }
            }
            if ix[xs[0].1] != iy[ys[0].1] {
                differ += (u64::MAX - prev) as f64;
            }
            differ / 2f64.powi(64)
        }
        _ => unreachable!("both of one variant"),
    }
}

fn cell(seed: u64, quick: bool, n: usize, v: Variant) -> anyhow::Result<Cell> {
    let ks = changes(n, quick);
    let names: Vec<String> = (0..n + ks.last().copied().unwrap_or(1)).map(name).collect();
    let ids: Vec<usize> = (0..names.len()).collect();
    let base = Built::new(v, &names[..n])?;
    let base_shares = base.shares(n);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for &k in &ks {
        // The same backends go for every variant: a partial Fisher-Yates.
        let mut rng = Stream::new(derive(seed, &[30, n as u64, k as u64]));
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + fulcrum_balance::rng::uniform(rng.next_u64(), n - i);
            order.swap(i, j);
        }
        let gone = &order[..k];
        let survivors: Vec<usize> = (0..n).filter(|i| !gone.contains(i)).collect();
        let kept: Vec<String> = survivors.iter().map(|&i| names[i].clone()).collect();
        let after = Built::new(v, &kept)?;
        removed.push(Moved {
            k,
            moved: moved(&base, &ids, &after, &survivors),
            minimal: gone.iter().map(|&i| base_shares[i]).sum(),
        });
        let grown = Built::new(v, &names[..n + k])?;
        added.push(Moved {
            k,
            moved: moved(&base, &ids, &grown, &ids),
            minimal: grown.shares(n + k)[n..].iter().sum(),
        });
    }
    Ok(Cell {
        imbalance: imbalance(&base_shares),
        removed,
        added,
    })
}

/// The paper's Figure 11 method for its "Karger" ring: 1 000 nodes per
/// backend, then a lookup table of `m` entries filled through the ring, and
/// the imbalance of entries. Returns (imbalance of that table, exact
/// imbalance of the ring itself, imbalance of `m` entries each sent to a
/// uniformly random backend: the sampling noise alone, and what a
/// rendezvous-filled table amounts to).
fn paper_ring(seed: u64, n: usize, m: u64) -> anyhow::Result<(f64, f64, f64)> {
    let names: Vec<String> = (0..n).map(name).collect();
    let ring = Built::new(Variant::Ring(1_000 * n as u64), &names)?;
    let mut rng = Stream::new(derive(seed, &[32, m]));
    let mut entries = vec![0.0; n];
    let mut uniform = vec![0.0; n];
    for _ in 0..m {
        entries[ring.lookup(rng.next_u64())] += 1.0;
        uniform[fulcrum_balance::rng::uniform(rng.next_u64(), n)] += 1.0;
    }
    Ok((
        imbalance(&entries),
        imbalance(&ring.shares(n)),
        imbalance(&uniform),
    ))
}

pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let ns: &[usize] = if ctx.quick {
        &[10, 100]
    } else {
        &[10, 20, 50, 100, 200, 500, 1_000]
    };
    let largest = *ns.last().unwrap_or(&10);
    // Jobs: the paper replication (two table sizes), then the cells, the
    // largest first.
    let mut jobs: Vec<Option<(usize, Variant)>> = vec![None, None];
    for &n in ns.iter().rev() {
        for v in VARIANTS {
            jobs.push(Some((n, v)));
        }
    }
    let results = ctx.par_map("consistent hashing", &jobs, |job| match *job {
        Some((n, v)) => cell(ctx.seed, ctx.quick, n, v).map(Some),
        None => Ok(None),
    });
    let paper: Vec<(f64, f64, f64)> = ctx
        .par_map("consistent: paper method", &[65_537u64, 655_373], |&m| {
            paper_ring(ctx.seed, largest, m)
        })
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut cells = Vec::new();
    for (job, r) in jobs.iter().zip(results) {
        if let (Some(key), Some(c)) = (job, r?) {
            cells.push((*key, c));
        }
    }
    super::consistent_report::section(ctx, &Results { ns, cells, paper })
}

/// Everything the report needs.
pub(super) struct Results<'a> {
    pub(super) ns: &'a [usize],
    pub(super) cells: Vec<((usize, Variant), Cell)>,
    /// [`paper_ring`] at M = 65 537 and 655 373, for the largest N.
    pub(super) paper: Vec<(f64, f64, f64)>,
}

impl Results<'_> {
    pub(super) fn get(&self, n: usize, v: Variant) -> &Cell {
        self.cells
            .iter()
            .find(|(key, _)| *key == (n, v))
            .map(|(_, c)| c)
            .expect("every cell ran")
    }

    pub(super) fn largest(&self) -> usize {
        *self.ns.last().unwrap_or(&10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact measures agree with sampled request hashes.
    #[test]
    fn exact_movement_matches_sampled_keys() {
        for v in [Variant::Maglev(65_537), Variant::Ring(1_024)] {
            let names: Vec<String> = (0..21).map(name).collect();
            let ids: Vec<usize> = (0..21).collect();
            let (a, b) = (
                Built::new(v, &names[..20]).unwrap(),
                Built::new(v, &names).unwrap(),
            );
            let exact = moved(&a, &ids, &b, &ids);
            let mut rng = Stream::new(9);
            let n = 200_000;
            let sampled = (0..n)
                .filter(|_| {
                    let h = rng.next_u64();
                    a.lookup(h) != b.lookup(h)
                })
                .count() as f64
                / f64::from(n);
            assert!((exact - sampled).abs() < 0.005, "{exact} {sampled}");
            let share: f64 = b.shares(21)[20];
            assert!(exact >= share - 1e-9, "{exact} {share}");
        }
    }
}
