use super::*;
use crate::test_util::{ctx, picks};

const ALL: [Policy; 10] = [
    Policy::RoundRobin,
    Policy::WeightedRoundRobin,
    Policy::Random,
    Policy::LeastRequest {
        choice_count: DEFAULT_CHOICE_COUNT,
    },
    Policy::LeastRequest { choice_count: 3 },
    Policy::RING_HASH,
    Policy::MAGLEV,
    Policy::CONSISTENT_BOUNDED,
    Policy::Rendezvous,
    Policy::PEAK_EWMA,
];

const HASHING: [Policy; 4] = [
    Policy::RING_HASH,
    Policy::MAGLEV,
    Policy::CONSISTENT_BOUNDED,
    Policy::Rendezvous,
];

#[test]
fn empty_set_picks_none() {
    for policy in ALL {
        let lb = build(policy, &[]);
        for random in [0, 1, u64::MAX] {
            assert_eq!(lb.pick(&ctx(random)), None, "{policy:?}");
        }
    }
}

#[test]
fn single_endpoint_always_zero() {
    for policy in ALL {
        for weight in [1, 7, u32::MAX] {
            let lb = build(policy, &[weight]);
            assert!(picks(&*lb, 100).iter().all(|&i| i == 0), "{policy:?}");
        }
    }
}

#[test]
fn picks_stay_in_range() {
    let weights = [3, 1, 4, 1, 5, 9, 2, 6];
    for policy in ALL {
        let lb = build(policy, &weights);
        assert!(picks(&*lb, 1_000).iter().all(|&i| i < weights.len()));
    }
}

#[test]
fn zero_weight_is_treated_as_one() {
    for policy in [Policy::RoundRobin, Policy::WeightedRoundRobin] {
        let lb = build(policy, &[0, 0, 2]);
        assert_eq!(picks(&*lb, 4), picks(&*build(policy, &[1, 1, 2]), 4));
    }
    let got = crate::test_util::counts(&*build(Policy::Random, &[0, 1]), 2, 10_000);
    assert!(got[0].abs_diff(5_000) < 500, "{got:?}");
}

#[test]
fn names_and_policies() {
    let names: Vec<_> = ALL.iter().map(Policy::name).collect();
    assert_eq!(
        names,
        [
            "round_robin",
            "weighted_round_robin",
            "random",
            "least_request",
            "least_request",
            "ring_hash",
            "maglev",
            "consistent_bounded",
            "rendezvous",
            "peak_ewma",
        ]
    );
    for policy in ALL {
        assert_eq!(build(policy, &[1, 2]).policy(), policy);
    }
    assert_eq!(
        build(Policy::LeastRequest { choice_count: 0 }, &[1]).policy(),
        Policy::LeastRequest { choice_count: 2 }
    );
}

#[test]
fn atomic_counters_are_a_load_view() {
    let active: Vec<AtomicU64> = [3, 0, 1].map(AtomicU64::new).into();
    let load: &dyn LoadView = &active;
    assert_eq!(load.active_requests(0), 3);
    let lb = build(Policy::LeastRequest { choice_count: 2 }, &[1, 1, 1]);
    let pick = lb.pick(&PickContext::new(42, load));
    assert_eq!(pick, Some(1));
}

#[test]
fn seeded_start_rotates_the_unseeded_sequence() {
    // Period = sum / gcd of the weights (len for equal weights).
    let cases: [(&[u32], usize); 5] = [
        (&[1, 1, 1], 3),
        (&[7, 7, 7, 7, 7], 5),
        (&[5, 1, 1], 7),
        (&[4, 2, 1], 7),
        (&[6, 2, 4, 10], 11),
    ];
    for policy in [Policy::RoundRobin, Policy::WeightedRoundRobin] {
        for (weights, period) in cases {
            let unseeded = picks(&*build(policy, weights), 2 * period);
            let mut starts = std::collections::BTreeSet::new();
            for s in crate::test_util::Seq::new(11)
                .take(200)
                .chain([0, u64::MAX])
            {
                let k = crate::rng::uniform(s, period);
                starts.insert(k);
                let seeded = picks(&*build_seeded(policy, weights, s), period);
                // The first pick is the unseeded pick at position k, and
                // the rest follows on from there.
                assert_eq!(seeded[0], unseeded[k], "{policy:?} {weights:?} seed {s}");
                assert_eq!(seeded, unseeded[k..k + period], "{policy:?} {weights:?}");
            }
            // Seeds really spread the start over the whole period.
            assert_eq!(starts.len(), period, "{policy:?} {weights:?}");
        }
    }
}

