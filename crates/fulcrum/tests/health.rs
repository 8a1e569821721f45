//! Active health checks: ejection when a backend stops, return when it comes
//! back, panic mode when too few pass (fail open), 503 when none is healthy
//! and panic mode is off, HTTP status ranges and TCP checks.

mod support;

use support::*;

/// Slow start is off: these tests count exact round-robin shares after an
/// endpoint returns (slow start has its own tests in failure.rs).
fn config(check: &str, backends: &[&Backend]) -> String {
    let cluster = format!(
        "policy = \"round_robin\"\n{}\nslow_start = {{ enabled = false }}\n[clusters.health_check]\ninterval = \"100ms\"\njitter = \"0ms\"\ntimeout = \"500ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n{check}",
        endpoints_line(backends)
    );
    app_config(2, "", &cluster)
}

async fn healthy_flags(proxy: &Proxy) -> Vec<bool> {
    clusters(proxy).await["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["healthy"].as_bool().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_backend_is_ejected_and_returns_after_restart() {
    let mut a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let proxy = Proxy::start(&config("type = \"http\"\npath = \"/healthz\"", &[&a, &b]));
    let client = h1_client();

    a.stop();
    eventually("a ejected", async || {
        healthy_flags(&proxy).await == [false, true]
    })
    .await;
    let before = b.hits();
    for _ in 0..20 {
        let r = get(&client, &proxy.url("public", "/")).await;
        assert_eq!(
            (r.status.as_u16(), r.body.as_str()),
            (200, "b"),
            "an ejected endpoint gets no traffic"
        );
    }
    assert!(b.hits() >= before + 20);

    a.restart();
    eventually("a healthy again", async || {
        healthy_flags(&proxy).await == [true, true]
    })
    .await;
    let mut answered_by_a = 0;
    for _ in 0..20 {
        if get(&client, &proxy.url("public", "/")).await.body == "a" {
            answered_by_a += 1;
        }
    }
    assert_eq!(answered_by_a, 10, "round robin over both again");

    let metrics = get(&client, &proxy.admin_url("/metrics")).await.body;
    let ep = a.addr.to_string();
    for line in [
        format!(
            r#"fulcrum_health_transitions_total{{cluster="app",endpoint="{ep}",result="unhealthy"}} 1"#
        ),
        format!(
            r#"fulcrum_health_transitions_total{{cluster="app",endpoint="{ep}",result="healthy"}} 1"#
        ),
        format!(r#"fulcrum_endpoint_healthy{{cluster="app",endpoint="{ep}"}} 1"#),
    ] {
        assert!(metrics.contains(&line), "missing {line}\n{metrics}");
    }
    assert!(
        proxy.logs().contains("endpoint failed its health checks"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn all_unhealthy_is_503_with_reason_when_panic_mode_is_off() {
    let mut a = Backend::start("a", Behavior::Echo);
    let proxy = Proxy::start(&config("type = \"tcp\"", &[&a]).replace(
        "policy = \"round_robin\"",
        "policy = \"round_robin\"\npanic_threshold = 0",
    ));
    a.stop();
    eventually("a ejected", async || healthy_flags(&proxy).await == [false]).await;
    let r = get(&h1_client(), &proxy.url("public", "/")).await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.header("x-fulcrum-reason"), Some("no_healthy_upstream"));
    assert!(
        r.body.contains("no healthy endpoint in cluster app"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_failing_everywhere_puts_the_cluster_in_panic_and_traffic_still_flows() {
    let a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let c = Backend::start("c", Behavior::Echo);
    // A deep check that fails on every endpoint at once (a shared
    // dependency is down, say): the backends answer /status/503 with 503,
    // outside the expected 200-299, yet serve ordinary requests fine.
    let proxy = Proxy::start(&config(
        "path = \"/status/503\"\nexpected_statuses = [\"200-299\"]",
        &[&a, &b, &c],
    ));
    eventually("all ejected", async || {
        healthy_flags(&proxy).await == [false, false, false]
    })
    .await;
    let metrics = get(&h1_client(), &proxy.admin_url("/metrics")).await.body;
    assert!(metrics.contains(r#"result="failure"}"#), "{metrics}");
    // Below panic_threshold (default 50 %): fail open, to all of them.
    let client = h1_client();
    for _ in 0..9 {
        let r = get(&client, &proxy.url("public", "/")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Probes count as hits too: count the requests for "/".
    let served = |b: &Backend| {
        b.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == "/")
            .count()
    };
    assert_eq!(
        (served(&a), served(&b), served(&c)),
        (3, 3, 3),
        "round robin over all three"
    );
    let state = clusters(&proxy).await;
    assert_eq!(state["clusters"][0]["panic"], true, "{state}");
    assert_eq!(
        proxy_metric(&proxy, "fulcrum_cluster_panic{cluster=\"app\"}").await,
        1.0
    );
    assert_eq!(
        proxy_metric(
            &proxy,
            "fulcrum_cluster_panic_entries_total{cluster=\"app\"}"
        )
        .await,
        1.0
    );
    assert!(
        proxy.logs().contains("cluster in panic mode"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_check_passes_for_a_server_that_accepts() {
    let a = Backend::start("a", Behavior::BlackHole);
    let proxy = Proxy::start(&config("type = \"tcp\"", &[&a]));
    eventually("checks ran", async || a.hits() >= 3).await;
    assert_eq!(healthy_flags(&proxy).await, [true]);
}
