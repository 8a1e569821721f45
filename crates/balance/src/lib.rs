//! Load-balancing algorithms for fulcrum.
//!
//! The contract, and why:
//!
//! * **Built off the hot path.** The control side calls [`build`] (or
//!   [`build_seeded`], to randomise where round robin starts, or
//!   [`build_with_keys`], for the hashing policies) once per endpoint set
//!   (on config load or membership change) with the endpoints' weights.
//!   Anything expensive — precomputing a round-robin period, prefix sums, a
//!   hash ring or a Maglev table — happens there.
//! * **Picked lock-free.** Many worker threads then call [`Balancer::pick`]
//!   concurrently through `&self`. A pick is at most one relaxed atomic
//!   `fetch_add` plus reads; there is no lock except in a documented fallback
//!   for absurd round-robin weight sets (see `schedule.rs`).
//! * **Pure.** No I/O, no clock, no global RNG, no dependencies. Everything a
//!   pick may depend on comes in through [`PickContext`]: a fresh random word
//!   from the caller, the request's hash for the hashing policies, the time
//!   for `peak_ewma`, and a read-only [`LoadView`] of live state (in-flight
//!   counts, latency estimates) that the caller owns. That keeps the crate
//!   deterministic under test and lets the server choose its own RNG and
//!   clock.
//! * **Agreed across instances.** The hashing policies (`ring_hash`,
//!   `maglev`, `consistent_bounded`, `rendezvous`) are functions of the set
//!   of (endpoint key, weight) pairs and the request hash only, hashed with
//!   [`hash::xxh64`] under fixed seeds: every fulcrum instance (and version)
//!   built from the same endpoints sends the same request hash to the same
//!   endpoint. The committed test vectors (`tests/vectors/`) pin this.
//!
//! A pick returns an index into the `weights` slice the balancer was built
//! from; mapping it back to an endpoint is the caller's business.
//!
//! ```
//! use std::sync::atomic::AtomicU64;
//! use fulcrum_balance::{build, PickContext, Policy, rng::splitmix64};
//!
//! // Control side, once per endpoint set.
//! let lb = build(Policy::WeightedRoundRobin, &[5, 1, 1]);
//! let active: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
//!
//! // Worker side, per request (any RNG will do; this one is deterministic).
//! let mut seed = 42;
//! let picks: Vec<usize> = (0..7)
//!     .map(|_| {
//!         seed = splitmix64(seed);
//!         lb.pick(&PickContext::new(seed, &active)).unwrap()
//!     })
//!     .collect();
//! assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
//! ```
//!
//! Hashing policies take endpoint keys and a request hash:
//!
//! ```
//! use fulcrum_balance::{build_with_keys, hash::request_hash, PickContext, Policy};
//!
//! let keys = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
//! let lb = build_with_keys(Policy::Maglev { table_size: 65_537 }, &[1, 1, 1], &keys, 0)?;
//! let load = [0u64; 3];
//! let ctx = PickContext::new(7, &load).with_hash(Some(request_hash(b"user-42")));
//! let first = lb.pick(&ctx);
//! // The same request hash always lands on the same endpoint.
//! assert_eq!(lb.pick(&ctx), first);
//! # Ok::<(), fulcrum_balance::BuildError>(())
//! ```

mod bounded_load;
mod keys;
mod least_request;
mod maglev;
mod peak_ewma;
mod random;
mod rendezvous;
mod ring_hash;
mod round_robin;
mod sampler;
mod schedule;
mod weighted_round_robin;

pub mod hash;
pub mod rng;

#[cfg(test)]
mod test_util;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use bounded_load::DEFAULT_BALANCE_FACTOR;
pub use least_request::FULL_SCAN_MAX;
pub use maglev::{DEFAULT_MAGLEV_TABLE_SIZE, MAX_MAGLEV_TABLE_SIZE, Maglev};
pub use peak_ewma::{MAX_ESTIMATE_NS, PeakEwma, PeakEwmaConfig};
pub use ring_hash::{DEFAULT_MAX_RING_SIZE, DEFAULT_MIN_RING_SIZE, MAX_RING_SIZE, RingHash};

