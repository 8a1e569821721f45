//! Each balancing policy's distribution, measured through the real proxy.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;

fn config(policy: &str, weights: &[u32], backends: &[&Backend]) -> String {
    let endpoints: Vec<String> = backends
        .iter()
        .zip(weights)
        .map(|(b, w)| format!("{{ address = \"{}\", weight = {w} }}", b.addr))
        .collect();
    let cluster = format!(
        "policy = \"{policy}\"\nendpoints = [{}]",
        endpoints.join(", ")
    );
    app_config(2, "", &cluster)
}

/// Sends `n` sequential requests and returns the answering backends in order.
async fn sequence(proxy: &Proxy, n: usize) -> Vec<String> {
    let client = h1_client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = get(&client, &proxy.url("public", "/")).await;
        assert_eq!(r.status.as_u16(), 200);
        out.push(r.body);
    }
    out
}

fn counts(seq: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for s in seq {
        *m.entry(s.as_str()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_is_exact_across_workers() {
    let bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
        Backend::start("c", Behavior::Echo),
    ];
    let proxy = Proxy::start(&config(
        "round_robin",
        &[1, 1, 1],
        &[&bs[0], &bs[1], &bs[2]],
    ));
    // Several clients so connections land on both workers; the sequence is global.
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.extend(sequence(&proxy, 100).await);
    }
    let c = counts(&seqs);
    assert_eq!((c["a"], c["b"], c["c"]), (100, 100, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_round_robin_is_smooth_and_exact() {
    let bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
        Backend::start("c", Behavior::Echo),
    ];
    let proxy = Proxy::start(&config(
        "weighted_round_robin",
        &[5, 1, 1],
        &[&bs[0], &bs[1], &bs[2]],
    ));
    let seq = sequence(&proxy, 70).await;
    let c = counts(&seq);
    assert_eq!((c["a"], c["b"], c["c"]), (50, 10, 10));
    // NGINX's smooth WRR: one period is a rotation of a a b a c a a, never five a's in a row.
    let period: Vec<&str> = seq[..7].iter().map(String::as_str).collect();
    let expected = ["a", "a", "b", "a", "c", "a", "a"];
    let is_rotation = (0..7).any(|k| (0..7).all(|i| period[i] == expected[(i + k) % 7]));
    assert!(is_rotation, "not a smooth WRR period: {period:?}");
    let longest_a_run = seq.split(|s| s != "a").map(<[String]>::len).max().unwrap();
    assert!(
        longest_a_run <= 4,
        "burst of {longest_a_run} to the heavy endpoint"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_honours_weights() {
    let bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
    ];
    let proxy = Proxy::start(&config("round_robin", &[3, 1], &[&bs[0], &bs[1]]));
    let seq = sequence(&proxy, 80).await;
    let c = counts(&seq);
    assert_eq!((c["a"], c["b"]), (60, 20));
}

#[tokio::test(flavor = "multi_thread")]
async fn random_spreads_by_weight() {
    let bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
    ];
    let proxy = Proxy::start(&config("random", &[3, 1], &[&bs[0], &bs[1]]));
    let seq = sequence(&proxy, 800).await;
    let c = counts(&seq);
    // Expected 600/200; the bounds are > 8 standard deviations wide.
    assert!((500..=700).contains(&c["a"]), "{c:?}");
    assert_eq!(c["a"] + c["b"], 800);
}

#[tokio::test(flavor = "multi_thread")]
async fn least_request_sends_less_to_a_backend_that_holds_requests() {
    let slow = Backend::start("slow", Behavior::Delay(Duration::from_millis(100)));
    let fast1 = Backend::start("fast1", Behavior::Echo);
    let fast2 = Backend::start("fast2", Behavior::Echo);
    for (policy, expect_fewer) in [
        ("least_request", true),
        ("peak_ewma", true),
        ("round_robin", false),
    ] {
        let proxy = Proxy::start(&config(policy, &[1, 1, 1], &[&slow, &fast1, &fast2]));
        let before = (slow.hits(), fast1.hits() + fast2.hits());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let url = proxy.url("public", "/");
            tasks.push(tokio::spawn(async move {
                let client = h1_client();
                for _ in 0..15 {
                    assert_eq!(get(&client, &url).await.status.as_u16(), 200);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let slow_hits = slow.hits() - before.0;
        let fast_hits = fast1.hits() + fast2.hits() - before.1;
        assert_eq!(slow_hits + fast_hits, 120);
        if expect_fewer {
            // Round robin gives the slow backend a third (40); least request far less.
            assert!(
                slow_hits * 4 < fast_hits / 2,
                "{policy}: slow got {slow_hits}, fast pair {fast_hits}"
            );
        } else {
            assert_eq!(slow_hits, 40, "round robin ignores load");
        }
    }
}
