//! The theory the measured curves are set against.
//!
//! * n balls into n bins, one random choice: the maximum load is about
//!   `ln n / ln ln n` (the seed documents' "log n / log log n"; Raab and
//!   Steger, "Balls into Bins — A Simple and Tight Analysis", RANDOM 1998).
//!   That is only the leading term and is far off at practical n; Gonnet
//!   ("Expected Length of the Longest Probe Sequence in Hash Code Searching",
//!   JACM 1981) gives the expectation `Gamma^-1(n) - 3/2 + o(1)`, which we plot
//!   as well.
//! * Two choices: `ln ln n / ln 2 + O(1)` (Azar, Broder, Karlin, Upfal,
//!   "Balanced Allocations", SIAM J. Comput. 1999; the seed documents'
//!   "log log n / log 2").
//! * Sustained load, Poisson arrivals at utilisation `rho` on processor-sharing
//!   backends. Random splitting of a Poisson stream gives independent
//!   M/G/1-PS queues, each holding `k` or more requests with probability
//!   `rho^k` whatever the service-time distribution (Kleinrock, 1976), so the
//!   expected maximum over n of them at one instant is exact. For two choices
//!   the supermarket model's fixed point is `rho^(2^k - 1)` (Vvedenskaya,
//!   Dobrushin, Karpelevich, 1996; Mitzenmacher, 1996), shown by Bramson, Lu
//!   and Prabhakar ("Randomized load balancing with general service time
//!   distributions", SIGMETRICS 2010) to hold for processor sharing with
//!   general service times; treating the n queues as independent
//!   (asymptotically true) gives the expected maximum.

/// `ln n / ln ln n`.
pub(crate) fn random_leading(n: f64) -> f64 {
    n.ln() / n.ln().ln()
}

/// `ln ln n / ln 2`.
pub(crate) fn two_choices_leading(n: f64) -> f64 {
    n.ln().ln() / std::f64::consts::LN_2
}

/// Gonnet's `Gamma^-1(n) - 3/2`.
pub(crate) fn random_gonnet(n: f64) -> f64 {
    inverse_gamma(n) - 1.5
}

/// `ln Gamma(x)` for `x > 0` by Stirling's series after shifting `x` above 7
/// (error below 1e-10 there, far finer than needed).
fn ln_gamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 7.0 {
        shift -= x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    shift + (x - 0.5) * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
}

/// The `x >= 2` with `Gamma(x) = y` (for `y >= 1`), by bisection.
fn inverse_gamma(y: f64) -> f64 {
    let target = y.ln();
    let (mut lo, mut hi) = (2.0_f64, 200.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ln_gamma(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Expected maximum of `n` independent counts with `P(X >= k) = tail(k)`:
/// `sum over k >= 1 of 1 - (1 - tail(k))^n`.
fn expected_max(n: f64, tail: impl Fn(f64) -> f64) -> f64 {
    let mut sum = 0.0;
    for k in 1..100_000 {
        let term = 1.0 - (1.0 - tail(f64::from(k))).powf(n);
        sum += term;
        if term < 1e-9 {
            break;
        }
    }
    sum
}

/// Expected maximum in flight over `n` backends under random at
/// utilisation `rho` (exact, see the module documentation).
pub(crate) fn sustained_random(n: f64, rho: f64) -> f64 {
    expected_max(n, |k| rho.powf(k))
}

/// The same for two choices (mean-field, see the module documentation).
pub(crate) fn sustained_two_choices(n: f64, rho: f64) -> f64 {
    expected_max(n, |k| rho.powf(2f64.powf(k) - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_and_its_inverse() {
        // Gamma(5) = 24, Gamma(10) = 362 880.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-9);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-9);
        assert!((inverse_gamma(24.0) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn expected_max_of_one_geometric_is_its_mean() {
        // E[X] = rho / (1 - rho) = 9 at rho = 0.9.
        assert!((sustained_random(1.0, 0.9) - 9.0).abs() < 1e-6);
    }
}