/// What a balancer may read about live load at pick time (implemented by the server over per-endpoint atomics).
///
/// Only [`active_requests`](Self::active_requests) is required; the other
/// methods have defaults, so a view that only counts requests keeps working
/// with every policy.
pub trait LoadView {
    /// Requests currently in flight to endpoint `index`.
    fn active_requests(&self, index: usize) -> u64;

    /// Requests in flight to endpoints `0..len` together, read once per pick
    /// by `consistent_bounded`. The default sums
    /// [`active_requests`](Self::active_requests), O(len); a caller that
    /// keeps a running total per cluster can return it in O(1).
    fn total_active_requests(&self, len: usize) -> u64 {
        (0..len)
            .map(|i| self.active_requests(i))
            .fold(0, u64::saturating_add)
    }

    /// The latency estimate of endpoint `index`, read by `peak_ewma`. The
    /// caller owns one [`PeakEwma`] per endpoint (so it outlives balancer
    /// rebuilds) and feeds it responses; `None` (the default) costs the
    /// endpoint at the policy's `default_rtt_ns`.
    fn peak_ewma(&self, index: usize) -> Option<&PeakEwma> {
        let _ = index;
        None
    }
}

/// Implements [`LoadView`] for `Vec`, boxed slices and arrays of `$elem`.
/// (Owned containers rather than `[$elem]`, because `&dyn LoadView` needs a
/// sized referent.)
macro_rules! impl_load_view {
    ($elem:ty, |$c:ident| $read:expr) => {
        impl LoadView for Vec<$elem> {
            fn active_requests(&self, index: usize) -> u64 {
                let $c = &self[index];
                $read
            }
        }
        impl LoadView for Box<[$elem]> {
            fn active_requests(&self, index: usize) -> u64 {
                let $c = &self[index];
                $read
            }
        }
        impl<const N: usize> LoadView for [$elem; N] {
            fn active_requests(&self, index: usize) -> u64 {
                let $c = &self[index];
                $read
            }
        }
    };
}

// Per-endpoint in-flight counters, the shape the server keeps. Relaxed: the
// value is advisory and may be stale by the time it is used anyway.
impl_load_view!(AtomicU64, |c| c.load(Ordering::Relaxed));
// A fixed snapshot of load, handy for tests and simulations.
impl_load_view!(u64, |c| *c);

/// Inputs for one pick. `random` is a fresh uniformly random u64 from the caller for every pick; `hash` is the request's hash key for hashing policies.
///
/// Build it with [`PickContext::new`] and the `with_*` methods, so that
/// fields added later get defaults instead of breaking callers.
#[derive(Clone, Copy)]
pub struct PickContext<'a> {
    pub random: u64,
    /// The request's hash for the hashing policies (see
    /// [`hash::request_hash`]); ignored by the others. With `None` the
    /// hashing policies pick at random (`random` stands in for the hash).
    pub hash: Option<u64>,
    pub load: &'a dyn LoadView,
    /// Now, in nanoseconds on the monotonic clock the caller feeds
    /// [`PeakEwma::observe`] with; read by `peak_ewma` only. 0 (the default)
    /// is "no clock": estimates are then used without decay.
    pub now_ns: u64,
}

impl<'a> PickContext<'a> {
    /// A context with no request hash and no time.
    pub const fn new(random: u64, load: &'a dyn LoadView) -> Self {
        Self {
            random,
            hash: None,
            load,
            now_ns: 0,
        }
    }

    /// With the request's hash (`None` for none).
    #[must_use]
    pub const fn with_hash(self, hash: Option<u64>) -> Self {
        Self { hash, ..self }
    }

    /// With the current time, for `peak_ewma`.
    #[must_use]
    pub const fn with_now_ns(self, now_ns: u64) -> Self {
        Self { now_ns, ..self }
    }
}

/// A balancer is built once per endpoint set (by the control side, off the hot path) over the endpoints' weights, and then picked from concurrently by many worker threads with `&self`: no locks on the hot path (atomics only).
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// Returns an index into the `weights` slice the balancer was built from, or None if it was built from an empty set.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize>;
    /// The policy this balancer implements (with the parameters actually in
    /// effect, e.g. a `choice_count` raised to the minimum of 2).
    fn policy(&self) -> Policy;
}

