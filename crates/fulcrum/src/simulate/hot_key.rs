//! Scenario 3: one key carries 30% of the requests (a celebrity user, a
//! popular object), under plain ring hash and under `consistent_bounded`
//! (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded
//! Loads", SODA 2018).
//!
//! Ten processor-sharing backends at 50% utilisation overall. Ring hash
//! sends every request for the hot key to one backend, which then gets at
//! least 30% of all requests, three times its fair share and 1.5 times what
//! it can serve, so its queue grows for as long as the key stays hot.
//! `consistent_bounded` caps every backend at `c` times the average load
//! (in flight, the request being placed included) and walks the ring past
//! full ones, so the hot key's overflow spreads to its ring neighbours; the
//! price is affinity, measured as the share of requests not served by their
//! key's own backend. Every variant sees the same requests.

use std::sync::Arc;

use fulcrum_balance::hash::request_hash;
use fulcrum_balance::{
    Balancer, DEFAULT_MAX_RING_SIZE, DEFAULT_MIN_RING_SIZE, PickContext, Policy, RingHash,
    build_with_keys,
};
use plotters::prelude::SeriesLabelPosition;

use super::Ctx;
use super::engine::{Completion, Driver, OpenLoop, PsCluster, drive};
use super::plot::{Chart, Kind, Series, line_chart};
use super::report::{Section, Table, mean, num, pct, quantile};
use super::workload::{Stream, derive, standard_work};

const N: usize = 10;
const RHO: f64 = 0.5;
const HOT: f64 = 0.3;
const SEC: f64 = 1e9;

const VARIANTS: [(&str, u32); 3] = [
    ("ring_hash", 0),
    ("consistent_bounded, c = 1.25 (default)", 125),
    ("consistent_bounded, c = 1.5", 150),
];

fn policy(balance_factor: u32) -> Policy {
    if balance_factor == 0 {
        Policy::RING_HASH
    } else {
        Policy::ConsistentBounded {
            balance_factor,
            min_ring_size: DEFAULT_MIN_RING_SIZE,
            max_ring_size: DEFAULT_MAX_RING_SIZE,
        }
    }
}

struct Run {
    lb: Arc<dyn Balancer>,
    ring: RingHash,
    keys: Stream,
    hot: u64,
    home: usize,
    counts: Vec<u64>,
    hot_total: u64,
    hot_at_home: u64,
    cold_total: u64,
    cold_away: u64,
    /// (time s, in flight on the hot key's backend), every tick.
    trace: Vec<(f64, f64)>,
    latencies: Vec<f64>,
}

impl Driver for Run {
    fn tick(&mut self, cluster: &mut PsCluster, now: f64) {
        let v = cluster.load.active[self.home] as f64;
        self.trace.push((now / SEC, v));
    }
    fn route(&mut self, cluster: &PsCluster, now: f64) -> usize {
        let is_hot = self.keys.unit() <= HOT;
        let hash = if is_hot {
            self.hot
        } else {
            self.keys.next_u64()
        };
        let ctx = PickContext::new(hash, &cluster.load)
            .with_hash(Some(hash))
            .with_now_ns(now as u64);
        let b = self.lb.pick(&ctx).unwrap_or(0);
        let own = self.ring.lookup(hash) == Some(b);
        self.counts[b] += 1;
        if is_hot {
            self.hot_total += 1;
            self.hot_at_home += u64::from(own);
        } else {
            self.cold_total += 1;
            self.cold_away += u64::from(!own);
        }
        b
    }
    fn completed(&mut self, done: &Completion) {
        self.latencies.push(done.done - done.arrived);
    }
}

