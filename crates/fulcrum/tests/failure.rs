//! Failure handling through the real binary: outlier detection ejects an
//! endpoint that fails real traffic (HTTP 5xx, L4 connect failures), never
//! more than `max_ejection_percent` of a cluster, and the endpoint returns
//! by itself or when an active check passes.

mod support;

use support::l4::{TcpBackend, TcpMode, closed_port, l4_config, read_line};
use support::*;

/// Round robin over `backends` with outlier detection settings `outlier`
/// (TOML lines for `[clusters.outlier_detection]`, or none at all).
fn config(backends: &[&Backend], outlier: Option<&str>, extra: &str) -> String {
    let mut cluster = format!(
        "policy = \"round_robin\"\n{}\n{extra}\n",
        endpoints_line(backends)
    );
    if let Some(lines) = outlier {
        cluster.push_str(&format!("[clusters.outlier_detection]\n{lines}\n"));
    }
    app_config(2, "", &cluster)
}

/// Each endpoint's `ineligible_reasons`, in config order.
async fn reasons(proxy: &Proxy) -> Vec<Vec<String>> {
    clusters(proxy).await["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["ineligible_reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn ejected(reasons: &[Vec<String>]) -> Vec<bool> {
    reasons
        .iter()
        .map(|r| r.iter().any(|r| r == "ejected"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn consecutive_5xx_eject_an_endpoint_until_its_time_is_over() {
    let a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let bad = Backend::start(
        "bad",
        Behavior::Fail {
            status: 500,
            percent: 100,
        },
    );
    // The defaults but a short ejection, so the test sees it end.
    let proxy = Proxy::start(&config(
        &[&a, &b, &bad],
        Some("base_ejection_time = \"1s\""),
        "",
    ));
    let client = h1_client();
    eventually("bad ejected", async || {
        get(&client, &proxy.url("public", "/")).await;
        ejected(&reasons(&proxy).await) == [false, false, true]
    })
    .await;
    let hits = bad.hits();
    assert!(hits >= 5, "ejected after 5 consecutive 5xx, got {hits}");
    for _ in 0..30 {
        let r = get(&client, &proxy.url("public", "/")).await;
        if ejected(&reasons(&proxy).await)[2] {
            assert_eq!(r.status, 200, "no request reaches an ejected endpoint");
        }
    }
    let ep = bad.addr.to_string();
    let metrics = get(&client, &proxy.admin_url("/metrics")).await.body;
    assert!(
        metrics.contains(
            r#"fulcrum_outlier_ejections_total{cluster="app",detector="consecutive_5xx"} "#
        ),
        "{metrics}"
    );
    assert!(
        proxy
            .logs()
            .contains("outlier detection ejected the endpoint")
    );
    // It returns by itself (1 s, then 2 s for a second ejection...).
    eventually("bad returns", async || {
        let endpoints = clusters(&proxy).await;
        endpoints["clusters"][0]["endpoints"][2]["eligible"] == true
    })
    .await;
    assert!(
        proxy
            .logs()
            .contains("ejected endpoint returns to rotation")
    );
    assert!(
        get(&client, &proxy.admin_url("/metrics"))
            .await
            .body
            .contains(&format!(
                r#"fulcrum_endpoint_ejected{{cluster="app",endpoint="{ep}"}}"#
            ))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_more_than_max_ejection_percent_is_ejected() {
    let good = Backend::start("good", Behavior::Echo);
    let bad1 = Backend::start(
        "bad1",
        Behavior::Fail {
            status: 503,
            percent: 100,
        },
    );
    let bad2 = Backend::start(
        "bad2",
        Behavior::Fail {
            status: 503,
            percent: 100,
        },
    );
    // 10 % of 3 is less than one endpoint; one may always go, the second may not.
    let proxy = Proxy::start(&config(&[&good, &bad1, &bad2], None, ""));
    let client = h1_client();
    eventually("one bad endpoint ejected, the other an overflow", async || {
        get(&client, &proxy.url("public", "/")).await;
        proxy_metric(
            &proxy,
            r#"fulcrum_outlier_ejections_overflow_total{cluster="app",detector="consecutive_gateway_failure"}"#,
        )
        .await
            >= 1.0
    })
    .await;
    let flags = ejected(&reasons(&proxy).await);
    assert_eq!(
        flags.iter().filter(|e| **e).count(),
        1,
        "exactly one of three ejected: {flags:?}"
    );
    assert!(!flags[0], "the good endpoint stays");
    assert!(proxy.logs().contains("max_ejection_percent"));
}

#[tokio::test(flavor = "multi_thread")]
async fn turned_off_an_endpoint_keeps_failing_requests() {
    let good = Backend::start("good", Behavior::Echo);
    let bad = Backend::start(
        "bad",
        Behavior::Fail {
            status: 500,
            percent: 100,
        },
    );
    let proxy = Proxy::start(&config(&[&good, &bad], Some("enabled = false"), ""));
    let client = h1_client();
    let mut failed = 0;
    for _ in 0..40 {
        if get(&client, &proxy.url("public", "/")).await.status == 500 {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 20,
        "round robin keeps sending half to the bad endpoint"
    );
    assert_eq!(ejected(&reasons(&proxy).await), [false, false]);
    let config: serde_json::Value =
        serde_json::from_str(&get(&client, &proxy.admin_url("/config")).await.body).unwrap();
    assert_eq!(
        config["config"]["clusters"][0]["outlier_detection"],
        serde_json::Value::Null,
        "{config}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_active_check_returns_an_ejected_endpoint_early() {
    let good = Backend::start("good", Behavior::Echo);
    // Fails every request, but accepts TCP connections: a TCP check passes.
    let bad = Backend::start(
        "bad",
        Behavior::Fail {
            status: 500,
            percent: 100,
        },
    );
    let proxy = Proxy::start(&config(
        &[&good, &bad],
        Some("base_ejection_time = \"5m\""),
        "health_check = { type = \"tcp\", interval = \"200ms\" }",
    ));
    let client = h1_client();
    eventually("bad ejected", async || {
        get(&client, &proxy.url("public", "/")).await;
        ejected(&reasons(&proxy).await) == [false, true]
    })
    .await;
    // Not the 5 minutes: the next passing check brings it back.
    eventually("bad back after a passing check", async || {
        ejected(&reasons(&proxy).await) == [false, false]
    })
    .await;
}

#[test]
fn l4_connect_failures_eject_an_endpoint() {
    let good = TcpBackend::start("good", TcpMode::Echo);
    let dead = closed_port();
    let proxy = Proxy::start(&l4_config(
        "tcp",
        "tcp",
        "app",
        "",
        "policy = \"round_robin\"",
        &[good.addr, dead.addr],
    ));
    let listener = proxy.listener("tcp");
    support::l4::wait_until("dead endpoint ejected", || {
        // Each flow lands on `good`, after a redispatch when it tried `dead` first.
        let mut s = std::net::TcpStream::connect(listener).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        assert_eq!(read_line(&mut s), "good");
        support::l4::admin_get(proxy.admin, "/clusters").contains("\"ejected\"")
    });
    let metrics = support::l4::admin_get(proxy.admin, "/metrics");
    assert!(
        metrics.contains(
            r#"fulcrum_outlier_ejections_total{cluster="app",detector="consecutive_gateway_failure"} 1"#
        ),
        "{metrics}"
    );
}

/// `app` over `endpoints` with outlier detection off (so a failing endpoint
/// keeps its turn and every request exercises the retry path), plus `extra`.
fn retry_config(endpoints: &[std::net::SocketAddr], extra: &str, route: &str) -> String {
    let list: Vec<String> = endpoints
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    app_config(
        2,
        route,
        &format!(
            "policy = \"round_robin\"\nendpoints = [{}]\n{extra}\n[clusters.outlier_detection]\nenabled = false\n",
            list.join(", ")
        ),
    )
}

/// `fulcrum_upstream_retries_total{cluster="app", reason}`.
async fn retries(proxy: &Proxy, reason: &str) -> f64 {
    proxy_metric(
        proxy,
        &format!(r#"fulcrum_upstream_retries_total{{cluster="app",reason="{reason}"}}"#),
    )
    .await
}

async fn post(client: &TestClient, url: &str, body: &'static str) -> Reply {
    let req = http::Request::post(url)
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from_static(body.as_bytes()),
        )))
        .unwrap();
    send(client, req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_failures_are_retried_on_another_endpoint_by_default_whatever_the_method() {
    let dead = closed_port();
    let good = Backend::start("good", Behavior::Echo);
    let proxy = Proxy::start(&retry_config(&[dead.addr, good.addr], "", ""));
    let client = h1_client();
    let mut retried = 0;
    for i in 0..20 {
        let r = if i % 2 == 0 {
            get(&client, &proxy.url("public", "/")).await
        } else {
            // Never reached the origin, so even a POST is retried, body and all.
            post(&client, &proxy.url("public", "/upload"), "twelve bytes").await
        };
        assert_eq!(r.status, 200, "{:?}", r.headers);
        let expected = if i % 2 == 0 { "good" } else { "12" };
        assert_eq!(r.body, expected);
        match r.header("x-fulcrum-attempts") {
            Some("2") => retried += 1,
            None => {}
            other => panic!("unexpected attempts header {other:?}"),
        }
    }
    assert_eq!(
        retried, 10,
        "round robin sends every other request to the dead port first"
    );
    assert_eq!(retries(&proxy, "connect_failure").await, 10.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_is_retried_only_when_configured_and_only_for_idempotent_methods() {
    let bad = Backend::start(
        "bad",
        Behavior::Fail {
            status: 503,
            percent: 100,
        },
    );
    let good = Backend::start("good", Behavior::Echo);
    let route = "[listeners.routes.retry_policy]\nretry_on = [\"gateway-error\"]\n";
    let plain = Proxy::start(&retry_config(&[bad.addr, good.addr], "", ""));
    let retrying = Proxy::start(&retry_config(&[bad.addr, good.addr], "", route));
    let client = h1_client();
    let mut failed = 0;
    for _ in 0..10 {
        if get(&client, &plain.url("public", "/")).await.status == 503 {
            failed += 1;
        }
    }
    assert_eq!(failed, 5, "by default a 503 is the client's answer");
    for _ in 0..10 {
        let r = get(&client, &retrying.url("public", "/")).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "good"));
    }
    // Round robin is not advanced by retries: the POSTs alternate.
    let mut posts_failed = 0;
    for _ in 0..10 {
        if post(&client, &retrying.url("public", "/"), "x")
            .await
            .status
            == 503
        {
            posts_failed += 1;
        }
    }
    assert_eq!(posts_failed, 5, "a POST the origin saw is never retried");
    assert!(retries(&retrying, "status").await >= 5.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_retry_budget_answers_with_the_original_failure() {
    let dead = closed_port();
    let good = Backend::start("good", Behavior::Echo);
    let budget = "[clusters.retry_budget]\nbudget_percent = 0\nmin_retry_concurrency = 0\n";
    let proxy = Proxy::start(&retry_config(&[dead.addr, good.addr], budget, ""));
    let client = h1_client();
    let mut refused = 0;
    for _ in 0..10 {
        let r = get(&client, &proxy.url("public", "/")).await;
        if r.status == 502 {
            assert_eq!(r.header("x-fulcrum-reason"), Some("retry_budget_exhausted"));
            assert!(r.body.contains("could not connect"), "{}", r.body);
            refused += 1;
        }
    }
    assert_eq!(refused, 5);
    assert_eq!(
        proxy_metric(
            &proxy,
            r#"fulcrum_upstream_retry_overflow_total{cluster="app"}"#
        )
        .await,
        5.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_try_timeout_moves_on_to_another_endpoint() {
    let hole = Backend::start("hole", Behavior::BlackHole);
    let good = Backend::start("good", Behavior::Echo);
    let policy = "[clusters.retry_policy]\nretry_on = [\"reset\"]\nper_try_timeout = \"300ms\"\n";
    let proxy = Proxy::start(&retry_config(&[hole.addr, good.addr], policy, ""));
    let client = h1_client();
    for _ in 0..4 {
        let r = get(&client, &proxy.url("public", "/")).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "good"));
    }
    assert_eq!(retries(&proxy, "per_try_timeout").await, 2.0);
}

/// An HTTP/2 origin that refuses every stream (RST_STREAM REFUSED_STREAM).
fn refusing_h2_origin() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // Bounded: serves for the test's duration, then the thread ends.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), async {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let Ok(mut conn) = h2::server::handshake(socket).await else {
                            return;
                        };
                        while let Some(Ok((_req, mut respond))) = conn.accept().await {
                            respond.send_reset(h2::Reason::REFUSED_STREAM);
                        }
                    });
                }
            })
            .await;
        });
    });
    (addr, thread)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_http2_stream_is_retried_by_default() {
    let (refuser, _thread) = refusing_h2_origin();
    let good = Backend::start("good", Behavior::Echo);
    let proxy = Proxy::start(&retry_config(
        &[refuser, good.addr],
        "protocol = \"http2\"",
        "",
    ));
    let client = h1_client();
    for _ in 0..6 {
        let r = get(&client, &proxy.url("public", "/")).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "good"));
    }
    assert_eq!(retries(&proxy, "refused_stream").await, 3.0);
}

