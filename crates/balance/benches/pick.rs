//! Cost of one `pick()` per policy and endpoint count: the balancer is on the
//! hot path of every request. Also the cost of building a Maglev table, which
//! happens off the hot path but on every membership or health change.
//! `cargo bench -p fulcrum-balance`.

use std::hint::black_box;
use std::sync::atomic::AtomicU64;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fulcrum_balance::{
    LoadView, Maglev, PeakEwma, PeakEwmaConfig, PickContext, Policy, build_with_keys,
    rng::splitmix64,
};

const NOW_NS: u64 = 5_000_000_000;

struct Load {
    active: Vec<AtomicU64>,
    ewma: Vec<PeakEwma>,
}

impl LoadView for Load {
    fn active_requests(&self, index: usize) -> u64 {
        self.active[index].load(std::sync::atomic::Ordering::Relaxed)
    }

    fn peak_ewma(&self, index: usize) -> Option<&PeakEwma> {
        self.ewma.get(index)
    }
}

fn pick(c: &mut Criterion) {
    let policies = [
        Policy::RoundRobin,
        Policy::WeightedRoundRobin,
        Policy::Random,
        Policy::LeastRequest { choice_count: 2 },
        Policy::RING_HASH,
        Policy::MAGLEV,
        Policy::CONSISTENT_BOUNDED,
        Policy::Rendezvous,
        Policy::PEAK_EWMA,
    ];
    let mut group = c.benchmark_group("pick");
    for n in [3usize, 100, 10_000] {
        // Mixed weights so the weighted paths are exercised.
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 4) as u32).collect();
        let keys: Vec<String> = (0..n)
            .map(|i| format!("10.{}.{}.{}:8080", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let load = Load {
            active: (0..n).map(|i| AtomicU64::new((i % 7) as u64)).collect(),
            ewma: (0..n)
                .map(|i| {
                    let e = PeakEwma::new(PeakEwmaConfig::DEFAULT, 0);
                    e.observe(NOW_NS - 1_000_000_000, 1_000_000 * (1 + (i % 13) as u64));
                    e
                })
                .collect(),
        };
        for policy in policies {
            let Ok(balancer) = build_with_keys(policy, &weights, &keys, 0) else {
                panic!("{policy:?} did not build");
            };
            let mut random = 1u64;
            group.bench_with_input(BenchmarkId::new(policy.name(), n), &n, |b, _| {
                b.iter(|| {
                    random = splitmix64(random);
                    // Hashing policies hash `random` as if it were a request's key.
                    let ctx = PickContext::new(random, &load)
                        .with_hash(Some(random))
                        .with_now_ns(NOW_NS);
                    black_box(balancer.pick(black_box(&ctx)))
                })
            });
        }
    }
    group.finish();
}

fn maglev_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("maglev_build");
    group.sample_size(10);
    let n = 1_000;
    let keys: Vec<String> = (0..n)
        .map(|i| format!("10.0.{}.{}:8080", i >> 8, i & 255))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let equal = vec![1u32; n];
    let mixed: Vec<u32> = (0..n).map(|i| 1 + (i % 4) as u32).collect();
    for table_size in [65_537u64, 655_373] {
        for (name, weights) in [("equal", &equal), ("weighted", &mixed)] {
            let id = BenchmarkId::new(format!("n1000_{name}"), table_size);
            group.bench_with_input(id, &table_size, |b, &m| {
                b.iter(|| black_box(Maglev::new(weights, &keys, m).map(|t| t.table().len())))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick, maglev_build);
criterion_main!(benches);