struct Outcome {
    shares: Vec<f64>,
    home_share: f64,
    hot_at_home: f64,
    cold_away: f64,
    trace: Vec<(f64, f64)>,
    home_mean: f64,
    home_end: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn run_one(seed: u64, balance_factor: u32, duration: f64) -> anyhow::Result<Outcome> {
    let names: Vec<String> = (0..N).map(|i| format!("10.0.0.{i}:80")).collect();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    let weights = [1; N];
    let ring = RingHash::new(
        &weights,
        &keys,
        DEFAULT_MIN_RING_SIZE,
        DEFAULT_MAX_RING_SIZE,
    )?;
    let hot = request_hash(b"user-42");
    let mut run = Run {
        lb: build_with_keys(policy(balance_factor), &weights, &keys, 0)?,
        home: ring.lookup(hot).unwrap_or(0),
        ring,
        keys: Stream::new(derive(seed, &[50])),
        hot,
        counts: vec![0; N],
        hot_total: 0,
        hot_at_home: 0,
        cold_total: 0,
        cold_away: 0,
        trace: Vec::new(),
        latencies: Vec::new(),
    };
    let mut c = PsCluster::new(N);
    let mut arrivals = Stream::new(derive(seed, &[51]));
    let work = standard_work();
    let load = OpenLoop {
        arrivals: &mut arrivals,
        work,
        gap: work.mean() / (RHO * N as f64),
        first_tick: 0.0,
        step: SEC / 4.0,
        end: duration,
    };
    drive(&mut c, load, &mut run);
    for b in 0..N {
        run.latencies.extend(c.pending(b).map(|a| duration - a));
    }
    let total = run.counts.iter().sum::<u64>().max(1) as f64;
    let mut shares: Vec<f64> = run.counts.iter().map(|&k| k as f64 / total).collect();
    let home_share = shares[run.home];
    shares.sort_by(|a, b| b.total_cmp(a));
    let in_flight: Vec<f64> = run.trace.iter().map(|p| p.1).collect();
    Ok(Outcome {
        shares,
        home_share,
        hot_at_home: run.hot_at_home as f64 / run.hot_total.max(1) as f64,
        cold_away: run.cold_away as f64 / run.cold_total.max(1) as f64,
        home_mean: mean(&in_flight),
        home_end: c.load.active[run.home] as f64,
        trace: run.trace,
        p50_ms: quantile(&mut run.latencies, 0.5) / 1e6,
        p99_ms: quantile(&mut run.latencies, 0.99) / 1e6,
    })
}

pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let duration = if ctx.quick { 20.0 * SEC } else { 60.0 * SEC };
    let outcomes: Vec<Outcome> = ctx
        .par_map("hot key", &VARIANTS, |&(_, f)| {
            run_one(ctx.seed, f, duration)
        })
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut table = Table::new([
        "policy",
        "hot key's backend: share",
        "busiest backend: share",
        "hot key served by its own backend",
        "other keys moved off theirs",
        "in flight on hot key's backend: mean / at end",
        "latency p50 / p99",
    ]);
    for ((name, _), o) in VARIANTS.iter().zip(&outcomes) {
        table.row([
            (*name).to_string(),
            pct(o.home_share, 1),
            pct(o.shares[0], 1),
            pct(o.hot_at_home, 1),
            pct(o.cold_away, 1),
            format!("{} / {}", num(o.home_mean, 1), num(o.home_end, 0)),
            format!("{} / {} ms", num(o.p50_ms, 0), num(o.p99_ms, 0)),
        ]);
    }
    let colors = [3, 0, 2];
    let mut shares: Vec<Series> = VARIANTS
        .iter()
        .zip(&outcomes)
        .zip(colors)
        .map(|(((name, _), o), color)| {
            let pts = (0..N)
                .map(|i| (i as f64 + 1.0, 100.0 * o.shares[i]))
                .collect();
            Series::new(*name, Kind::Measured, color, pts)
        })
        .collect();
    shares.push(Series::new(
        "fair share (10%)",
        Kind::Theory,
        8,
        vec![(1.0, 10.0), (N as f64, 10.0)],
    ));
    line_chart(
        &ctx.path("hot_key_shares.svg"),
        &Chart {
            title: "One key with 30% of requests: share of each backend".into(),
            x_label: "backends, busiest first".into(),
            y_label: "share of all requests (%)".into(),
            x_log: false,
            y_log: false,
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperRight,
            series: shares,
        },
    )?;
    let traces = VARIANTS
        .iter()
        .zip(&outcomes)
        .zip(colors)
        .map(|(((name, _), o), color)| {
            // Floor of 0.5 for the log scale: an idle backend plots at 0.5.
            let pts = o.trace.iter().map(|&(t, v)| (t, v.max(0.5))).collect();
            Series::new(*name, Kind::Trace, color, pts)
        })
        .collect();
    line_chart(
        &ctx.path("hot_key_inflight.svg"),
        &Chart {
            title: "One key with 30% of requests: queue on its backend".into(),
            x_label: "simulated time (s)".into(),
            y_label: "in flight on the hot key's backend (log scale, 0 shown as 0.5)".into(),
            x_log: false,
            y_log: true,
            y_from_zero: false,
            legend: SeriesLabelPosition::UpperLeft,
            series: traces,
        },
    )?;
    let [ring, c125, c150] = [&outcomes[0], &outcomes[1], &outcomes[2]];
    let markdown = format!(
        "## 3. A hot key\n\n\
         Ten backends at 50% utilisation overall; 30% of requests carry one key, the rest \
         random keys. Ring hash (default ring) against `consistent_bounded` at its default \
         c = 1.25 and at c = 1.5, over {secs} s of simulated time. \"Own backend\" is the key's \
         backend on the plain ring; latencies include requests still in flight at the end, at \
         their age then.\n\n{table}\n\
         ![shares](hot_key_shares.svg)\n\n![queue](hot_key_inflight.svg)\n\n\
         Reading: ring hash sends the hot key's backend {rs} of all requests (the key's 30% plus \
         its own share of the rest), {rx:.1}x its fair share and more than the 20% it can serve at \
         this load, so its queue only grows: {rend} requests in flight at the end, and a p99 \
         latency of {rp99} s for everyone whose key lives there. `consistent_bounded` with \
         c = 1.25 caps it at {cs} ({cin} in flight on average) and keeps the p99 at {cp99} ms; \
         the cost is affinity: only {chome} of the hot key's requests reach its own backend, and \
         {caway} of the other keys' requests are pushed off theirs by the walk (the cap is \
         ceil(1.25 x the mean in flight), and at about one request in flight per backend that \
         is 2). c = 1.5 keeps a little more affinity ({fhome} of the hot key's requests at home, \
         {faway} of the others moved) for a little more load on the hot key's backend \
         ({fs}).\n",
        secs = duration / SEC,
        table = table.markdown(),
        rs = pct(ring.home_share, 1),
        rx = ring.home_share / 0.1,
        rend = num(ring.home_end, 0),
        rp99 = num(ring.p99_ms / 1e3, 1),
        cs = pct(c125.home_share, 1),
        cin = num(c125.home_mean, 1),
        cp99 = num(c125.p99_ms, 0),
        chome = pct(c125.hot_at_home, 1),
        caway = pct(c125.cold_away, 1),
        fhome = pct(c150.hot_at_home, 1),
        faway = pct(c150.cold_away, 1),
        fs = pct(c150.home_share, 1),
    );
    Ok(Section {
        markdown,
        tables: vec![("Hot key (30% of requests)".into(), table)],
    })
}