#[test]
fn seed_zero_is_build() {
    for policy in [Policy::RoundRobin, Policy::WeightedRoundRobin] {
        for weights in [&[1, 1, 1][..], &[5, 1, 1]] {
            assert_eq!(
                picks(&*build_seeded(policy, weights, 0), 20),
                picks(&*build(policy, weights), 20)
            );
        }
    }
}

#[test]
fn seeded_live_fallback_matches_table() {
    use crate::round_robin::RoundRobin;
    use crate::weighted_round_robin::WeightedRoundRobin;
    for weights in [&[5, 1, 1][..], &[4, 2, 1], &[3, 3, 2, 6], &[2, 2]] {
        let n = 2 * weights.iter().sum::<u32>() as usize;
        for s in crate::test_util::Seq::new(12).take(20) {
            assert_eq!(
                picks(&RoundRobin::new_live(weights, s), n),
                picks(&RoundRobin::with_seed(weights, s), n),
                "{weights:?}"
            );
            assert_eq!(
                picks(&WeightedRoundRobin::new_live(weights, s), n),
                picks(&WeightedRoundRobin::with_seed(weights, s), n),
                "{weights:?}"
            );
        }
    }
}

#[test]
fn seed_is_ignored_by_stateless_policies() {
    let stateless = [
        Policy::Random,
        Policy::LeastRequest { choice_count: 2 },
        Policy::PEAK_EWMA,
    ];
    for policy in stateless.into_iter().chain(HASHING) {
        for weights in [&[3, 1][..], &[1, 1, 1, 1, 1, 1]] {
            assert_eq!(
                picks(&*build_seeded(policy, weights, 12_345), 50),
                picks(&*build(policy, weights), 50)
            );
        }
    }
}

#[test]
fn balancers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Balancer>();
    assert_send_sync::<Arc<dyn Balancer>>();
}

fn with_hash(random: u64, hash: u64) -> PickContext<'static> {
    ctx(random).with_hash(Some(hash))
}

#[test]
fn pick_context_builders() {
    let load = [1u64, 2];
    let c = PickContext::new(5, &load);
    assert_eq!((c.random, c.hash, c.now_ns), (5, None, 0));
    assert_eq!(c.load.active_requests(1), 2);
    let c = c.with_hash(Some(9)).with_now_ns(77);
    assert_eq!((c.random, c.hash, c.now_ns), (5, Some(9), 77));
    // The plain struct literal still works for callers that set every field.
    let c = PickContext {
        random: 1,
        hash: None,
        load: &load,
        now_ns: 0,
    };
    assert_eq!(c.random, 1);
}

#[test]
fn load_view_defaults() {
    let load = [3u64, 4, 5];
    assert_eq!(load.total_active_requests(3), 12);
    assert_eq!(load.total_active_requests(2), 7);
    assert!(load.peak_ewma(0).is_none());
    let saturated = [u64::MAX, 1];
    assert_eq!(saturated.total_active_requests(2), u64::MAX);
}

#[test]
fn hashing_policies_follow_the_hash() {
    let keys = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
    for policy in HASHING {
        let lb = build_with_keys(policy, &[1, 2, 1, 3], &keys, 0).unwrap();
        assert_eq!(lb.policy(), policy);
        for h in crate::test_util::Seq::new(5).take(1_000) {
            // Same hash, same endpoint, whatever `random` says.
            let first = lb.pick(&with_hash(1, h));
            assert_eq!(lb.pick(&with_hash(u64::MAX, h)), first, "{policy:?}");
        }
        // Without a hash: random, but still spread over everyone.
        let got = crate::test_util::counts(&*lb, 4, 20_000);
        assert!(got.iter().all(|&c| c > 1_000), "{policy:?} {got:?}");
    }
}

#[test]
fn hashing_policies_do_not_depend_on_listing_order_or_process() {
    let keys = ["b:1", "a:1", "d:1", "c:1"];
    let weights = [2, 1, 1, 3];
    // The same endpoints listed in another order.
    let perm = [3, 0, 2, 1];
    let keys2: Vec<&str> = perm.iter().map(|&i| keys[i]).collect();
    let weights2: Vec<u32> = perm.iter().map(|&i| weights[i]).collect();
    for policy in HASHING {
        let a = build_with_keys(policy, &weights, &keys, 1).unwrap();
        let b = build_with_keys(policy, &weights2, &keys2, 2).unwrap();
        for h in crate::test_util::Seq::new(6).take(5_000) {
            let pa = a.pick(&with_hash(0, h)).map(|i| keys[i]);
            let pb = b.pick(&with_hash(0, h)).map(|i| keys2[i]);
            assert_eq!(pa, pb, "{policy:?}");
        }
    }
}

