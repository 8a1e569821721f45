//! Large bodies stream through in both directions without being buffered
//! whole: the proxy's peak memory stays far below the body size.

mod support;

use http::Request;
use http_body_util::BodyExt;
use support::*;

const MIB: usize = 1024 * 1024;

fn config(protocol: &str, backend: &Backend) -> String {
    app_config(
        1,
        "",
        &format!("protocol = \"{protocol}\"\n{}", endpoints_line(&[backend])),
    )
}

async fn download(client: &TestClient, url: &str) -> usize {
    let resp = client
        .request(Request::get(url).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.into_body();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_both_ways_with_flat_memory() {
    let backend = Backend::start("big", Behavior::Echo);
    for (protocol, client, size) in [
        ("http1", h1_client(), 512 * MIB),
        ("http2", h2c_client(), 128 * MIB),
    ] {
        let proxy = Proxy::start(&config(protocol, &backend));
        let url = proxy.url("public", "/upload");
        let r = send(&client, Request::post(url).body(upload_body(size)).unwrap()).await;
        assert_eq!(r.status.as_u16(), 200);
        assert_eq!(
            r.body,
            size.to_string(),
            "{protocol}: backend received the whole upload"
        );
        let got = download(&client, &proxy.url("public", &format!("/download/{size}"))).await;
        assert_eq!(got, size, "{protocol}: client received the whole download");
        let peak_mib = proxy.peak_rss_kib() / 1024;
        assert!(
            peak_mib < 64,
            "{protocol}: proxy peak RSS {peak_mib} MiB for a {} MiB body",
            size / MIB
        );
    }
}
