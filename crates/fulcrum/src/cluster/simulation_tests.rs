//! A seeded simulation of the cluster manager, in the spirit of sozu's
//! state-machine tests: endpoints fail, recover, flap and get drained at
//! random over many steps of a fake clock, fed to the manager as active
//! check results and the counts workers would keep; after every step the
//! invariants that make failure handling safe are checked. A failing seed
//! is printed, so the run can be replayed.

use std::net::SocketAddr;
use std::time::Duration;

use super::manager::{Event, Manager};
use super::outlier::Sample;
use super::slow_start;
use crate::config::ClusterConfig;

/// One cluster of `n` endpoints with an active check, from real config
/// text (so every default is the real one) plus `extra` lines.
fn cluster(n: u16, extra: &str) -> ClusterConfig {
    let endpoints: Vec<String> = (1..=n)
        .map(|p| format!("{{ address = \"127.0.0.1:{p}\", weight = {} }}", 1 + p % 3))
        .collect();
    let src = format!(
        "[[listeners]]\nname = \"l\"\naddress = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"web\"\n\
         [[clusters]]\nname = \"web\"\npolicy = \"least_request\"\nendpoints = [{}]\n\
         health_check = {{ type = \"tcp\", healthy_threshold = 2, unhealthy_threshold = 3 }}\n{extra}\n",
        endpoints.join(", ")
    );
    crate::config::parse("sim.toml", &src)
        .unwrap()
        .clusters
        .remove(0)
}

/// What the simulated world knows about an endpoint (the manager does not).
#[derive(Clone, Copy, Default)]
struct Truth {
    /// Fails its checks and its requests.
    down: bool,
    /// Answers checks but fails requests (a deep dependency broke).
    failing_traffic: bool,
    sample: Sample,
}

fn run(seed: u64, steps: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = rng.u16(1..=20);
    let extra = match rng.u8(0..3) {
        0 => "",
        1 => "panic_threshold = 0",
        _ => "[clusters.outlier_detection]\nmax_ejection_percent = 30\nbase_ejection_time = \"5s\"",
    };
    let config = cluster(n, extra);
    let od = config.outlier_detection.clone().unwrap();
    let addrs: Vec<SocketAddr> = config.endpoints.iter().map(|e| e.address).collect();
    let mut now = crate::clock::now();
    let mut m = Manager::new();
    m.configure(now, std::slice::from_ref(&config));
    let mut truth = vec![Truth::default(); n as usize];
    for step in 0..steps {
        now += Duration::from_millis(rng.u64(0..3000));
        for (i, t) in truth.iter_mut().enumerate() {
            match rng.u8(0..100) {
                0..=2 => t.down = !t.down,
                3 => t.failing_traffic = !t.failing_traffic,
                4 => {
                    let event = if rng.bool() {
                        Event::Drain {
                            cluster: "web".into(),
                            address: addrs[i],
                        }
                    } else {
                        Event::Undrain {
                            cluster: "web".into(),
                            address: addrs[i],
                        }
                    };
                    m.handle(now, &event).unwrap();
                }
                _ => {}
            }
            if rng.u8(0..4) == 0 {
                let check = Event::CheckResult {
                    cluster: "web".into(),
                    address: addrs[i],
                    success: !t.down,
                };
                m.handle(now, &check).unwrap();
            }
            // Traffic since the last step: a few requests, all failing
            // when the endpoint is down or failing its traffic.
            for _ in 0..rng.u8(0..8) {
                t.sample.requests += 1;
                if t.down || t.failing_traffic {
                    t.sample.failures += 1;
                    t.sample.consecutive_5xx += 1;
                    t.sample.consecutive_gateway += u32::from(t.down);
                } else {
                    t.sample.consecutive_5xx = 0;
                    t.sample.consecutive_gateway = 0;
                }
            }
        }
        let samples: Vec<Sample> = truth.iter().map(|t| t.sample).collect();
        for (address, transition) in m.evaluate_outliers(now, "web", &samples) {
            if matches!(transition, super::manager::Transition::Ejected { .. }) {
                // The control side resets the streaks of what it ejects.
                let i = addrs.iter().position(|a| *a == address).unwrap();
                truth[i].sample.consecutive_5xx = 0;
                truth[i].sample.consecutive_gateway = 0;
            }
        }
        let _ = m.ramping(now);
        check_invariants(&m, &config, &od, now, seed, step);
    }
}

