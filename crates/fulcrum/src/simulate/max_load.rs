//! Scenario 1: the most loaded backend as the cluster grows, for random,
//! round robin, `least_request` (P2C), full least-request and `peak_ewma`,
//! set against the theory in `theory.rs`.
//!
//! * **n balls into n bins**: n requests that never complete, each counted on
//!   the backend it was sent to; the load is that count. Averaged over many
//!   trials (fewer for large n). Full least-request here is the library's
//!   `LeastRequest { choice_count: n }` (its full scan).
//! * **Sustained**: Poisson arrivals at utilisation 0.9 on processor-sharing
//!   backends, Pareto(1.5) work cut off at 100x its mean (see `workload.rs`
//!   for why the cut-off). Random starts in its exact steady state
//!   ([`PsCluster::fill_steady_state`]); the others start empty and warm up
//!   (1 000 mean service times: measured, P2C and full least-request settle
//!   within 200, `peak_ewma` within about 1 000, round robin more slowly
//!   still). Then the largest in-flight count of any backend is sampled
//!   every half mean service time; we report the mean of these per-snapshot
//!   maxima (the time-average of the maximum, which is what the theory
//!   predicts) and their 99th percentile (how bad the bursts get). Every
//!   algorithm sees the same arrivals and work (common random numbers), so
//!   differences are the algorithms'. Full least-request is the exact O(1)
//!   equivalent (`Picker::Exact`), the library's O(n) scan being too slow
//!   for 10 000 backends at millions of requests.

use fulcrum_balance::LoadView;
use plotters::prelude::SeriesLabelPosition;

use super::Ctx;
use super::algos::{Algo, Picker};
use super::engine::{Completion, Driver, OpenLoop, PsCluster, SimLoad, drive};
use super::plot::{Chart, Kind, Series, line_chart};
use super::report::{Section, Table, mean, num, quantile};
use super::theory;
use super::workload::{MEAN_SERVICE_NS, Stream, derive, standard_work};

const RHO: f64 = 0.9;

struct Sizes {
    ns: &'static [usize],
    /// Picks per balls-into-bins cell (trials = this / n, clamped).
    picks: usize,
    /// Arrivals per sustained cell in the measured window (at least
    /// `min_window` mean service times).
    arrivals: f64,
    min_window: f64,
    /// Warm-up of the algorithms that start empty, in mean service times.
    warmup: f64,
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            ns: &[10, 100, 1000],
            picks: 100_000,
            arrivals: 20_000.0,
            min_window: 60.0,
            warmup: 100.0,
        }
    } else {
        Sizes {
            ns: &[10, 30, 100, 300, 1000, 3000, 10_000],
            picks: 2_000_000,
            arrivals: 300_000.0,
            min_window: 300.0,
            warmup: 1_000.0,
        }
    }
}

/// Mean over trials of the largest bin after n balls into n bins.
fn balls(seed: u64, n: usize, algo: Algo, picks: usize) -> f64 {
    let trials = if algo == Algo::FullLeastRequest {
        // n^2 counter reads per trial; the answer is 1 every time anyway.
        (100_000_000 / (n * n)).clamp(1, 20)
    } else {
        (picks / n).clamp(10, 2_000)
    };
    let mut sum = 0;
    for t in 0..trials as u64 {
        let tags = [10, n as u64, algo.tag(), t];
        let picker = Picker::new(algo, n, derive(seed, &tags), false);
        let mut rng = Stream::new(derive(seed, &[11, n as u64, algo.tag(), t]));
        let mut load = SimLoad::new(n);
        for _ in 0..n {
            let b = picker.pick_view(&load, rng.next_u64(), 1);
            load.add(b);
        }
        sum += load.active.iter().max().copied().unwrap_or(0);
    }
    sum as f64 / trials as f64
}

struct Sustained {
    mean_max: f64,
    p99_max: f64,
    /// Mean in flight per backend (rho / (1 - rho) = 9 for random).
    mean_in_flight: f64,
}

/// Samples the per-snapshot maximum once the warm-up is over.
struct Snapshots {
    picker: Picker,
    picks: Stream,
    n: usize,
    maxima: Vec<f64>,
    in_flight: Vec<f64>,
}

impl Driver for Snapshots {
    fn tick(&mut self, cluster: &mut PsCluster, _now: f64) {
        self.maxima.push(cluster.max_active() as f64);
        let total = cluster.load.total_active_requests(self.n);
        self.in_flight.push(total as f64 / self.n as f64);
    }
    fn route(&mut self, cluster: &PsCluster, now: f64) -> usize {
        self.picker.pick(cluster, self.picks.next_u64(), now)
    }
    fn completed(&mut self, _: &Completion) {}
}