/// Share of 300 requests that an endpoint added by a reload gets, with
/// `policy` and `slow_start` (TOML lines for the cluster table).
async fn new_endpoint_share(policy: &str, slow_start: &str) -> f64 {
    let a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let c = Backend::start("c", Behavior::Echo);
    let cluster = |backends: &[&Backend]| {
        app_config(
            2,
            "",
            &format!(
                "policy = \"{policy}\"\n{}\n{slow_start}\n",
                endpoints_line(backends)
            ),
        )
    };
    let proxy = Proxy::start(&cluster(&[&a, &b]));
    proxy.rewrite_config(&cluster(&[&a, &b, &c]));
    proxy.hangup();
    eventually("reloaded", async || config_generation(&proxy).await == 2).await;
    let client = h1_client();
    let mut to_c = 0;
    for _ in 0..300 {
        if get(&client, &proxy.url("public", "/")).await.body == "c" {
            to_c += 1;
        }
    }
    f64::from(to_c) / 300.0
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_start_keeps_a_new_endpoint_from_being_flooded() {
    // A window far longer than the test: the new endpoint stays near its
    // 10 % minimum, so its fair share of 1/3 shrinks to about 1/21.
    let ramp = "[clusters.slow_start]\nwindow = \"1h\"";
    for policy in ["least_request", "peak_ewma", "round_robin"] {
        let share = new_endpoint_share(policy, ramp).await;
        assert!(share < 0.15, "{policy}: the new endpoint got {share:.2}");
    }
    let without =
        new_endpoint_share("least_request", "[clusters.slow_start]\nenabled = false").await;
    assert!(
        without > 0.2,
        "without slow start it takes its full share at once: {without:.2}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn circuit_breakers_fail_fast_past_their_limits() {
    let slow = Backend::start("slow", Behavior::Echo);
    let breakers = |line: &str| {
        app_config(
            2,
            "",
            &format!(
                "{}\n[clusters.circuit_breakers]\n{line}\n",
                endpoints_line(&[&slow])
            ),
        )
    };
    for (line, breaker) in [
        ("max_requests = 2", "max_requests"),
        ("max_connections = 2", "max_connections"),
    ] {
        let proxy = Proxy::start(&breakers(line));
        let held: Vec<_> = (0..2)
            .map(|_| {
                let url = proxy.url("public", "/delay/3000");
                // A client each, so each request has its own connection.
                tokio::spawn(async move { get(&h1_client(), &url).await.status })
            })
            .collect();
        eventually("two requests held at the origin", async || {
            slow.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 2
        })
        .await;
        let r = get(&h1_client(), &proxy.url("public", "/")).await;
        assert_eq!(r.status, 503, "{breaker}");
        assert_eq!(r.header("x-fulcrum-reason"), Some("overflow"));
        assert!(r.body.contains(breaker), "{}", r.body);
        for h in held {
            assert_eq!(
                h.await.unwrap(),
                200,
                "the requests within the limit finish"
            );
        }
        assert_eq!(
            proxy_metric(
                &proxy,
                &format!(
                    r#"fulcrum_circuit_breaker_overflow_total{{cluster="app",breaker="{breaker}"}}"#
                )
            )
            .await,
            1.0
        );
        eventually("capacity back", async || {
            proxy_metric(
                &proxy,
                r#"fulcrum_circuit_breaker_remaining{cluster="app",breaker="max_requests"}"#,
            )
            .await
                > 0.0
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_breaker_opens_on_failures_and_a_probe_closes_it() {
    let mut flaky = Backend::start("flaky", Behavior::Echo);
    let good = Backend::start("good", Behavior::Echo);
    let breaker =
        "[clusters.circuit_breakers]\nconsecutive_failures = 2\nopen_interval = \"300ms\"\n";
    let proxy = Proxy::start(&retry_config(&[flaky.addr, good.addr], breaker, ""));
    let client = h1_client();
    let opens = format!(
        r#"fulcrum_endpoint_breaker_opens_total{{cluster="app",endpoint="{}"}}"#,
        flaky.addr
    );
    flaky.stop();
    eventually("the breaker opens", async || {
        // Connect failures are retried on `good`: the client sees none.
        let r = get(&client, &proxy.url("public", "/")).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "good"));
        proxy_metric(&proxy, &opens).await == 1.0
    })
    .await;
    // While it is open, no attempt goes to the endpoint: no retries either.
    let before = retries(&proxy, "connect_failure").await;
    for _ in 0..6 {
        get(&client, &proxy.url("public", "/")).await;
    }
    let after = retries(&proxy, "connect_failure").await;
    assert!(
        after - before <= 1.0,
        "at most one probe failed meanwhile: {before} -> {after}"
    );
    flaky.restart();
    eventually("a probe succeeds and closes it", async || {
        get(&client, &proxy.url("public", "/")).await;
        proxy_metric(
            &proxy,
            r#"fulcrum_endpoint_breaker_open_duration_seconds_count{cluster="app"}"#,
        )
        .await
            == 1.0
    })
    .await;
    assert!(proxy.logs().contains("endpoint circuit breaker closed"));
    let hits = flaky.hits();
    for _ in 0..10 {
        get(&client, &proxy.url("public", "/")).await;
    }
    assert!(flaky.hits() > hits, "closed again: it takes requests");
}
