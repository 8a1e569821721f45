//! `fulcrum simulate`: the balancing algorithms of `fulcrum_balance` run
//! in-process against synthetic workloads (no network, simulated time), with
//! the results written as a markdown report and SVG plots.
//!
//! Why: the unit tests pin what each algorithm does per pick; this shows what
//! that adds up to — how uneven the load gets as the cluster grows, how many
//! keys move when backends come and go, what a hot key or a slow backend does
//! — next to the theory the design relies on (Mitzenmacher's two choices, the
//! Maglev paper). Scenarios, one file each:
//!
//! 1. `max_load.rs`: max load vs number of backends (balls into bins, and
//!    sustained Poisson load with heavy-tailed service times);
//! 2. `consistent.rs`: Maglev vs ring hash, imbalance and key movement;
//! 3. `hot_key.rs`: one key with 30% of requests, ring hash vs
//!    `consistent_bounded`;
//! 4. `slow_backend.rs`: a backend that turns 10x slower mid-run.
//!
//! Every random number comes from SplitMix64 streams derived from `--seed`
//! and time is simulated (`engine.rs`), so the same seed gives the same
//! report, byte for byte, however many threads run the cells.

mod algos;
mod consistent;
mod consistent_report;
mod engine;
mod hot_key;
mod max_load;
mod plot;
mod report;
mod slow_backend;
mod theory;
mod workload;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use report::Section;

/// The seed unless `--seed` says otherwise.
pub const DEFAULT_SEED: u64 = 20_160_316;

/// Command-line options of `fulcrum simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Folder for report.md and the SVG plots (created if missing).
    #[arg(long, value_name = "DIR", default_value = "simulation")]
    pub out: PathBuf,
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// Smaller sizes and shorter runs (seconds), for tests and a first look.
    #[arg(long)]
    pub quick: bool,
    /// Seed of every random stream: the same seed gives the same report.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// No progress bar and no tables on stdout, only where the report went.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Max load vs number of backends.
    MaxLoad,
    /// Maglev vs ring hash: imbalance and keys moved.
    Consistent,
    /// One key with 30% of requests.
    HotKey,
    /// A backend that turns slow mid-run.
    SlowBackend,
    /// All of the above.
    All,
}

/// What the scenarios share.
pub(crate) struct Ctx {
    pub(crate) seed: u64,
    pub(crate) quick: bool,
    pub(crate) out: PathBuf,
    threads: usize,
    bar: ProgressBar,
}

impl Ctx {
    /// Runs `f` over `items` on all cores and returns the results in the
    /// order of `items`; the bar counts finished items under `label`. Items
    /// are taken in order, so put the longest first.
    pub(crate) fn par_map<T: Sync, R: Send>(
        &self,
        label: &str,
        items: &[T],
        f: impl Fn(&T) -> R + Sync,
    ) -> Vec<R> {
        self.bar.set_position(0);
        self.bar.set_length(items.len() as u64);
        self.bar.set_message(label.to_string());
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..self.threads.clamp(1, items.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let r = f(item);
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                        self.bar.inc(1);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .map(|r| r.expect("every item was run"))
            .collect()
    }

    /// Path of an output file.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// Runs the chosen scenarios, writes `report.md` and the plots into
/// `options.out`, prints the tables.
pub fn run(options: &Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let show = !options.quiet && std::io::stdout().is_terminal();
    let bar = if show {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let ctx = Ctx {
        seed: options.seed,
        quick: options.quick,
        out: options.out.clone(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        bar,
    };
    let all = options.scenario == Scenario::All;
    let mut sections: Vec<Section> = Vec::new();
    if all || options.scenario == Scenario::MaxLoad {
        sections.push(max_load::run(&ctx)?);
    }
    if all || options.scenario == Scenario::Consistent {
        sections.push(consistent::run(&ctx)?);
    }
    if all || options.scenario == Scenario::HotKey {
        sections.push(hot_key::run(&ctx)?);
    }
    if all || options.scenario == Scenario::SlowBackend {
        sections.push(slow_backend::run(&ctx)?);
    }
    ctx.bar.finish_and_clear();
    let report = options.out.join("report.md");
    std::fs::write(&report, document(options, &sections))
        .with_context(|| format!("writing {}", report.display()))?;
    let mut stdout = std::io::stdout().lock();
    if !options.quiet {
        for s in &sections {
            for (caption, table) in &s.tables {
                writeln!(stdout, "{caption}\n\n{}", table.markdown())?;
            }
        }
    }
    writeln!(stdout, "wrote {}", report.display())?;
    Ok(())
}

/// The whole report.
fn document(options: &Options, sections: &[Section]) -> String {
    let mut command = format!("fulcrum simulate --out {}", display_dir(&options.out));
    if options.scenario != Scenario::All {
        command.push_str(&format!(" --scenario {:?}", options.scenario).to_lowercase());
    }
    if options.quick {
        command.push_str(" --quick");
    }
    if options.seed != DEFAULT_SEED {
        command.push_str(&format!(" --seed {}", options.seed));
    }
    let mut doc = format!(
        "# Balancing algorithms in simulation\n\n\
         Generated by `{command}` (seed {seed}); the same command and seed give the same \
         report. Everything runs in-process against the real `fulcrum_balance` balancers, \
         in simulated time: no network, no clock. Backends serve requests by processor \
         sharing (each of k requests in flight gets 1/k of the backend); requests arrive \
         as a Poisson stream and need Pareto-distributed work (shape 1.5, scaled to a mean \
         of 20 ms) cut off at 2 s, 100 times the mean, which brings the mean to 19.2 ms: \
         heavy-tailed, with most requests short and a few very long. (Without the cut-off \
         the variance is infinite, and a cluster started empty does not reach its steady \
         state in any affordable run.) Arrival rates are set from the actual mean, so the \
         stated utilisations are exact. Each \
         `peak_ewma` backend has its own `PeakEwma` estimate, fed the latency of every \
         completed request as the proxy feeds it. Code: `crates/fulcrum/src/simulate/`.\n\n\
         Contents:\n\n",
        seed = options.seed
    );
    for s in sections {
        if let Some(title) = s
            .markdown
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("## "))
        {
            let anchor: String = title
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            doc.push_str(&format!("- [{title}](#{anchor})\n"));
        }
    }
    for s in sections {
        doc.push('\n');
        doc.push_str(&s.markdown);
    }
    doc
}

fn display_dir(dir: &Path) -> String {
    dir.display().to_string()
}
