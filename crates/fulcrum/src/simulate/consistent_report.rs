//! Scenario 2's tables, plots and reading (the measurements are in
//! `consistent.rs`), with the comparison against the Maglev paper (Eisenbud
//! et al., NSDI 2016, section 5.3).

use plotters::prelude::SeriesLabelPosition;

use super::Ctx;
use super::consistent::{Moved, Results, VARIANTS, Variant};
use super::plot::{Chart, Kind, Series, line_chart};
use super::report::{Section, Table, num, pct};

/// Figure 11 of the paper, N = 1 000: how much backends must be
/// overprovisioned (max / mean - 1) for (M = 65 537, M = 655 373).
const PAPER_KARGER: (f64, f64) = (0.297, 0.103);
const PAPER_RENDEZVOUS: (f64, f64) = (0.495, 0.123);

/// `k` of `n` as a percentage, "10%" or "0.5%".
fn share_of(k: usize, n: usize) -> String {
    let p = 100.0 * k as f64 / n as f64;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn movement_table(r: &Results<'_>, pick: fn(&super::consistent::Cell) -> &Vec<Moved>) -> Table {
    let mut t = Table::new(
        ["N", "backends", "minimum"]
            .map(String::from)
            .into_iter()
            .chain(VARIANTS.map(Variant::label)),
    );
    for &n in r.ns {
        for (i, first) in pick(r.get(n, VARIANTS[0])).iter().enumerate() {
            let (k, minimal) = (first.k, first.minimal);
            let mut row = vec![
                n.to_string(),
                format!("{k} ({})", share_of(k, n)),
                pct(minimal, 2),
            ];
            for v in VARIANTS {
                let m = &pick(r.get(n, v))[i];
                row.push(format!(
                    "{} ({}x)",
                    pct(m.moved, 2),
                    num(m.moved / m.minimal.max(1e-12), 2)
                ));
            }
            t.row(row);
        }
    }
    t
}

fn charts(ctx: &Ctx, r: &Results<'_>) -> anyhow::Result<()> {
    let per_n = |f: &dyn Fn(&super::consistent::Cell) -> f64| -> Vec<Series> {
        VARIANTS
            .iter()
            .map(|&v| {
                let pts = r.ns.iter().map(|&n| (n as f64, f(r.get(n, v)))).collect();
                Series::new(v.label(), Kind::Measured, v.color(), pts)
            })
            .collect()
    };
    line_chart(
        &ctx.path("consistent_imbalance.svg"),
        &Chart {
            title: "Hash-space imbalance: Maglev vs ring hash".into(),
            x_label: "backends N (log scale)".into(),
            y_label: "max share / mean share (log scale)".into(),
            x_log: true,
            y_log: true,
            y_from_zero: false,
            legend: SeriesLabelPosition::UpperLeft,
            series: per_n(&|c| c.imbalance),
        },
    )?;
    line_chart(
        &ctx.path("consistent_excess.svg"),
        &Chart {
            title: "Keys moved when one backend is removed, vs the minimum".into(),
            x_label: "backends N (log scale)".into(),
            y_label: "keys moved / keys of the removed backend".into(),
            x_log: true,
            y_log: false,
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
            series: per_n(&|c| c.removed[0].moved / c.removed[0].minimal.max(1e-12)),
        },
    )?;
    let n = r.largest();
    let ks: Vec<usize> = r.get(n, VARIANTS[0]).removed.iter().map(|m| m.k).collect();
    let mut series: Vec<Series> = VARIANTS
        .iter()
        .map(|&v| {
            let pts = r
                .get(n, v)
                .removed
                .iter()
                .map(|m| (100.0 * m.k as f64 / n as f64, 100.0 * m.moved))
                .collect();
            Series::new(v.label(), Kind::Measured, v.color(), pts)
        })
        .collect();
    series.push(Series::new(
        "minimum: the removed backends' share",
        Kind::Theory,
        7,
        ks.iter()
            .map(|&k| (100.0 * k as f64 / n as f64, 100.0 * k as f64 / n as f64))
            .collect(),
    ));
    line_chart(
        &ctx.path("consistent_resilience.svg"),
        &Chart {
            title: format!("Keys moved when backends are removed, N = {n}"),
            x_label: "backends removed at once (% of N)".into(),
            y_label: "keys that change backend (%)".into(),
            x_log: false,
            y_log: false,
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
            series,
        },
    )
}

pub(crate) fn section(ctx: &Ctx, r: &Results<'_>) -> anyhow::Result<Section> {
    let mut imb = Table::new(std::iter::once("N".to_string()).chain(VARIANTS.map(Variant::label)));
    for &n in r.ns {
        imb.row(
            std::iter::once(n.to_string()).chain(VARIANTS.map(|v| num(r.get(n, v).imbalance, 3))),
        );
    }
    let removed = movement_table(r, |c| &c.removed);
    let added = movement_table(r, |c| &c.added);
    charts(ctx, r)?;

    let n = r.largest();
    let over = |x: f64| pct(x - 1.0, 1);
    let ours = |v| r.get(n, v).imbalance;
    let mut paper = Table::new([
        "N = ".to_string() + &n.to_string(),
        "M = 65 537".into(),
        "M = 655 373".into(),
    ]);
    paper.row([
        "Maglev, paper (Fig. 11)".to_string(),
        "almost perfect".into(),
        "almost perfect".into(),
    ]);
    paper.row([
        "Maglev, ours (exact slot shares)".to_string(),
        over(ours(Variant::Maglev(65_537))),
        over(ours(Variant::Maglev(655_373))),
    ]);
    paper.row([
        "Karger ring, paper (Fig. 11)".to_string(),
        pct(PAPER_KARGER.0, 1),
        pct(PAPER_KARGER.1, 1),
    ]);
    paper.row([
        "Rendezvous, paper (Fig. 11)".to_string(),
        pct(PAPER_RENDEZVOUS.0, 1),
        pct(PAPER_RENDEZVOUS.1, 1),
    ]);
    paper.row([
        "M entries each sent to a uniformly random backend (pure sampling noise)".to_string(),
        over(r.paper[0].2),
        over(r.paper[1].2),
    ]);
    paper.row([
        "ring, 1 000 nodes/backend, M entries filled through it (paper's method)".to_string(),
        over(r.paper[0].0),
        over(r.paper[1].0),
    ]);
    paper.row([
        "the same ring, exact arc shares".to_string(),
        over(r.paper[0].1),
        over(r.paper[1].1),
    ]);
    paper.row([
        "ring_hash with M nodes in all, exact arc shares".to_string(),
        over(ours(Variant::Ring(65_537))),
        over(ours(Variant::Ring(655_373))),
    ]);

    let one = |v: Variant| &r.get(n, v).removed[0];
    let tenth = |v: Variant| r.get(n, v).removed.last().expect("changes");
    let k10 = tenth(Variant::Maglev(65_537)).k;
    let ring_add = r
        .get(n, Variant::Ring(1_024))
        .added
        .last()
        .expect("changes");
    let markdown = format!(
        "## 2. Maglev vs ring hash\n\n\
         Both policies hash request keys onto a precomputed structure: Maglev a lookup table of \
         prime size M (default 65 537), the ring Envoy-style virtual nodes (default: about 1 024 \
         in all, so N = 1 000 backends get 2 each unless `ring_min_size` is raised). \
         Endpoints are named `10.0.{{i / 256}}.{{i % 256}}:80` as the server would name \
         them.\n\n\
         ### Imbalance\n\n\
         Max share / mean share of the hash space, computed exactly (slots / M for Maglev, arc \
         lengths for the ring): 1.000 is perfectly even, 1.5 means the busiest backend gets \
         50% more than its fair share.\n\n{imb}\n\
         ![imbalance](consistent_imbalance.svg)\n\n\
         ### Keys moved\n\n\
         The fraction of the hash space (that is, of uniformly random request keys) that \
         changes backend, computed exactly slot by slot and arc by arc: sampled keys would \
         drown the minimum, 0.1% at N = 1 000, in noise. Backends are removed at random (the \
         same ones for every variant) or added with new names. Cells: the fraction moved, and \
         in brackets that as a multiple of the minimum (the removed backends' share, or the \
         added ones') — 1.00x is perfectly consistent.\n\n\
         Removing backends:\n\n{removed}\n\
         Adding backends:\n\n{added}\n\
         ![keys moved vs N](consistent_excess.svg)\n\n\
         ![keys moved vs backends removed](consistent_resilience.svg)\n\n\
         ### Against the Maglev paper\n\n\
         The paper (section 5.3) builds tables for N = 1 000 backends with M = 65 537 and \
         655 373 and reports how far the fullest backend is over the mean (Figure 11), and the \
         share of table entries that change when k backends fail at once (Figure 12, given only \
         as a plot). Overprovisioning needed (max / mean − 1), N = {n}:\n\n{paper}\n\
         Reading:\n\n\
         * Maglev matches the paper: {m1} and {m2} over the mean, because every backend gets \
         floor or ceil of M / N slots. The paper's rule of thumb, M > 100 N for shares \
         within about 1% (section 3.4), is conservative: M = 65 537 is only 65 N at \
         N = 1 000.\n\
         * The paper's Rendezvous figures are what filling an M-entry table through any \
         random-looking hash gives: at N = 1 000 and M = 65 537 each backend owns about 65 \
         entries, and binomial noise alone puts the fullest about 3.2 standard deviations \
         (1 / √65 ≈ 12%) over the mean. Sending M entries each to a uniformly random backend \
         gives {un1} and {un2} here (paper's Rendezvous: 49.5% and 12.3%). Replaying the \
         paper's Karger setup (1 000 virtual nodes per backend, M hashed entries) gives \
         {pm1} and {pm2}, not its 29.7% and 10.3%: those are below the sampling noise of any \
         table filled by hashing, so the paper must have filled its Karger table in a way \
         its text does not describe; we could not reproduce them. The hashing itself is \
         more even than either figure suggests: that ring's exact arc shares are only {pe1} \
         over. A ring with as many nodes as the table has slots (about 65 and 655 per \
         backend) is {rm1} and {rm2} over: a ring's spread comes from its nodes per \
         backend, roughly 3 / √(nodes) for the fullest of 1 000.\n\
         * Envoy's default ring (about 1 024 nodes in all) is fine for a handful of \
         backends and poor for many: {rd} x the mean share at N = {n}, with \
         {nodes_n} nodes each. Raise `ring_min_size` with N (ring memory is 12 bytes per \
         node) or use Maglev (4 bytes per slot).\n\
         * Disruption, where the paper has only a plot (Figure 12): removing one of {n} \
         backends moves {o1} of keys with M = 65 537 ({o1x}x the minimum) and {o2} with \
         655 373 ({o2x}x); removing {k10} at once moves {t1} and {t2} against a minimum of \
         {tmin}. As in Figure 12, the share that moves grows with the number of backends \
         removed and is smaller for the larger table: when a backend's slots are handed \
         out again, the other backends' turns in the table-filling shift too, more so when \
         M / N is small.{at100}\n\
         * The ring moves only the changed backends' keys as long as the number of nodes \
         per backend stays the same, but Envoy's sizing gives every backend \
         ceil(`ring_min_size` / N) nodes, and when a change of N changes that number every \
         backend's nodes are re-placed and keys move between survivors too. With \
         `ring_min_size` 65 537 or 655 373 that happens at most N here (about 1.8 to 2.5x \
         the minimum moves); with the default 1 024 only where ceil(1 024 / N) steps: N = 10 \
         and 20 here, and adding {kadd} of {n} backends ({nodes_n} nodes each before, \
         {nodes_after} after) moves {radd} of all keys. Maglev has no such cliff. Rendezvous \
         moves exactly the minimum (see `consistency.rs`) at O(N) per pick.\n",
        imb = imb.markdown(),
        removed = removed.markdown(),
        added = added.markdown(),
        paper = paper.markdown(),
        m1 = over(ours(Variant::Maglev(65_537))),
        m2 = over(ours(Variant::Maglev(655_373))),
        pm1 = over(r.paper[0].0),
        pm2 = over(r.paper[1].0),
        pe1 = over(r.paper[0].1),
        rm1 = over(ours(Variant::Ring(65_537))),
        rm2 = over(ours(Variant::Ring(655_373))),
        rd = num(ours(Variant::Ring(1_024)), 2),
        at100 = if r.ns.contains(&100) {
            let m = &r.get(100, Variant::Maglev(65_537)).removed[0];
            format!(
                " At N = 100 (M = 65 537) one removal moves {}x the minimum, where \
                 `crates/balance/tests/consistency.rs` measures 1.57x with sampled keys.",
                num(m.moved / m.minimal, 2)
            )
        } else {
            String::new()
        },
        un1 = over(r.paper[0].2),
        un2 = over(r.paper[1].2),
        nodes_n = 1_024usize.div_ceil(n),
        kadd = ring_add.k,
        nodes_after = 1_024usize.div_ceil(n + ring_add.k),
        radd = pct(ring_add.moved, 1),
        o1 = pct(one(Variant::Maglev(65_537)).moved, 2),
        o1x = num(
            one(Variant::Maglev(65_537)).moved / one(Variant::Maglev(65_537)).minimal,
            2
        ),
        o2 = pct(one(Variant::Maglev(655_373)).moved, 2),
        o2x = num(
            one(Variant::Maglev(655_373)).moved / one(Variant::Maglev(655_373)).minimal,
            2
        ),
        t1 = pct(tenth(Variant::Maglev(65_537)).moved, 1),
        t2 = pct(tenth(Variant::Maglev(655_373)).moved, 1),
        tmin = pct(tenth(Variant::Maglev(65_537)).minimal, 1),
    );
    Ok(Section {
        markdown,
        tables: vec![
            ("Hash-space imbalance (max share / mean share)".into(), imb),
            (
                "Keys moved when backends are removed (x minimum)".into(),
                removed,
            ),
            (
                "Keys moved when backends are added (x minimum)".into(),
                added,
            ),
            (
                "Against the Maglev paper, Figure 11 (overprovisioning)".into(),
                paper,
            ),
        ],
    })
}