/// Which algorithm to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// LVS interleaved weighted round robin; plain cycling for equal weights.
    RoundRobin,
    /// NGINX smooth weighted round robin.
    WeightedRoundRobin,
    /// Weighted random.
    Random,
    /// Fewest active requests per unit weight among `choice_count` random
    /// candidates (all endpoints for small sets), candidates drawn in
    /// proportion to weight and ties broken by weight; `choice_count` < 2 is
    /// treated as 2.
    LeastRequest { choice_count: u32 },
    /// Ketama/Envoy consistent-hash ring: each endpoint gets virtual nodes in
    /// proportion to weight, about `min_ring_size` to `max_ring_size` in all
    /// (defaults [`DEFAULT_MIN_RING_SIZE`], [`DEFAULT_MAX_RING_SIZE`];
    /// `1 <= min <= max <= MAX_RING_SIZE`). Hashing: needs endpoint keys.
    RingHash {
        min_ring_size: u64,
        max_ring_size: u64,
    },
    /// Maglev lookup table of prime size `table_size` (default
    /// [`DEFAULT_MAGLEV_TABLE_SIZE`], at most [`MAX_MAGLEV_TABLE_SIZE`]):
    /// O(1) picks, even shares. Hashing: needs endpoint keys.
    Maglev { table_size: u64 },
    /// Ring hash with bounded loads: no endpoint takes more than
    /// `ceil(balance_factor / 100 * average in-flight load)` (per unit
    /// weight); overflow walks on along the ring. `balance_factor` is a
    /// percentage >= 100 (default [`DEFAULT_BALANCE_FACTOR`] = 125, i.e.
    /// c = 1.25). Hashing: needs endpoint keys.
    ConsistentBounded {
        balance_factor: u32,
        min_ring_size: u64,
        max_ring_size: u64,
    },
    /// Weighted rendezvous (highest random weight) hashing: removing an
    /// endpoint moves exactly its keys; O(n) per pick. Hashing: needs
    /// endpoint keys.
    Rendezvous,
    /// Lowest peak-EWMA latency x (in flight + 1) per unit weight among
    /// `choice_count` candidates (all endpoints for small sets);
    /// `choice_count` < 2 is treated as 2. Reads [`LoadView::peak_ewma`]
    /// and [`PickContext::now_ns`]; `config` is what the caller creates its
    /// per-endpoint [`PeakEwma`]s with (and `default_rtt_ns` costs endpoints
    /// without one).
    PeakEwma {
        choice_count: u32,
        config: PeakEwmaConfig,
    },
}

impl Policy {
    /// `ring_hash` with the default ring sizes.
    pub const RING_HASH: Self = Self::RingHash {
        min_ring_size: DEFAULT_MIN_RING_SIZE,
        max_ring_size: DEFAULT_MAX_RING_SIZE,
    };
    /// `maglev` with the default table size.
    pub const MAGLEV: Self = Self::Maglev {
        table_size: DEFAULT_MAGLEV_TABLE_SIZE,
    };
    /// `consistent_bounded` with the default factor and ring sizes.
    pub const CONSISTENT_BOUNDED: Self = Self::ConsistentBounded {
        balance_factor: DEFAULT_BALANCE_FACTOR,
        min_ring_size: DEFAULT_MIN_RING_SIZE,
        max_ring_size: DEFAULT_MAX_RING_SIZE,
    };
    /// `peak_ewma` with two choices and the default configuration.
    pub const PEAK_EWMA: Self = Self::PeakEwma {
        choice_count: DEFAULT_CHOICE_COUNT,
        config: PeakEwmaConfig::DEFAULT,
    };

