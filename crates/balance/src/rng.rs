//! Tiny, dependency-free helpers for turning the caller's random word into
//! what the balancers need. The crate never owns an RNG: the caller passes a
//! fresh uniformly random `u64` per pick (see [`crate::PickContext`]), and
//! these functions only *derive* from it, so picks stay pure and reproducible.

/// SplitMix64 finaliser (Steele, Lea, Flood, "Fast Splittable Pseudorandom
/// Number Generators", OOPSLA 2014; constants as in Vigna's `splitmix64.c`).
///
/// A bijective, well-avalanched mixer: feeding it one random word yields an
/// independent-looking second word, which is how the least-request balancer
/// gets several candidates (and tie-breakers) out of one `random`. Iterating
/// `x = splitmix64(x)` from a seed is also a cheap deterministic sequence for
/// tests and simulations.
#[must_use]
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a uniformly random `u64` onto `0..n` with Lemire's multiply-shift
/// ("Fast Random Integer Generation in an Interval", ACM TOMACS 2019) without
/// the rejection step: `(random * n) >> 64`. The bias is at most `n / 2^64`,
/// far below anything a load balancer could observe, and unlike `%` it uses
/// the high bits and needs no division.
///
/// Returns 0 when `n == 0` (callers never ask for that).
#[must_use]
pub const fn uniform(random: u64, n: usize) -> usize {
    // usize -> u64 is lossless on every supported target, and the result is
    // < n, so converting back is lossless too.
    uniform_u64(random, n as u64) as usize
}

/// [`uniform`] over a `u64` range, for totals (e.g. sums of weights) that may
/// not fit `usize` on 32-bit targets.
#[must_use]
pub const fn uniform_u64(random: u64, n: u64) -> u64 {
    ((random as u128 * n as u128) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_vector() {
        // First outputs of Vigna's splitmix64.c seeded with 0: the generator
        // adds the gamma to the state and then mixes, which is exactly
        // `splitmix64(k * gamma)` for the k-th call (k starting at 0).
        let gamma = 0x9E37_79B9_7F4A_7C15_u64;
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(gamma), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(gamma.wrapping_mul(2)), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        assert_eq!(uniform(u64::MAX, 0), 0);
        assert_eq!(uniform(0, 7), 0);
        assert_eq!(uniform(u64::MAX, 7), 6);
        let mut seen = [0u32; 7];
        let mut r = 1;
        for _ in 0..7_000 {
            r = splitmix64(r);
            seen[uniform(r, 7)] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }
}