fn sustained(seed: u64, n: usize, algo: Algo, sizes: &Sizes) -> Sustained {
    let work = standard_work();
    let mut c = PsCluster::new(n);
    // Random starts in its exact steady state and needs no warm-up; the
    // others start empty (see the module documentation).
    let start = if algo == Algo::Random {
        c.fill_steady_state(RHO, &work, &mut Stream::new(derive(seed, &[23, n as u64])));
        0.0
    } else {
        sizes.warmup * MEAN_SERVICE_NS
    };
    let window = (sizes.arrivals / (RHO * n as f64)).max(sizes.min_window) * MEAN_SERVICE_NS;
    let mut d = Snapshots {
        picker: Picker::new(algo, n, derive(seed, &[20, n as u64, algo.tag()]), true),
        picks: Stream::new(derive(seed, &[22, n as u64, algo.tag()])),
        n,
        maxima: Vec::new(),
        in_flight: Vec::new(),
    };
    let mut arrivals = Stream::new(derive(seed, &[21, n as u64]));
    let load = OpenLoop {
        arrivals: &mut arrivals,
        work,
        gap: work.mean() / (RHO * n as f64),
        first_tick: start,
        step: MEAN_SERVICE_NS / 2.0,
        end: start + window,
    };
    drive(&mut c, load, &mut d);
    Sustained {
        mean_max: mean(&d.maxima),
        p99_max: quantile(&mut d.maxima, 0.99),
        mean_in_flight: mean(&d.in_flight),
    }
}

/// n = 10 .. max, 40 points evenly spaced in log n, for theory curves.
fn log_points(max: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..=40)
        .map(|i| {
            let n = 10f64 * (max as f64 / 10.0).powf(f64::from(i) / 40.0);
            (n, f(n))
        })
        .collect()
}

pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let sizes = sizes(ctx.quick);
    let mut cells: Vec<(usize, Algo)> = Vec::new();
    for &n in sizes.ns.iter().rev() {
        for a in Algo::ALL {
            cells.push((n, a));
        }
    }
    let ball = ctx.par_map("max load: balls into bins", &cells, |&(n, a)| {
        balls(ctx.seed, n, a, sizes.picks)
    });
    let held = ctx.par_map("max load: sustained", &cells, |&(n, a)| {
        sustained(ctx.seed, n, a, &sizes)
    });
    let at = |n: usize, a: Algo| cells.iter().position(|&c| c == (n, a)).unwrap_or(0);
    let largest = *sizes.ns.last().unwrap_or(&10);
    let nf = largest as f64;

    let mut balls_table = Table::new([
        "n",
        "random",
        "ln n / ln ln n",
        "Gonnet Γ⁻¹(n) − 3/2",
        "round_robin",
        "least_request (P2C)",
        "ln ln n / ln 2",
        "full least-request",
        "peak_ewma (P2C)",
    ]);
    for &n in sizes.ns {
        let x = n as f64;
        let v = |a| num(ball[at(n, a)], 2);
        balls_table.row([
            n.to_string(),
            v(Algo::Random),
            num(theory::random_leading(x), 2),
            num(theory::random_gonnet(x), 2),
            v(Algo::RoundRobin),
            v(Algo::P2c),
            num(theory::two_choices_leading(x), 2),
            v(Algo::FullLeastRequest),
            v(Algo::PeakEwma),
        ]);
    }
    // Round robin and full least-request coincide (1 everywhere), as do
    // P2C and peak_ewma: the first of each pair is drawn wide.
    let mut series: Vec<Series> = Algo::ALL
        .iter()
        .map(|&a| {
            let pts = sizes
                .ns
                .iter()
                .map(|&n| (n as f64, ball[at(n, a)]))
                .collect();
            let s = Series::new(a.label(), Kind::Measured, a.color(), pts);
            if matches!(a, Algo::RoundRobin | Algo::P2c) {
                s.wide()
            } else {
                s
            }
        })
        .collect();
    series.push(Series::new(
        "theory, random: ln n / ln ln n",
        Kind::Theory,
        Algo::Random.color(),
        log_points(largest, theory::random_leading),
    ));
    series.push(Series::new(
        "theory, random: Gonnet Γ⁻¹(n) − 3/2",
        Kind::Theory,
        5,
        log_points(largest, theory::random_gonnet),
    ));
    series.push(Series::new(
        "theory, two choices: ln ln n / ln 2",
        Kind::Theory,
        Algo::P2c.color(),
        log_points(largest, theory::two_choices_leading),
    ));
    line_chart(
        &ctx.path("max_load_balls.svg"),
        &Chart {
            title: "n requests into n backends: most loaded backend".into(),
            x_label: "backends n (log scale)".into(),
            y_label: "max requests on one backend (mean of trials)".into(),
            x_log: true,
            y_log: false,
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
            series,
        },
    )?;

    let mut held_table = Table::new([
        "n",
        "random",
        "theory random",
        "round_robin",
        "least_request (P2C)",
        "theory P2C",
        "full least-request",
        "peak_ewma (P2C)",
    ]);
    for &n in sizes.ns {
        let x = n as f64;
        let v = |a| {
            let s = &held[at(n, a)];
            format!("{} / {}", num(s.mean_max, 1), num(s.p99_max, 0))
        };
        held_table.row([
            n.to_string(),
            v(Algo::Random),
            num(theory::sustained_random(x, RHO), 1),
            v(Algo::RoundRobin),
            v(Algo::P2c),
            num(theory::sustained_two_choices(x, RHO), 1),
            v(Algo::FullLeastRequest),
            v(Algo::PeakEwma),
        ]);
    }
    let mut series: Vec<Series> = Algo::ALL
        .iter()
        .map(|&a| {
            let pts = sizes
                .ns
                .iter()
                .map(|&n| (n as f64, held[at(n, a)].mean_max))
                .collect();
            Series::new(a.label(), Kind::Measured, a.color(), pts)
        })
        .collect();
    series.push(Series::new(
        "theory, random (independent M/G/1-PS)",
        Kind::Theory,
        Algo::Random.color(),
        log_points(largest, |n| theory::sustained_random(n, RHO)),
    ));
    series.push(Series::new(
        "theory, two choices (supermarket model)",
        Kind::Theory,
        Algo::P2c.color(),
        log_points(largest, |n| theory::sustained_two_choices(n, RHO)),
    ));
    line_chart(
        &ctx.path("max_load_sustained.svg"),
        &Chart {
            title: "Sustained load at 90% utilisation: most loaded backend".into(),
            x_label: "backends n (log scale)".into(),
            y_label: "max requests in flight on one backend (log scale)".into(),
            x_log: true,
            y_log: true,
            y_from_zero: false,
            legend: SeriesLabelPosition::UpperLeft,
            series,
        },
    )?;

    let b = |a| ball[at(largest, a)];
    let h = |a: Algo| &held[at(largest, a)];
    let random_in_flight = held[at(largest, Algo::Random)].mean_in_flight;
    let markdown = format!(
        "## 1. Max load vs number of backends\n\n\
         Random, round robin, `least_request` with two choices (P2C), full least-request \
         and `peak_ewma` (two choices), each over n equal backends, n = {ns}.\n\n\
         ### n requests into n backends\n\n\
         n requests that never complete, each counted on the backend it went to (\"n balls \
         into n bins\"); the load is the count. Mean of the largest count over many trials \
         ({tmax} at n = {smallest} down to {tmin} at n = {largest}). Full least-request is the \
         library's `LeastRequest {{ choice_count: n }}`, i.e. its full scan. The theory \
         columns are the seed documents' leading terms, `ln n / ln ln n` for one random \
         choice (Raab and Steger 1998) and `ln ln n / ln 2` for two (Azar, Broder, Karlin \
         and Upfal 1999), and Gonnet's (1981) finer expectation `Γ⁻¹(n) − 3/2` for one \
         random choice.\n\n{balls}\n![n requests into n backends](max_load_balls.svg)\n\n\
         Reading: at n = {largest} random's fullest backend holds {br:.2} requests against \
         Gonnet's {gonnet:.2}; the seed documents' `log n / log log n` ({lead:.2}) is only \
         the leading term and undershoots by a constant factor at every practical n, though \
         it has the right growth. Two choices hold {bp:.2}, close to `ln ln n / ln 2` = \
         {lead2:.2} (the `+ O(1)` of the theorem) and nearly flat in n, the exponential \
         improvement Mitzenmacher describes. `peak_ewma` ({be:.2}) is P2C here: with no \
         responses every estimate is the default, so the cost is the in-flight count. Round \
         robin and full least-request put exactly one request on every backend, the best \
         possible, but round robin only because every request is alike and full \
         least-request only because it reads every counter on every pick.\n\n\
         ### Sustained load\n\n\
         Poisson arrivals at 90% utilisation, processor-sharing backends, the work \
         distribution above. The largest in-flight count of any backend is sampled every \
         10 ms of simulated time for at least {win} mean service times ({arr} arrivals per \
         cell, more for large n). Random starts in its exact steady state (each backend an \
         independent M/G/1-PS queue: a geometric number of requests with equilibrium \
         remaining work), so it needs no warm-up; the others start empty and warm up for \
         {warm} mean service times first. Cells are `mean / \
         p99` of these per-snapshot maxima: the mean is the time-average of the maximum \
         (what the theory predicts), the p99 how high the bursts go. Full least-request is \
         an exact O(1) equivalent of the library's full scan (fewest in flight, ties at \
         random). Theory: random splits the Poisson stream into independent M/G/1-PS \
         queues, each holding k or more requests with probability 0.9^k whatever the \
         service-time distribution, so its expected maximum is exact; for two choices the \
         supermarket model's 0.9^(2^k − 1) (Vvedenskaya et al. 1996, Mitzenmacher 1996; \
         Bramson, Lu and Prabhakar 2010 for processor sharing with general service times), \
         with the queues taken as independent.\n\n{held}\n\
         ![sustained load](max_load_sustained.svg)\n\n\
         Reading: at n = {largest}, random's fullest backend holds {hr:.1} requests on \
         average (theory {hrt:.1}; mean in flight per backend {rif:.2} against 0.9 / 0.1 = \
         9), P2C {hp:.1} (supermarket model {hpt:.1}), full least-request {hf:.1}, \
         `peak_ewma` {he:.1} and round robin {hrr:.1}. Random grows like \
         `ln n / ln(1/0.9)`, about 22 more requests per tenfold n, two choices like \
         `log2 ln n`: the same exponential gap as with balls into bins, at a scale set by \
         the utilisation. Full least-request keeps the fullest backend at one to three \
         requests on average, because it sees every counter on every pick (one balancer, \
         no staleness); that is \
         the ideal P2C approximates without a global view. Round robin spreads arrivals \
         evenly but not work: long requests pile up where they land, so it sits between \
         random and P2C; its queues also fill slowly from empty (a warm-up of 3 000 instead \
         of 1 000 mean service times raised it by about 8% at n = 10 000 in a trial run), so \
         read it as a slight underestimate. `peak_ewma` scores latency x (in flight + 1), \
         and with this work distribution the latency is mostly noise: one 2 s request (the \
         cut-off, 100x the mean) sets a backend's estimate for the next several seconds \
         (10 s decay), so the cost ranks backends by their recent worst request more than \
         by their queues, and its fullest backend holds {ratio:.1}x what P2C's does. The \
         p99 columns show the same ordering for bursts.\n",
        ns = sizes
            .ns
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        balls = balls_table.markdown(),
        br = b(Algo::Random),
        gonnet = theory::random_gonnet(nf),
        lead = theory::random_leading(nf),
        bp = b(Algo::P2c),
        lead2 = theory::two_choices_leading(nf),
        be = b(Algo::PeakEwma),
        warm = sizes.warmup,
        tmax = (sizes.picks / sizes.ns[0]).clamp(10, 2_000),
        smallest = sizes.ns[0],
        tmin = (sizes.picks / largest).clamp(10, 2_000),
        win = sizes.min_window,
        arr = sizes.arrivals,
        held = held_table.markdown(),
        hr = h(Algo::Random).mean_max,
        hrt = theory::sustained_random(nf, RHO),
        rif = random_in_flight,
        hp = h(Algo::P2c).mean_max,
        hpt = theory::sustained_two_choices(nf, RHO),
        hf = h(Algo::FullLeastRequest).mean_max,
        he = h(Algo::PeakEwma).mean_max,
        hrr = h(Algo::RoundRobin).mean_max,
        ratio = h(Algo::PeakEwma).mean_max / h(Algo::P2c).mean_max,
    );
    Ok(Section {
        markdown,
        tables: vec![
            (
                "Max load, n requests into n backends (mean of trials)".into(),
                balls_table,
            ),
            (
                "Max load, sustained at 90% utilisation \
                 (mean / p99 of the per-snapshot max in flight)"
                    .into(),
                held_table,
            ),
        ],
    })
}