    /// The policy's configuration name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::Random => "random",
            Self::LeastRequest { .. } => "least_request",
            Self::RingHash { .. } => "ring_hash",
            Self::Maglev { .. } => "maglev",
            Self::ConsistentBounded { .. } => "consistent_bounded",
            Self::Rendezvous => "rendezvous",
            Self::PeakEwma { .. } => "peak_ewma",
        }
    }

    /// Whether the policy hashes requests onto endpoints: it needs endpoint
    /// keys ([`build_with_keys`]) and reads [`PickContext::hash`].
    pub const fn is_hashing(&self) -> bool {
        matches!(
            self,
            Self::RingHash { .. }
                | Self::Maglev { .. }
                | Self::ConsistentBounded { .. }
                | Self::Rendezvous
        )
    }

    /// Checks the parameters [`build_with_keys`] rejects: a Maglev table size
    /// that is not a prime in `2..=MAX_MAGLEV_TABLE_SIZE`, ring sizes outside
    /// `1 <= min <= max <= MAX_RING_SIZE`, a balance factor below 100. (A
    /// `choice_count` below 2 is raised to 2, not rejected, as it always
    /// was.) Meant for the config layer, to report errors at load time.
    pub fn validate(&self) -> Result<(), BuildError> {
        match *self {
            Self::Maglev { table_size } => {
                if table_size > MAX_MAGLEV_TABLE_SIZE {
                    Err(BuildError::MaglevTableSizeTooLarge { table_size })
                } else if !maglev::is_prime(table_size) {
                    Err(BuildError::MaglevTableSizeNotPrime { table_size })
                } else {
                    Ok(())
                }
            }
            Self::RingHash {
                min_ring_size,
                max_ring_size,
            } => validate_ring(min_ring_size, max_ring_size),
            Self::ConsistentBounded {
                balance_factor,
                min_ring_size,
                max_ring_size,
            } => {
                validate_ring(min_ring_size, max_ring_size)?;
                if balance_factor < 100 {
                    return Err(BuildError::BalanceFactor { balance_factor });
                }
                Ok(())
            }
            Self::RoundRobin
            | Self::WeightedRoundRobin
            | Self::Random
            | Self::LeastRequest { .. }
            | Self::Rendezvous
            | Self::PeakEwma { .. } => Ok(()),
        }
    }

    /// The nearest valid parameters, for the infallible [`build`]: the next
    /// prime table size (or the largest allowed), ring sizes clamped into
    /// range, a balance factor raised to 100.
    fn corrected(self) -> Self {
        const fn ring(min: u64, max: u64) -> (u64, u64) {
            let max = if max == 0 {
                1
            } else if max > MAX_RING_SIZE {
                MAX_RING_SIZE
            } else {
                max
            };
            let min = if min == 0 {
                1
            } else if min > max {
                max
            } else {
                min
            };
            (min, max)
        }
        match self {
            Self::Maglev { table_size } if self.validate().is_err() => Self::Maglev {
                table_size: maglev::next_valid_table_size(table_size),
            },
            Self::RingHash {
                min_ring_size,
                max_ring_size,
            } => {
                let (min_ring_size, max_ring_size) = ring(min_ring_size, max_ring_size);
                Self::RingHash {
                    min_ring_size,
                    max_ring_size,
                }
            }
            Self::ConsistentBounded {
                balance_factor,
                min_ring_size,
                max_ring_size,
            } => {
                let (min_ring_size, max_ring_size) = ring(min_ring_size, max_ring_size);
                Self::ConsistentBounded {
                    balance_factor: balance_factor.max(100),
                    min_ring_size,
                    max_ring_size,
                }
            }
            other => other,
        }
    }
}

fn validate_ring(min_ring_size: u64, max_ring_size: u64) -> Result<(), BuildError> {
    if 1 <= min_ring_size && min_ring_size <= max_ring_size && max_ring_size <= MAX_RING_SIZE {
        Ok(())
    } else {
        Err(BuildError::RingSize {
            min_ring_size,
            max_ring_size,
        })
    }
}

/// Candidates sampled by [`Policy::LeastRequest`] and [`Policy::PeakEwma`]
/// unless configured: two choices already give most of the benefit
/// (Mitzenmacher).
pub const DEFAULT_CHOICE_COUNT: u32 = 2;

