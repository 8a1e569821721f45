//! The workload's randomness: seeded SplitMix64 streams and the
//! distributions drawn from them (Poisson arrivals, heavy-tailed request
//! work with a cut-off, and the steady-state remaining work used to
//! start a cluster in equilibrium).

use fulcrum_balance::rng::splitmix64;

/// A SplitMix64 stream (Steele, Lea, Flood, OOPSLA 2014): output `k` is
/// `splitmix64(seed + k * gamma)`, exactly Vigna's `splitmix64.c`. Every
/// scenario derives its streams from `--seed` with [`derive`], so the report
/// is a function of the seed alone.
pub(crate) struct Stream(u64);

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Stream {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let out = splitmix64(self.0);
        self.0 = self.0.wrapping_add(GAMMA);
        out
    }

    /// Uniform in (0, 1]: never 0, so `ln` and negative powers stay finite.
    pub(crate) fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Exponential with this mean: Poisson inter-arrival times.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -self.unit().ln() * mean
    }
}

/// Request work: Pareto with shape `alpha`, scaled to mean `mean_ns`, cut
/// off at `cap_ns`.
///
/// Why the cut-off: with shape 1.5 the variance is infinite, and so is the
/// mean *remaining* work of the requests in flight at a random instant (the
/// equilibrium distribution of the work, whose mean is `E[S^2] / 2 E[S]`). A
/// cluster started empty then never reaches its steady state in any run we
/// can afford: measured at 90% utilisation, random splitting still held only
/// 5.2 of its 9 requests per backend after 500 mean service times. Real
/// request work is bounded too (deadlines, timeouts, size limits).
#[derive(Clone, Copy)]
pub(crate) struct Work {
    pub(crate) alpha: f64,
    /// Scale `x_m` of the uncut Pareto.
    scale: f64,
    pub(crate) cap_ns: f64,
}

impl Work {
    pub(crate) fn new(alpha: f64, mean_ns: f64, cap_ns: f64) -> Self {
        Self {
            alpha,
            scale: mean_ns * (alpha - 1.0) / alpha,
            cap_ns,
        }
    }

    /// The mean after the cut-off: `x_m + x_m (1 - (x_m / cap)^(alpha - 1)) / (alpha - 1)`.
    pub(crate) fn mean(&self) -> f64 {
        let a1 = self.alpha - 1.0;
        self.scale + self.scale * (1.0 - (self.scale / self.cap_ns).powf(a1)) / a1
    }

    /// One request's work, by inversion: `min(x_m U^(-1/alpha), cap)`.
    pub(crate) fn sample(&self, rng: &mut Stream) -> f64 {
        (self.scale * rng.unit().powf(-1.0 / self.alpha)).min(self.cap_ns)
    }

    /// The remaining work of a request in flight in the steady state of a
    /// processor-sharing queue: the equilibrium distribution, with tail
    /// `P(R > r) = (1 / E[S]) * integral from r of P(S > x) dx`, inverted.
    pub(crate) fn residual(&self, rng: &mut Stream) -> f64 {
        let (xm, a1, mean) = (self.scale, self.alpha - 1.0, self.mean());
        let u = rng.unit();
        if u >= 1.0 - xm / mean {
            // Below x_m the tail falls linearly: P(R > r) = 1 - r / E[S].
            ((1.0 - u) * mean).max(0.0)
        } else {
            // P(R > r) = x_m^alpha (r^(1-alpha) - cap^(1-alpha)) / ((alpha-1) E[S]).
            let base = u * mean * a1 / xm.powf(self.alpha) + self.cap_ns.powf(-a1);
            base.powf(-1.0 / a1).min(self.cap_ns)
        }
    }
}

/// Mean work of a request: 20 ms, a typical API call.
pub(crate) const MEAN_SERVICE_NS: f64 = 20e6;

/// The work every scenario draws from: Pareto(1.5) scaled to a mean of
/// 20 ms, cut off at 2 s (100 x the mean), which brings the mean to 19.2 ms.
pub(crate) fn standard_work() -> Work {
    Work::new(1.5, MEAN_SERVICE_NS, 100.0 * MEAN_SERVICE_NS)
}

/// A seed for one independent stream, from the run's seed and the tags that
/// name the stream (scenario, size, algorithm ...).
pub(crate) fn derive(seed: u64, tags: &[u64]) -> u64 {
    tags.iter()
        .fold(splitmix64(seed), |acc, &t| splitmix64(acc ^ splitmix64(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_and_residual_have_the_stated_means() {
        let w = Work::new(1.5, 20.0, 2_000.0);
        assert!((w.mean() - 19.23).abs() < 0.01, "{}", w.mean());
        let mut s = Stream::new(1);
        let n = 1_000_000;
        let mean = (0..n).map(|_| w.sample(&mut s)).sum::<f64>() / f64::from(n);
        assert!((mean / w.mean() - 1.0).abs() < 0.02, "{mean}");
        // Equilibrium mean E[S^2] / (2 E[S]), with E[S^2] = integral of
        // 2x P(S > x) = x_m^2 + 4 x_m^1.5 (cap^0.5 - x_m^0.5) for alpha 1.5.
        let xm: f64 = 20.0 / 3.0;
        let second = xm * xm + 4.0 * xm.powf(1.5) * (2_000f64.sqrt() - xm.sqrt());
        let expected = second / (2.0 * w.mean());
        let got = (0..n).map(|_| w.residual(&mut s)).sum::<f64>() / f64::from(n);
        assert!((got / expected - 1.0).abs() < 0.05, "{got} vs {expected}");
    }
}
