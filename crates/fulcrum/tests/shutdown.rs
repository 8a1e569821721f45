//! SIGTERM drains: a request in flight completes, then the process exits 0.

mod support;

use std::sync::atomic::Ordering;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_in_flight_request_finish() {
    let backend = Backend::start("slow", Behavior::Echo);
    let mut proxy = Proxy::start(&config_with(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
drain_timeout = "20s"
shutdown_delay = "0s"
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[listeners.routes]]
cluster = "app"
[[clusters]]
name = "app"
endpoints = [{ address = "{b0}" }]
"#,
        &[&backend],
    ));
    let url = proxy.url("public", "/delay/1500");
    let request = tokio::spawn(async move { get(&h1_client(), &url).await });
    eventually("request reached the backend", async || {
        backend.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    proxy.terminate();
    let reply = request.await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "slow"));
    let status = tokio::task::spawn_blocking(move || {
        let status = proxy.wait();
        (status, proxy.logs())
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "exit status {:?}; log:\n{}",
        status.0,
        status.1
    );
    assert!(status.1.contains("received SIGTERM"));
}
