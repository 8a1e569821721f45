//! Scenario 4: one of ten backends turns ten times slower halfway through
//! the run (a noisy neighbour, a GC-bound JVM, a degraded disk), and how much
//! traffic each algorithm keeps sending it.
//!
//! Ten processor-sharing backends at 50% utilisation; at half time backend 0
//! serves at a tenth of its speed, for the requests it already holds too.
//! Its capacity is then 0.1 of a normal backend's, so it stays stable only
//! while it gets less than 0.1 / (0.5 x 10) = 2% of the requests; at its
//! fair 10% it receives five times what it can serve and its queue grows
//! without bound. Every algorithm gets the same arrivals and work. Full
//! least-request is the library's `LeastRequest { choice_count: 10 }` (its
//! full scan), `peak_ewma` the library's with default settings (two choices,
//! 10 s decay), fed every response's latency.

use plotters::prelude::SeriesLabelPosition;

use super::Ctx;
use super::algos::{Algo, Picker};
use super::engine::{Completion, Driver, OpenLoop, PsCluster, drive};
use super::plot::{Chart, Kind, Series, line_chart};
use super::report::{Section, Table, num, pct, quantile};
use super::workload::{Stream, derive, standard_work};

const N: usize = 10;
const RHO: f64 = 0.5;
const SLOWDOWN: f64 = 10.0;
const SEC: f64 = 1e9;

struct Run {
    picker: Picker,
    picks: Stream,
    half: f64,
    window: f64,
    /// Per window: (requests, requests to backend 0).
    windows: Vec<(u64, u64)>,
    /// Latencies (ns) of requests that arrived in the second half.
    latencies: Vec<f64>,
}

impl Driver for Run {
    fn tick(&mut self, cluster: &mut PsCluster, now: f64) {
        if now == self.half {
            cluster.set_speed(now, 0, 1.0 / SLOWDOWN);
        }
    }
    fn route(&mut self, cluster: &PsCluster, now: f64) -> usize {
        let b = self.picker.pick(cluster, self.picks.next_u64(), now);
        let w = (now / self.window) as usize;
        if self.windows.len() <= w {
            self.windows.resize(w + 1, (0, 0));
        }
        self.windows[w].0 += 1;
        self.windows[w].1 += u64::from(b == 0);
        b
    }
    fn completed(&mut self, done: &Completion) {
        if done.arrived >= self.half {
            self.latencies.push(done.done - done.arrived);
        }
    }
}

struct Outcome {
    first: f64,
    second: f64,
    /// (time s, share to backend 0) per window.
    trace: Vec<(f64, f64)>,
    /// Lowest and highest share per window in the first half.
    first_range: (f64, f64),
    p50_ms: f64,
    p99_ms: f64,
    /// In flight on backend 0 at the end.
    stuck: usize,
}

fn run_one(seed: u64, algo: Algo, duration: f64, window: f64) -> Outcome {
    let mut run = Run {
        picker: Picker::new(algo, N, derive(seed, &[40, algo.tag()]), false),
        picks: Stream::new(derive(seed, &[42, algo.tag()])),
        half: duration / 2.0,
        window,
        windows: Vec::new(),
        latencies: Vec::new(),
    };
    let mut c = PsCluster::new(N);
    let mut arrivals = Stream::new(derive(seed, &[41]));
    let work = standard_work();
    let load = OpenLoop {
        arrivals: &mut arrivals,
        work,
        gap: work.mean() / (RHO * N as f64),
        first_tick: duration / 2.0,
        step: duration,
        end: duration,
    };
    drive(&mut c, load, &mut run);
    // Requests still in flight count with their age so far: a lower bound.
    for b in 0..N {
        run.latencies.extend(c.pending(b).map(|a| duration - a));
    }
    let halves = run.windows.len() / 2;
    let share = |w: &[(u64, u64)]| {
        let (all, slow) = w.iter().fold((0, 0), |(a, s), x| (a + x.0, s + x.1));
        slow as f64 / all.max(1) as f64
    };
    let first_range = run.windows[..halves]
        .iter()
        .map(|&(all, slow)| slow as f64 / all.max(1) as f64)
        .fold((f64::MAX, 0.0f64), |(lo, hi), s| (lo.min(s), hi.max(s)));
    Outcome {
        first_range,
        first: share(&run.windows[..halves]),
        second: share(&run.windows[halves..]),
        trace: run
            .windows
            .iter()
            .enumerate()
            .map(|(i, &(all, slow))| {
                (
                    (i as f64 + 0.5) * window / SEC,
                    slow as f64 / all.max(1) as f64,
                )
            })
            .collect(),
        p50_ms: quantile(&mut run.latencies, 0.5) / 1e6,
        p99_ms: quantile(&mut run.latencies, 0.99) / 1e6,
        stuck: c.pending(0).count(),
    }
}

pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let (duration, window) = if ctx.quick {
        (30.0 * SEC, 1.0 * SEC)
    } else {
        (120.0 * SEC, 2.0 * SEC)
    };
    let outcomes = ctx.par_map("slow backend", &Algo::ALL, |&a| {
        run_one(ctx.seed, a, duration, window)
    });
    let mut table = Table::new([
        "algorithm",
        "share, first half",
        "share, second half",
        "p50 latency, 2nd half",
        "p99 latency, 2nd half",
        "in flight on slow at end",
    ]);
    for (a, o) in Algo::ALL.iter().zip(&outcomes) {
        table.row([
            a.label().to_string(),
            pct(o.first, 1),
            pct(o.second, 1),
            format!("{} ms", num(o.p50_ms, 0)),
            format!("{} ms", num(o.p99_ms, 0)),
            o.stuck.to_string(),
        ]);
    }
    let mut series: Vec<Series> = Algo::ALL
        .iter()
        .zip(&outcomes)
        .map(|(a, o)| {
            let pts = o.trace.iter().map(|&(t, s)| (t, 100.0 * s)).collect();
            Series::new(a.label(), Kind::Trace, a.color(), pts)
        })
        .collect();
    let end = duration / SEC;
    series.push(Series::new(
        "fair share (10%)",
        Kind::Theory,
        8,
        vec![(0.0, 10.0), (end, 10.0)],
    ));
    series.push(Series::new(
        "most the slow backend can serve (2%)",
        Kind::Theory,
        1,
        vec![(end / 2.0, 2.0), (end, 2.0)],
    ));
    line_chart(
        &ctx.path("slow_backend.svg"),
        &Chart {
            title: format!(
                "Traffic to a backend that turns 10x slower at t = {} s",
                end / 2.0
            ),
            x_label: "simulated time (s)".into(),
            y_label: format!("requests sent to it (% per {} s)", window / SEC),
            x_log: false,
            y_log: false,
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperRight,
            series,
        },
    )?;
    let of = |a: Algo| &outcomes[Algo::ALL.iter().position(|&x| x == a).unwrap_or(0)];
    let markdown = format!(
        "## 4. A backend that turns slow mid-run\n\n\
         Ten backends at 50% utilisation (same work distribution as above); at t = {half} s \
         backend 0 starts serving at a tenth of its speed, including what it already holds. It \
         can then serve at most 2% of the requests (0.1 / (0.5 x 10)); at more, its queue and \
         its latencies grow without bound. Shares are of all requests routed in each half; \
         latencies are of requests arriving in the second half, those still in flight at the \
         end counted at their age then (a lower bound). Full least-request is the library's \
         `LeastRequest {{ choice_count: 10 }}`; `peak_ewma` has its defaults (two choices, 10 s \
         decay).\n\n{table}\n![slow backend](slow_backend.svg)\n\n\
         Reading: round robin keeps sending the slow backend its {rr} and random {rd}, five \
         times what it can serve, so it ends the run with {rr_stuck} requests stuck on it and \
         the p99 latency of all requests reaches {rr_p99} s (still climbing). Least request \
         cuts it to about what it can serve, P2C to {p2c} and the full scan to {full}: the \
         slow backend's in-flight count climbs until it loses nearly every comparison, which \
         keeps its queue bounded ({p2c_stuck} in flight at the end for P2C) but sends it \
         requests for as long as its count is not above its peers'. `peak_ewma` sees the \
         first slow response and drops it to {ewma}, probing it again as its estimate decays \
         (10 s). The first half shows its cost: with heavy-tailed work, one long request \
         sets a healthy backend's estimate for seconds, so in the first half \
         `peak_ewma`'s share of backend 0 ranges from {elo} to {ehi} per {w} s window, \
         against {plo} to {phi} for P2C.\n",
        half = end / 2.0,
        table = table.markdown(),
        rr = pct(of(Algo::RoundRobin).second, 1),
        rd = pct(of(Algo::Random).second, 1),
        rr_stuck = of(Algo::RoundRobin).stuck,
        p2c_stuck = of(Algo::P2c).stuck,
        elo = pct(of(Algo::PeakEwma).first_range.0, 0),
        ehi = pct(of(Algo::PeakEwma).first_range.1, 0),
        plo = pct(of(Algo::P2c).first_range.0, 0),
        phi = pct(of(Algo::P2c).first_range.1, 0),
        w = window / SEC,
        rr_p99 = num(of(Algo::RoundRobin).p99_ms / 1e3, 1),
        p2c = pct(of(Algo::P2c).second, 1),
        full = pct(of(Algo::FullLeastRequest).second, 1),
        ewma = pct(of(Algo::PeakEwma).second, 1),
    );
    Ok(Section {
        markdown,
        tables: vec![(
            "Slow backend: share of requests it gets, and latency".into(),
            table,
        )],
    })
}
