//! Hashing policies through the real proxy: a key keeps its endpoint, the
//! affinity cookie makes clients without a key stick, and an ejected endpoint
//! moves only its own keys.

mod support;

use std::collections::HashMap;

use http::Request;
use support::*;

fn config(policy: &str, route_extra: &str, health: &str, backends: &[&Backend]) -> String {
    let cluster = format!(
        "policy = \"{policy}\"\n{}\n{health}",
        endpoints_line(backends)
    );
    app_config(2, route_extra, &cluster)
}

async fn as_user(proxy: &Proxy, user: &str) -> Reply {
    let req = Request::get(proxy.url("public", "/"))
        .header("x-user", user)
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_key_keeps_its_endpoint_under_every_hashing_policy() {
    let bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
        Backend::start("c", Behavior::Echo),
    ];
    for policy in ["maglev", "ring_hash", "rendezvous", "consistent_bounded"] {
        let proxy = Proxy::start(&config(
            policy,
            "hash_policy = [{ header = \"x-user\" }]",
            "",
            &[&bs[0], &bs[1], &bs[2]],
        ));
        let mut placement: HashMap<String, String> = HashMap::new();
        for round in 0..3 {
            for u in 0..30 {
                let user = format!("user-{u}");
                let got = as_user(&proxy, &user).await.body;
                let first = placement.entry(user.clone()).or_insert_with(|| got.clone());
                assert_eq!(*first, got, "{policy}: {user} moved in round {round}");
            }
        }
        let used: std::collections::HashSet<_> = placement.values().collect();
        assert!(used.len() >= 2, "{policy}: 30 users all on {used:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_affinity_cookie_makes_a_client_stick() {
    let bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
        Backend::start("c", Behavior::Echo),
    ];
    let proxy = Proxy::start(&config(
        "maglev",
        "affinity_cookie = { name = \"lb\", ttl = \"1h\" }",
        "",
        &[&bs[0], &bs[1], &bs[2]],
    ));
    let client = h1_client();
    let first = get(&client, &proxy.url("public", "/")).await;
    let set = first
        .header("set-cookie")
        .expect("a cookie is set")
        .to_string();
    assert!(
        set.starts_with("lb=") && set.contains("Max-Age=3600"),
        "{set}"
    );
    assert!(
        !bs.iter().any(|b| set.contains(&b.addr.to_string())),
        "the cookie must not reveal endpoints"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    for _ in 0..15 {
        let req = Request::get(proxy.url("public", "/"))
            .header("cookie", &cookie)
            .body(empty())
            .unwrap();
        let r = send(&client, req).await;
        assert_eq!(
            r.body, first.body,
            "the cookie keeps the client on one endpoint"
        );
        assert!(
            r.header("set-cookie").is_none(),
            "no new cookie once the client has one"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ejected_endpoint_moves_only_its_own_keys() {
    let mut bs = [
        Backend::start("a", Behavior::Echo),
        Backend::start("b", Behavior::Echo),
        Backend::start("c", Behavior::Echo),
    ];
    let health = "[clusters.health_check]\ntype = \"tcp\"\ninterval = \"100ms\"\njitter = \"0ms\"\nunhealthy_threshold = 1\nhealthy_threshold = 1";
    let proxy = Proxy::start(&config(
        "rendezvous",
        "hash_policy = [{ header = \"x-user\" }]",
        health,
        &[&bs[0], &bs[1], &bs[2]],
    ));
    let mut before = HashMap::new();
    for u in 0..40 {
        let user = format!("user-{u}");
        before.insert(user.clone(), as_user(&proxy, &user).await.body);
    }
    assert!(before.values().any(|b| b == "a"), "some users start on a");
    bs[0].stop();
    eventually("a ejected", async || {
        clusters(&proxy).await["clusters"][0]["healthy_endpoints"].as_u64() == Some(2)
    })
    .await;
    for (user, was) in &before {
        let now = as_user(&proxy, user).await;
        assert_eq!(now.status.as_u16(), 200);
        if was == "a" {
            assert_ne!(now.body, "a");
        } else {
            assert_eq!(
                &now.body, was,
                "{user} was on a healthy endpoint and must not move"
            );
        }
    }
}