/// Why [`build_with_keys`] (or [`Policy::validate`], [`Maglev::new`],
/// [`RingHash::new`]) refused; the `Display` text is meant for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// Maglev's permutations only visit every slot of a prime-sized table.
    MaglevTableSizeNotPrime { table_size: u64 },
    /// Larger than [`MAX_MAGLEV_TABLE_SIZE`].
    MaglevTableSizeTooLarge { table_size: u64 },
    /// Not `1 <= min_ring_size <= max_ring_size <= MAX_RING_SIZE`.
    RingSize {
        min_ring_size: u64,
        max_ring_size: u64,
    },
    /// Below 100 (the factor is a percentage of the average load).
    BalanceFactor { balance_factor: u32 },
    /// A hashing policy got a different number of keys than weights.
    KeyCount { keys: usize, weights: usize },
    /// Two endpoints share a key, so the hashing policies cannot tell them
    /// apart (or agree across instances on their order).
    DuplicateKey { key: String },
    /// More endpoints than the tables can index (`u32`).
    TooManyEndpoints { len: usize },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaglevTableSizeNotPrime { table_size } => {
                write!(
                    f,
                    "maglev table_size {table_size} is not a prime number: Maglev needs a \
                     prime table size so that every endpoint's permutation visits every slot"
                )?;
                match maglev::nearest_primes(*table_size) {
                    (Some(below), Some(above)) => {
                        write!(f, " (nearest primes: {below} and {above})")
                    }
                    (None, Some(above)) => write!(f, " (nearest prime: {above})"),
                    _ => Ok(()),
                }?;
                write!(f, "; the default is {DEFAULT_MAGLEV_TABLE_SIZE}")
            }
            Self::MaglevTableSizeTooLarge { table_size } => write!(
                f,
                "maglev table_size {table_size} is larger than the maximum \
                 {MAX_MAGLEV_TABLE_SIZE} (a prime); the default is {DEFAULT_MAGLEV_TABLE_SIZE}"
            ),
            Self::RingSize {
                min_ring_size,
                max_ring_size,
            } => write!(
                f,
                "ring sizes must satisfy 1 <= min_ring_size <= max_ring_size <= \
                 {MAX_RING_SIZE}, got min_ring_size {min_ring_size} and max_ring_size \
                 {max_ring_size}"
            ),
            Self::BalanceFactor { balance_factor } => write!(
                f,
                "balance_factor {balance_factor} is below 100: it is the capacity of an \
                 endpoint in percent of the average load (125 allows 1.25 x the average), \
                 and below 100 the endpoints could not hold all requests"
            ),
            Self::KeyCount { keys, weights } => write!(
                f,
                "{keys} endpoint keys for {weights} endpoints: hashing policies need \
                 exactly one key per endpoint"
            ),
            Self::DuplicateKey { key } => write!(
                f,
                "endpoint key \"{key}\" appears more than once: hashing policies need a \
                 unique key per endpoint"
            ),
            Self::TooManyEndpoints { len } => {
                write!(f, "{len} endpoints: at most {} are supported", u32::MAX)
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds the balancer for `policy` over endpoints with these weights (each weight >= 1; a weight of 0 is treated as 1 — the config layer rejects 0 before it gets here).
///
/// The round-robin policies start at the beginning of their sequence (the
/// same as [`build_seeded`] with seed 0), so the first pick is deterministic;
/// see [`build_seeded`] to spread starts across instances and rebuilds.
///
/// Meant for the policies that need only weights. The hashing policies
/// ([`Policy::is_hashing`]) are built with the endpoint *indices* as keys
/// (`"0"`, `"1"`, ...), so their mapping changes whenever endpoints are
/// inserted or removed anywhere but at the end; use [`build_with_keys`] for
/// them. Parameters that [`Policy::validate`] rejects are corrected to the
/// nearest valid ones (as a `choice_count` below 2 is raised to 2), and
/// [`Balancer::policy`] reports what was built.
pub fn build(policy: Policy, weights: &[u32]) -> Arc<dyn Balancer> {
    build_seeded(policy, weights, 0)
}

/// Like [`build`], but [`Policy::RoundRobin`] and
/// [`Policy::WeightedRoundRobin`] start at position `uniform(seed, period)`
/// of their sequence instead of at 0 (`period`: the length of one round,
/// `sum(weights) / gcd(weights)`; see [`rng::uniform`]). Otherwise every proxy
/// instance, and every rebuild after a membership or health change, would
/// send its first request to the same endpoint (Envoy randomises the
/// round-robin start index for the same reason). The sequence itself and its
/// per-period shares are unchanged, only rotated. The other policies are
/// stateless (or, for hashing, must not depend on anything but the
/// endpoints) and ignore `seed`.
///
/// `seed` should be a uniformly random `u64` (fresh per build, from the same
/// RNG that feeds [`PickContext::random`]): [`rng::uniform`] uses the high
/// bits, so small integers such as an instance number all map to position 0
/// — pass them through [`rng::splitmix64`] first. Seed 0 is [`build`].
///
/// For absurd weight sets whose period is too long to precompute (see
/// `schedule.rs`), the start is uniform over the first 2^20 positions only.
pub fn build_seeded(policy: Policy, weights: &[u32], seed: u64) -> Arc<dyn Balancer> {
    let index_keys = if policy.is_hashing() {
        keys::index_keys(weights.len())
    } else {
        Vec::new()
    };
    let keys: Vec<&str> = index_keys.iter().map(String::as_str).collect();
    // The corrected policy is valid and index keys are unique, so the only
    // possible error is more than u32::MAX endpoints, which cannot be
    // allocated in practice; fall back to weighted random rather than panic.
    build_valid(policy.corrected(), weights, &keys, seed)
        .unwrap_or_else(|_| Arc::new(random::Random::new(weights)))
}

/// Builds the balancer for `policy` over endpoints with these weights (0
/// counts as 1) and keys: `keys[i]` is a stable, unique name of endpoint `i`
/// — the server passes the endpoint address, `"10.0.0.1:8080"` — from which
/// the hashing policies place it, so that instances agree. The result
/// depends on the set of (key, weight) pairs, not on their order. The other
/// policies ignore `keys` (it may be empty for them) and behave as
/// [`build_seeded`].
///
/// Errors, instead of correcting: parameters [`Policy::validate`] rejects
/// (e.g. a Maglev table size that is not prime), and for hashing policies a
/// key count that differs from the weight count or a repeated key.
pub fn build_with_keys(
    policy: Policy,
    weights: &[u32],
    keys: &[&str],
    seed: u64,
) -> Result<Arc<dyn Balancer>, BuildError> {
    policy.validate()?;
    build_valid(policy, weights, keys, seed)
}

/// Key order for the hashing policies, after checking one unique key per
/// endpoint.
pub(crate) fn check_keys(weights: &[u32], keys: &[&str]) -> Result<Vec<usize>, BuildError> {
    if keys.len() != weights.len() {
        return Err(BuildError::KeyCount {
            keys: keys.len(),
            weights: weights.len(),
        });
    }
    keys::key_order(keys)
}

/// Builds a policy whose parameters are valid.
fn build_valid(
    policy: Policy,
    weights: &[u32],
    keys: &[&str],
    seed: u64,
) -> Result<Arc<dyn Balancer>, BuildError> {
    let weights: Vec<u32> = weights.iter().map(|&w| w.max(1)).collect();
    Ok(match policy {
        Policy::RoundRobin => Arc::new(round_robin::RoundRobin::with_seed(&weights, seed)),
        Policy::WeightedRoundRobin => Arc::new(
            weighted_round_robin::WeightedRoundRobin::with_seed(&weights, seed),
        ),
        Policy::Random => Arc::new(random::Random::new(&weights)),
        Policy::LeastRequest { choice_count } => {
            Arc::new(least_request::LeastRequest::new(&weights, choice_count))
        }
        Policy::PeakEwma {
            choice_count,
            config,
        } => Arc::new(peak_ewma::PeakEwmaBalancer::new(
            &weights,
            choice_count,
            config,
        )),
        Policy::RingHash {
            min_ring_size,
            max_ring_size,
        } => {
            let order = check_keys(&weights, keys)?;
            Arc::new(RingHash::build(
                &weights,
                keys,
                &order,
                min_ring_size,
                max_ring_size,
            ))
        }
        Policy::Maglev { table_size } => {
            let order = check_keys(&weights, keys)?;
            Arc::new(Maglev::build(&weights, keys, &order, table_size))
        }
        Policy::ConsistentBounded {
            balance_factor,
            min_ring_size,
            max_ring_size,
        } => {
            let order = check_keys(&weights, keys)?;
            let ring = RingHash::build(&weights, keys, &order, min_ring_size, max_ring_size);
            Arc::new(bounded_load::BoundedLoad::new(
                ring,
                &weights,
                balance_factor,
            ))
        }
        Policy::Rendezvous => {
            let order = check_keys(&weights, keys)?;
            Arc::new(rendezvous::Rendezvous::new(&weights, keys, &order))
        }
    })
}

#[cfg(test)]
mod tests;
