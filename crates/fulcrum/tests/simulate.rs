//! `fulcrum simulate`: runs the real binary with `--quick` and checks what it
//! writes — the report, every plot it links, that the plots say what they
//! show (title, axis labels, legend), a few invariants of the numbers that
//! hold for any seed, and that the same seed gives the same output. No
//! timing assertions.

use std::path::{Path, PathBuf};
use std::process::Command;

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn simulate(out: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["simulate", "--quick", "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run fulcrum simulate");
    assert!(
        output.status.success(),
        "fulcrum simulate failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of the first markdown table after `marker`, header and
/// separator skipped, cells trimmed.
fn table_after(report: &str, marker: &str) -> Vec<Vec<String>> {
    let start = report
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the report"));
    report[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The leading number of a cell: "5.53", "4.3 / 8", "10.0%", "12 ms".
fn number(cell: &str) -> f64 {
    let end = cell
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(cell.len());
    cell[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number in {cell:?}"))
}

#[test]
fn quick_run_writes_a_report_with_readable_plots() {
    let out = out_dir("simulate-quick");
    let stdout = simulate(&out, &[]);
    assert!(stdout.contains("report.md"), "{stdout}");
    let report = read(&out.join("report.md"));

    // (file, title, x axis label, y axis label, a legend entry)
    let plots = [
        (
            "max_load_balls.svg",
            "n requests into n backends",
            "backends n (log scale)",
            "max requests on one backend",
            "theory, two choices",
        ),
        (
            "max_load_sustained.svg",
            "Sustained load at 90% utilisation",
            "backends n (log scale)",
            "max requests in flight on one backend",
            "least_request (P2C)",
        ),
        (
            "consistent_imbalance.svg",
            "Hash-space imbalance: Maglev vs ring hash",
            "backends N (log scale)",
            "max share / mean share",
            "maglev, M = 655 373",
        ),
        (
            "consistent_excess.svg",
            "Keys moved when one backend is removed",
            "backends N (log scale)",
            "keys moved / keys of the removed backend",
            "ring_hash, default (1 024 nodes)",
        ),
        (
            "consistent_resilience.svg",
            "Keys moved when backends are removed",
            "backends removed at once (% of N)",
            "keys that change backend (%)",
            "minimum: the removed backends",
        ),
        (
            "hot_key_shares.svg",
            "One key with 30% of requests: share of each backend",
            "backends, busiest first",
            "share of all requests (%)",
            "consistent_bounded, c = 1.25 (default)",
        ),
        (
            "hot_key_inflight.svg",
            "One key with 30% of requests: queue on its backend",
            "simulated time (s)",
            "in flight on the hot key",
            "ring_hash",
        ),
        (
            "slow_backend.svg",
            "Traffic to a backend that turns 10x slower",
            "simulated time (s)",
            "requests sent to it",
            "peak_ewma (P2C)",
        ),
    ];
    for (file, title, x, y, legend) in plots {
        assert!(report.contains(&format!("]({file})")), "{file} not linked");
        let svg = read(&out.join(file));
        assert!(svg.starts_with("<svg"), "{file} is not an SVG");
        assert!(
            svg.contains(&format!("<title>{title}")),
            "{file}: no <title>"
        );
        for text in [title, x, y, legend] {
            assert!(svg.contains(text), "{file} lacks {text:?}");
        }
    }

    // Balls into bins at the largest n: two choices beat one, and round
    // robin and the full scan put exactly one request everywhere.
    let balls = table_after(&report, "### n requests into n backends");
    let last = balls.last().expect("balls rows");
    let (random, rr, p2c, full) = (
        number(&last[1]),
        number(&last[4]),
        number(&last[5]),
        number(&last[7]),
    );
    assert!(p2c < random, "P2C {p2c} vs random {random}");
    assert_eq!((rr, full), (1.0, 1.0));

    // Sustained: random > P2C > full least-request (means of the max).
    let held = table_after(&report, "### Sustained load");
    let last = held.last().expect("sustained rows");
    let (random, p2c, full) = (number(&last[1]), number(&last[4]), number(&last[6]));
    assert!(random > p2c && p2c > full, "{last:?}");

    // Maglev is more even than the default ring at every N.
    for row in table_after(&report, "### Imbalance") {
        assert!(number(&row[1]) < number(&row[3]), "{row:?}");
        assert!(number(&row[1]) < 1.05, "{row:?}");
    }

    // The hot key: bounded loads take load off the hot key's backend.
    let hot = table_after(&report, "## 3. A hot key");
    assert!(number(&hot[1][1]) < number(&hot[0][1]), "{hot:?}");

    // The slow backend: round robin keeps its share, peak_ewma does not.
    let slow = table_after(&report, "## 4. A backend that turns slow");
    let share = |name: &str| {
        let row = slow.iter().find(|r| r[0] == name).expect(name);
        number(&row[2])
    };
    assert!(share("round_robin") > 8.0, "{slow:?}");
    assert!(
        share("peak_ewma (P2C)") < share("round_robin") / 2.0,
        "{slow:?}"
    );
}

#[test]
fn same_seed_same_output() {
    let run = |name: &str, seed: &str| {
        let out = out_dir(name);
        simulate(&out, &["--scenario", "slow-backend", "--seed", seed]);
        read(&out.join("slow_backend.svg"))
    };
    let a = run("simulate-seed-a", "7");
    assert_eq!(a, run("simulate-seed-b", "7"));
    assert_ne!(a, run("simulate-seed-c", "8"));
}