#[test]
fn build_uses_indices_as_keys_for_hashing_policies() {
    let keys = ["0", "1", "2"];
    for policy in HASHING {
        let a = build(policy, &[1, 1, 2]);
        let b = build_with_keys(policy, &[1, 1, 2], &keys, 0).unwrap();
        for h in crate::test_util::Seq::new(7).take(2_000) {
            assert_eq!(a.pick(&with_hash(0, h)), b.pick(&with_hash(0, h)));
        }
    }
}

#[test]
fn build_with_keys_rejects_bad_parameters_and_keys() {
    let keys = ["a", "b"];
    let err = |p: Policy| build_with_keys(p, &[1, 1], &keys, 0).unwrap_err();
    assert_eq!(
        err(Policy::Maglev { table_size: 1000 }),
        BuildError::MaglevTableSizeNotPrime { table_size: 1000 }
    );
    let msg = err(Policy::Maglev { table_size: 1000 }).to_string();
    assert_eq!(
        msg,
        "maglev table_size 1000 is not a prime number: Maglev needs a prime table size so \
         that every endpoint's permutation visits every slot (nearest primes: 997 and 1009); \
         the default is 65537"
    );
    assert_eq!(
        err(Policy::Maglev {
            table_size: 10_000_019
        }),
        BuildError::MaglevTableSizeTooLarge {
            table_size: 10_000_019
        }
    );
    let bad_ring = Policy::RingHash {
        min_ring_size: 2048,
        max_ring_size: 1024,
    };
    assert_eq!(
        err(bad_ring),
        BuildError::RingSize {
            min_ring_size: 2048,
            max_ring_size: 1024
        }
    );
    let bad_factor = Policy::ConsistentBounded {
        balance_factor: 99,
        min_ring_size: 1024,
        max_ring_size: 1024,
    };
    assert_eq!(
        err(bad_factor),
        BuildError::BalanceFactor { balance_factor: 99 }
    );
    assert!(err(bad_factor).to_string().contains("below 100"));
    for policy in HASHING {
        assert_eq!(
            build_with_keys(policy, &[1, 1, 1], &keys, 0).unwrap_err(),
            BuildError::KeyCount {
                keys: 2,
                weights: 3
            }
        );
        assert_eq!(
            build_with_keys(policy, &[1, 1], &["x", "x"], 0).unwrap_err(),
            BuildError::DuplicateKey { key: "x".into() }
        );
    }
    // Policies that do not hash ignore the keys.
    let lb = build_with_keys(Policy::RoundRobin, &[1, 1], &[], 0).unwrap();
    assert_eq!(lb.policy(), Policy::RoundRobin);
    // Valid defaults pass.
    for policy in ALL {
        assert_eq!(policy.validate(), Ok(()), "{policy:?}");
    }
}

#[test]
fn build_corrects_what_build_with_keys_rejects() {
    assert_eq!(
        build(Policy::Maglev { table_size: 1000 }, &[1]).policy(),
        Policy::Maglev { table_size: 1009 }
    );
    assert_eq!(
        build(
            Policy::Maglev {
                table_size: u64::MAX
            },
            &[1]
        )
        .policy(),
        Policy::Maglev {
            table_size: MAX_MAGLEV_TABLE_SIZE
        }
    );
    assert_eq!(
        build(
            Policy::RingHash {
                min_ring_size: 0,
                max_ring_size: u64::MAX
            },
            &[1]
        )
        .policy(),
        Policy::RingHash {
            min_ring_size: 1,
            max_ring_size: MAX_RING_SIZE
        }
    );
    assert_eq!(
        build(
            Policy::ConsistentBounded {
                balance_factor: 10,
                min_ring_size: 4096,
                max_ring_size: 2048
            },
            &[1]
        )
        .policy(),
        Policy::ConsistentBounded {
            balance_factor: 100,
            min_ring_size: 2048,
            max_ring_size: 2048
        }
    );
    assert_eq!(
        build(
            Policy::PeakEwma {
                choice_count: 1,
                config: PeakEwmaConfig::DEFAULT
            },
            &[1]
        )
        .policy(),
        Policy::PEAK_EWMA
    );
}

#[test]
fn hashing_flags() {
    let hashing: Vec<_> = ALL.iter().filter(|p| p.is_hashing()).collect();
    assert_eq!(hashing, HASHING.iter().collect::<Vec<_>>());
}