fn check_invariants(
    m: &Manager,
    config: &ClusterConfig,
    od: &crate::config::OutlierDetectionConfig,
    now: std::time::Instant,
    seed: u64,
    step: usize,
) {
    let at = format!("seed {seed} step {step}");
    let statuses = m.statuses("web");
    let n = statuses.len();
    // Never more than max_ejection_percent ejected, but one always may be.
    let ejected = statuses.iter().filter(|s| s.ineligible.ejected).count();
    let allowed = (od.max_ejection_percent as usize * n / 100).max(1);
    assert!(
        ejected <= allowed,
        "{at}: {ejected} of {n} ejected, {allowed} allowed"
    );
    // An ejection never outlasts max_ejection_time.
    for s in &statuses {
        if let Some(until) = s.ejected_until {
            assert!(
                until.saturating_duration_since(now) <= od.max_ejection_time,
                "{at}: ejected past max_ejection_time"
            );
        }
    }
    // Panic exactly when the eligible share of undrained endpoints is
    // below the threshold.
    let undrained = statuses.iter().filter(|s| !s.ineligible.draining).count();
    let eligible = statuses.iter().filter(|s| s.is_eligible()).count();
    let expected = config.panic_threshold > 0
        && undrained > 0
        && eligible * 100 < config.panic_threshold as usize * undrained;
    let panic = m.in_panic("web");
    assert_eq!(
        panic, expected,
        "{at}: {eligible} eligible of {undrained} undrained"
    );
    // A drained endpoint is never routable, panic or not; in panic every
    // undrained one is.
    for s in &statuses {
        if s.ineligible.draining {
            assert!(
                !s.is_routable(panic),
                "{at}: a drained endpoint is routable"
            );
        } else if panic {
            assert!(s.is_routable(true), "{at}: panic leaves an endpoint out");
        }
    }
    // Weights stay within what slow start can make of the configured ones.
    for (s, e) in statuses.iter().zip(&config.endpoints) {
        assert!(
            s.weight >= 1 && s.weight <= e.weight * slow_start::SCALE,
            "{at}: weight {} for configured {}",
            s.weight,
            e.weight
        );
    }
}

#[test]
fn random_failures_and_recoveries_keep_the_invariants() {
    // Fixed seeds, so a failure is replayable; FULCRUM_SIM_SEED adds one.
    let mut seeds: Vec<u64> = (1..=40).collect();
    if let Some(seed) = std::env::var("FULCRUM_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        seeds.push(seed);
    }
    for seed in seeds {
        run(seed, 500);
    }
}

/// A breaker under random concurrent traffic: never more probes in flight
/// than `half_open_probes`, and nothing admitted while it is open.
#[test]
fn a_breaker_never_admits_more_probes_than_allowed() {
    use super::breaker::{Admit, Breaker, Change};
    use crate::config::EndpointBreakerConfig;
    for seed in 1..=40u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let config = EndpointBreakerConfig {
            consecutive_failures: rng.u32(1..5),
            open_interval: Duration::from_millis(rng.u64(1..200)),
            half_open_probes: rng.u32(1..4),
        };
        let breaker = Breaker::default();
        let mut now: u64 = 1_000_000_000;
        // Requests in flight: what the breaker said to each.
        let mut in_flight: Vec<Admit> = Vec::new();
        let mut opened_at: Option<u64> = None;
        let failing_rate = rng.u8(0..100);
        for step in 0..2000 {
            now += rng.u64(0..20_000_000);
            if rng.bool() || in_flight.is_empty() {
                let admit = breaker.admit(&config, now);
                if let Some(at) = opened_at {
                    let interval = config.open_interval.as_nanos() as u64;
                    if now < at + interval {
                        assert_eq!(admit, Admit::Refused, "seed {seed} step {step}: open");
                    }
                }
                if admit != Admit::Refused {
                    in_flight.push(admit);
                }
            } else {
                let i = rng.usize(..in_flight.len());
                let admit = in_flight.swap_remove(i);
                let success = rng.u8(0..100) >= failing_rate;
                let change = breaker.record(&config, admit, success, now);
                // Opened from closed, or opened again by a failed probe.
                if change == Some(Change::Opened) || (admit == Admit::Probe && !success) {
                    opened_at = Some(now);
                }
                if !breaker.is_open() {
                    opened_at = None;
                }
            }
            let probes = in_flight.iter().filter(|a| **a == Admit::Probe).count();
            assert!(
                probes <= config.half_open_probes as usize,
                "seed {seed} step {step}: {probes} probes in flight"
            );
        }
    }
}
