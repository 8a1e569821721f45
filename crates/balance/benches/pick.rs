//! Cost of one `pick()` per policy and endpoint count: the balancer is on the
//! hot path of every request. `cargo bench -p fulcrum-balance`.

use std::hint::black_box;
use std::sync::atomic::AtomicU64;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fulcrum_balance::{LoadView, PickContext, Policy, build, rng::splitmix64};

struct Load(Vec<AtomicU64>);

impl LoadView for Load {
    fn active_requests(&self, index: usize) -> u64 {
        self.0[index].load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn pick(c: &mut Criterion) {
    let policies = [
        Policy::RoundRobin,
        Policy::WeightedRoundRobin,
        Policy::Random,
        Policy::LeastRequest { choice_count: 2 },
    ];
    let mut group = c.benchmark_group("pick");
    for n in [3usize, 100, 10_000] {
        // Mixed weights so the weighted paths are exercised.
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 4) as u32).collect();
        let load = Load((0..n).map(|i| AtomicU64::new((i % 7) as u64)).collect());
        for policy in policies {
            let balancer = build(policy, &weights);
            let mut random = 1u64;
            group.bench_with_input(BenchmarkId::new(policy.name(), n), &n, |b, _| {
                b.iter(|| {
                    random = splitmix64(random);
                    let ctx = PickContext {
                        random,
                        hash: None,
                        load: &load,
                    };
                    black_box(balancer.pick(black_box(&ctx)))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
