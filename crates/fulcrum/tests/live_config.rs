//! Live configuration through the real binary: whole-config reloads (admin
//! API, SIGHUP) with state carried over, endpoint drain, the admin token,
//! and graceful shutdown (readiness first, `Connection: close`, the two-step
//! HTTP/2 GOAWAY). The last test reloads 20 times under load from HTTP/1.1
//! and HTTP/2 clients with an L4 flow open, and every response is recorded.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::l4::{TcpBackend, TcpMode, closed_port, read_line};
use support::raw::{GOAWAY, H2Client, HEADERS, PING};
use support::*;

/// One HTTP listener "public" to cluster "app"; `extra` is more TOML.
fn config(app: &[std::net::SocketAddr], extra: &str) -> String {
    let endpoints: Vec<String> = app
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
shutdown_delay = "0s"
drain_timeout = "20s"
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[listeners.routes]]
path_prefix = "/r/"
cluster = "r"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
policy = "round_robin"
endpoints = [{}]
{extra}
"#,
        endpoints.join(", ")
    )
}

/// The cluster "r" the `/r/` route needs: to `to`, or to `app`'s first endpoint.
fn cluster_r(to: std::net::SocketAddr) -> String {
    format!("[[clusters]]\nname = \"r\"\nendpoints = [{{ address = \"{to}\" }}]\n")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_apply_routes_clusters_and_listeners_and_refuse_bad_configs() {
    let a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let v1 = config(&[a.addr], &cluster_r(a.addr));
    let proxy = Proxy::start(&v1);
    let client = h1_client();
    assert_eq!(get(&client, &proxy.url("public", "/r/x")).await.body, "a");
    assert_eq!(config_generation(&proxy).await, 1);

    // Through the admin API: cluster r moves to b, a listener is added.
    let v2 = config(
        &[a.addr],
        &format!(
            "{}[[listeners]]\nname = \"extra\"\naddress = \"127.0.0.1:0\"\n[[listeners.routes]]\ncluster = \"app\"\n",
            cluster_r(b.addr)
        ),
    );
    proxy.rewrite_config(&v2);
    let (status, body) = admin_post(&proxy, "/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let applied = json(&body);
    assert_eq!(applied["applied"]["generation"], 2);
    let added = &applied["applied"]["listeners_added"][0];
    assert_eq!(added["name"], "extra");
    let extra: std::net::SocketAddr = added["address"].as_str().unwrap().parse().unwrap();
    // The same keep-alive client: its connection carried on, its requests see the new routes.
    assert_eq!(get(&client, &proxy.url("public", "/r/x")).await.body, "b");
    assert_eq!(get(&client, &format!("http://{extra}/")).await.body, "a");
    assert_eq!(config_generation(&proxy).await, 2);

    // Through SIGHUP: back to v1; the extra listener stops accepting.
    proxy.rewrite_config(&v1);
    proxy.hangup();
    eventually("SIGHUP reload applied", async || {
        config_generation(&proxy).await == 3
    })
    .await;
    assert_eq!(get(&client, &proxy.url("public", "/r/x")).await.body, "a");
    eventually("the removed listener refuses connections", async || {
        TcpStream::connect(extra).is_err()
    })
    .await;

    // An invalid config changes nothing and says why, with file and field.
    proxy.rewrite_config(&v1.replace(
        &format!("{{ address = \"{}\" }}", a.addr),
        &format!("{{ address = \"{}\", weight = 0 }}", a.addr),
    ));
    let (status, body) = admin_post(&proxy, "/reload", None).await;
    assert_eq!(status, 400, "{body}");
    let refused = json(&body);
    assert_eq!(refused["result"], "failure");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("clusters[0].endpoints[0].weight")
            && error.contains(&proxy.config.display().to_string()),
        "{error}"
    );
    assert_eq!(config_generation(&proxy).await, 3);
    assert_eq!(get(&client, &proxy.url("public", "/")).await.body, "a");
    for (series, want) in [
        ("fulcrum_config_reload_total{result=\"success\"}", 2.0),
        ("fulcrum_config_reload_total{result=\"failure\"}", 1.0),
        ("fulcrum_config_generation", 3.0),
        ("fulcrum_config_last_reload_success", 0.0),
    ] {
        assert_eq!(proxy_metric(&proxy, series).await, want, "{series}");
    }
    assert!(proxy.logs().contains("config reload refused"));
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_state_survives_unrelated_reloads() {
    let a = Backend::start("a", Behavior::Echo);
    let c = Backend::start("c", Behavior::Echo);
    let dead = closed_port();
    // One probe at start, then none for an hour: whatever the state is
    // after the reload was carried over, not probed again.
    let check = "health_check = { type = \"tcp\", interval = \"1h\", jitter = \"0s\", unhealthy_threshold = 1 }\n";
    let v1 = config(&[a.addr, dead.addr, c.addr], &cluster_r(a.addr)).replace(
        "policy = \"round_robin\"\n",
        &format!("policy = \"round_robin\"\n{check}"),
    );
    let proxy = Proxy::start(&v1);
    eventually("the dead endpoint is ejected", async || {
        clusters(&proxy).await["clusters"][0]["endpoints"][1]["healthy"] == false
    })
    .await;
    let (status, body) = admin_post(
        &proxy,
        &format!("/clusters/app/endpoints/{}/drain", c.addr),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let client = h1_client();
    for _ in 0..6 {
        assert_eq!(get(&client, &proxy.url("public", "/")).await.body, "a");
    }
    let before = clusters(&proxy).await["clusters"][0]["endpoints"][0]["requests_total"]
        .as_u64()
        .unwrap();

    // An unrelated change: a weight and another route.
    let v2 = v1.replace(
        &format!("{{ address = \"{}\" }}", a.addr),
        &format!("{{ address = \"{}\", weight = 2 }}", a.addr),
    ) + "[[listeners.routes]]\npath_prefix = \"/other\"\ncluster = \"app\"\n";
    proxy.rewrite_config(&v2);
    let (status, body) = admin_post(&proxy, "/reload", None).await;
    assert_eq!(status, 200, "{body}");

    let state = clusters(&proxy).await;
    let endpoints = &state["clusters"][0]["endpoints"];
    assert_eq!(endpoints[0]["weight"], 2, "the new weight applies");
    assert!(
        endpoints[0]["requests_total"].as_u64().unwrap() >= before,
        "statistics carried over: {endpoints}"
    );
    assert_eq!(endpoints[1]["healthy"], false, "still ejected: {endpoints}");
    assert_eq!(endpoints[1]["ineligible_reasons"][0], "unhealthy");
    assert_eq!(
        endpoints[2]["ineligible_reasons"][0], "draining",
        "{endpoints}"
    );
    // Were the dead endpoint eligible again, round robin would send it
    // every other request (a 502); were c, it would answer.
    for _ in 0..6 {
        let reply = get(&client, &proxy.url("public", "/")).await;
        assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "a"));
    }
    assert_eq!(c.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_endpoint_finishes_its_requests_and_gets_no_new_ones() {
    let a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let proxy = Proxy::start(&config(&[a.addr, b.addr], &cluster_r(a.addr)));
    let url = proxy.url("public", "/delay/1500");
    let long = tokio::spawn(async move { get(&h1_client(), &url).await });
    eventually("the long request reached a backend", async || {
        a.in_flight.load(Ordering::SeqCst) + b.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    let (busy, other) = if a.in_flight.load(Ordering::SeqCst) == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let drain = format!("/clusters/app/endpoints/{}/drain", busy.addr);
    let (status, body) = admin_post(&proxy, &drain, None).await;
    assert_eq!(status, 200, "{body}");
    let state = json(&body);
    assert_eq!(state["eligible"], false);
    assert_eq!(state["active_requests"], 1);
    let shown = clusters(&proxy).await;
    let entry = shown["clusters"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == busy.addr.to_string())
        .unwrap()
        .clone();
    assert_eq!(entry["ineligible_reasons"][0], "draining");
    assert!(entry["draining_seconds"].is_number(), "{entry}");

    let client = h1_client();
    let hits_before = busy.hits();
    for _ in 0..10 {
        assert_eq!(
            get(&client, &proxy.url("public", "/")).await.body,
            other.name
        );
    }
    assert_eq!(
        busy.hits(),
        hits_before,
        "no new request on the drained endpoint"
    );
    let reply = long.await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, busy.name.as_str())
    );
    eventually("the drain's duration is recorded", async || {
        proxy_metric(
            &proxy,
            "fulcrum_endpoint_drain_duration_seconds_count{cluster=\"app\"}",
        )
        .await
            == 1.0
    })
    .await;

    let undrain = format!("/clusters/app/endpoints/{}/undrain", busy.addr);
    assert_eq!(admin_post(&proxy, &undrain, None).await.0, 200);
    // It slow-starts from 10 % of its weight, so it may take a few dozen.
    for _ in 0..200 {
        get(&client, &proxy.url("public", "/")).await;
        if busy.hits() > hits_before {
            break;
        }
    }
    assert!(
        busy.hits() > hits_before,
        "undrained: it takes requests again"
    );

    let (status, body) = admin_post(&proxy, "/clusters/app/endpoints/10.9.9.9:1/drain", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has no endpoint 10.9.9.9:1"), "{body}");
    assert_eq!(
        admin_post(&proxy, "/clusters/app/endpoints/nope/drain", None)
            .await
            .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_write_actions_need_the_token() {
    let a = Backend::start("a", Behavior::Echo);
    let token_file = write_config("s3cret-token\n");
    let text = config(&[a.addr], &cluster_r(a.addr)).replace(
        "[admin]\naddress = \"127.0.0.1:0\"\n",
        &format!(
            "[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
    );
    let proxy = Proxy::start(&text);
    let (status, _) = admin_post(&proxy, "/reload", None).await;
    assert_eq!(status, 401);
    let (status, _) = admin_post(&proxy, "/reload", Some("guess")).await;
    assert_eq!(status, 401);
    let (status, body) = admin_post(&proxy, "/reload", Some("s3cret-token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        proxy_metric(&proxy, "fulcrum_admin_unauthorized_total").await,
        2.0
    );
    // Reads stay open; a write action cannot be a GET.
    assert_eq!(
        get(&h1_client(), &proxy.admin_url("/clusters"))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&h1_client(), &proxy.admin_url("/reload")).await.status,
        404
    );

    // Off loopback without a token: writes are refused, and check warns.
    let open = config(&[a.addr], &cluster_r(a.addr)).replace(
        "[admin]\naddress = \"127.0.0.1:0\"",
        "[admin]\naddress = \"0.0.0.0:0\"",
    );
    let (code, stderr) = check_config(&open);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("token_file"),
        "{stderr}"
    );
    let exposed = Proxy::start(&open);
    let port = exposed.admin.port();
    let mut req = TcpStream::connect(("127.0.0.1", port)).unwrap();
    req.write_all(
        b"POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    req.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_fails_readiness_first_while_listeners_still_accept() {
    let a = Backend::start("a", Behavior::Echo);
    let mut proxy = Proxy::start(
        &config(&[a.addr], &cluster_r(a.addr))
            .replace("shutdown_delay = \"0s\"", "shutdown_delay = \"60s\""),
    );
    // Addresses are announced before the workers start: ready comes just after.
    eventually("/ready answers 200", async || {
        get(&fresh_client(), &proxy.admin_url("/ready"))
            .await
            .status
            == 200
    })
    .await;
    proxy.terminate();
    eventually("/ready answers 503", async || {
        get(&fresh_client(), &proxy.admin_url("/ready"))
            .await
            .status
            == 503
    })
    .await;
    // Within the delay a new connection is still served.
    let reply = get(&fresh_client(), &proxy.url("public", "/")).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "a"));
    assert!(
        proxy
            .logs()
            .contains("listeners stop accepting after the delay")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_http1_after_the_response_and_sends_http2_a_two_step_goaway() {
    let a = Backend::start("a", Behavior::Echo);
    let mut proxy = Proxy::start(&config(&[a.addr], &cluster_r(a.addr)));
    let addr = proxy.listener("public");
    let mut h1 = TcpStream::connect(addr).unwrap();
    h1.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    h1.write_all(b"GET /delay/1500 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let h2 = std::thread::spawn(move || {
        let mut h2 = H2Client::cleartext(addr);
        let fields = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/delay/1500"),
            (":authority", "a"),
        ];
        h2.headers(1, &fields, true);
        h2
    })
    .join()
    .unwrap();
    eventually("both requests reached the backend", async || {
        a.in_flight.load(Ordering::SeqCst) == 2
    })
    .await;
    proxy.terminate();

    let h2 = std::thread::spawn(move || {
        let mut h2 = h2;
        let mut goaways = Vec::new();
        let mut status_on_1 = false;
        while let Some((kind, flags, stream, payload)) = h2.read_frame() {
            match kind {
                GOAWAY => {
                    goaways.push(u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff)
                }
                // The server's round-trip probe between the two GOAWAYs.
                PING if flags & 0x1 == 0 => h2.frame(PING, 0x1, 0, &payload),
                HEADERS if stream == 1 => status_on_1 = true,
                _ => {}
            }
        }
        (goaways, status_on_1)
    });
    let mut response = String::new();
    let _ = h1.read_to_string(&mut response);
    let response = response.to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    let (goaways, answered) = h2.join().unwrap();
    assert_eq!(
        goaways,
        [0x7fff_ffff, 1],
        "RFC 9113 6.8: first 2^31-1, then the last stream"
    );
    assert!(answered, "stream 1 was answered");
    assert!(proxy.wait().success(), "{}", proxy.logs());
    let logs = proxy.logs();
    assert!(
        logs.contains("shutdown complete") && logs.contains("cut=0"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_reloads_under_load_fail_no_request_and_cut_no_flow() {
    let backends: Vec<Backend> = ["a", "b", "c"]
        .iter()
        .map(|n| Backend::start(n, Behavior::Echo))
        .collect();
    let raw = TcpBackend::start("raw", TcpMode::Echo);
    let tcp = format!(
        "[[listeners]]\nname = \"tcp\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncluster = \"raw\"\n\
         [[clusters]]\nname = \"raw\"\nendpoints = [{{ address = \"{}\" }}]\n",
        raw.addr
    );
    let (a, b, c) = (backends[0].addr, backends[1].addr, backends[2].addr);
    // Odd: app on a and b, r on c, an extra listener to an extra cluster x.
    // Even: app on a and c, r on a, no extra listener or cluster.
    let version = |i: usize| {
        if i % 2 == 1 {
            config(
                &[a, b],
                &format!(
                    "{}{tcp}[[listeners]]\nname = \"extra\"\naddress = \"127.0.0.1:0\"\n[[listeners.routes]]\ncluster = \"x\"\n\
                     [[clusters]]\nname = \"x\"\nendpoints = [{{ address = \"{b}\" }}]\n",
                    cluster_r(c)
                ),
            )
        } else {
            config(&[a, c], &format!("{}{tcp}", cluster_r(a)))
        }
    };
    let proxy = Proxy::start(&version(0));
    let mut flow = TcpStream::connect(proxy.listener("tcp")).unwrap();
    flow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(read_line(&mut flow), "raw");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for (i, client) in [h1_client(), h1_client(), h2c_client(), h2c_client()]
        .into_iter()
        .enumerate()
    {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let paths = [proxy.url("public", "/"), proxy.url("public", "/r/x")];
        load.push(tokio::spawn(async move {
            // Bounded by count as well as by the stop flag.
            for n in 0..200_000usize {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let req = http::Request::get(&paths[(n + i) % 2])
                    .body(empty())
                    .unwrap();
                match client.request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        use http_body_util::BodyExt;
                        match resp.into_body().collect().await {
                            Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                            Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                        };
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for i in 1..=20 {
        proxy.rewrite_config(&version(i));
        let (status, body) = admin_post(&proxy, "/reload", None).await;
        assert_eq!(status, 200, "reload {i}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} succeeded");
    assert!(ok > 0);
    assert_eq!(config_generation(&proxy).await, 21);
    // The clients' connections lived through every reload.
    let accepted = proxy_metric(
        &proxy,
        "fulcrum_downstream_connections_total{listener=\"public\"}",
    )
    .await;
    assert!(accepted <= 8.0, "{accepted} connections for 4 clients");
    // So did the L4 flow.
    flow.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    flow.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    for backend in &backends {
        assert!(backend.hits() > 0, "{} got requests", backend.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_config_reloads_when_the_file_changes() {
    let a = Backend::start("a", Behavior::Echo);
    let b = Backend::start("b", Behavior::Echo);
    let watched = |to| {
        config(&[a.addr], &cluster_r(to)).replace(
            "shutdown_delay = \"0s\"\n",
            "shutdown_delay = \"0s\"\nwatch_config = true\n",
        )
    };
    let proxy = Proxy::start(&watched(a.addr));
    let client = h1_client();
    assert_eq!(get(&client, &proxy.url("public", "/r/x")).await.body, "a");
    proxy.rewrite_config(&watched(b.addr));
    eventually("the changed file is reloaded", async || {
        config_generation(&proxy).await == 2
    })
    .await;
    assert_eq!(get(&client, &proxy.url("public", "/r/x")).await.body, "b");
    assert!(
        proxy.logs().contains("why=\"config file changed\""),
        "{}",
        proxy.logs()
    );
}
