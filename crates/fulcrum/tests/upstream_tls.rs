//! TLS to endpoints (re-encryption): verified against a CA with SNI, ALPN
//! matching the cluster's protocol (HTTP/1.1 and HTTP/2), connections reused,
//! uploads, health checks over TLS, client certificates for mTLS origins, and
//! every verification failure refused, counted and logged. The origins are
//! real rustls servers with certificates made at test time.

mod support;

use http::Request;
use support::tls::*;
use support::*;

/// A plain listener routing `/<cluster>/...` to each of `clusters`, given as
/// (name, cluster table body without the name), and `/upload` to the first.
fn config(clusters: &[(&str, String)]) -> String {
    let mut text = String::from(
        "[admin]\naddress = \"127.0.0.1:0\"\n[runtime]\nworkers = 1\n[[listeners]]\nname = \"public\"\naddress = \"127.0.0.1:0\"\n",
    );
    if let Some((first, _)) = clusters.first() {
        text.push_str(&format!(
            "[[listeners.routes]]\npath_prefix = \"/upload\"\ncluster = \"{first}\"\n"
        ));
    }
    for (name, _) in clusters {
        text.push_str(&format!(
            "[[listeners.routes]]\npath_prefix = \"/{name}/\"\ncluster = \"{name}\"\n"
        ));
    }
    for (name, body) in clusters {
        text.push_str(&format!("[[clusters]]\nname = \"{name}\"\n{body}\n"));
    }
    text
}

fn cluster(backend: &Backend, protocol: &str, tls: &str) -> String {
    format!(
        "protocol = \"{protocol}\"\nendpoints = [{{ address = \"{}\" }}]\n[clusters.tls]\n{tls}\n",
        backend.addr
    )
}

fn ca_line(pki: &TestPki) -> String {
    format!("ca = \"{}\"", path_str(&pki.dir.join("ca.pem")))
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_reencrypted_to_verified_endpoints_over_http1_and_http2() {
    let pki = TestPki::new("upstream-ok");
    let leaf = pki.leaf("origin", &["origin.internal"], KeyKind::EcdsaP256);
    let by_ip = pki.leaf("origin-ip", &["127.0.0.1"], KeyKind::Rsa2048);
    let origin = Backend::start(
        "origin",
        Behavior::Tls(pki.origin(&leaf, &["h2", "http/1.1"], false)),
    );
    let origin_ip = Backend::start(
        "origin-ip",
        Behavior::Tls(pki.origin(&by_ip, &["http/1.1"], false)),
    );
    let ca = ca_line(&pki);
    let sni = format!("{ca}\nsni = \"origin.internal\"");
    let checked = format!(
        "{}\n[clusters.health_check]\ntype = \"http\"\npath = \"/healthz\"\ninterval = \"100ms\"\n",
        cluster(&origin, "http1", &sni)
    );
    let proxy = Proxy::start(&config(&[
        ("one", checked),
        ("two", cluster(&origin, "http2", &sni)),
        ("ip", cluster(&origin_ip, "http1", &ca)),
    ]));
    let client = h1_client();

    for _ in 0..3 {
        let reply = get(&client, &proxy.url("public", "/one/x")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, "origin");
        assert_eq!(reply.header("x-tls-sni"), Some("origin.internal"));
        assert_eq!(reply.header("x-tls-alpn"), Some("http/1.1"));
    }
    let reply = get(&client, &proxy.url("public", "/two/x")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-tls-alpn"), Some("h2"));
    // Without `sni` the certificate must name the endpoint's IP, and no SNI is sent.
    let reply = get(&client, &proxy.url("public", "/ip/x")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-tls-sni"), Some(""));

    // A body goes up over TLS too (the upload path splits the stream), and
    // the connection is reused afterwards.
    let req = Request::post(proxy.url("public", "/upload"))
        .body(upload_body(300_000))
        .unwrap();
    let reply = send(&client, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "300000");
    let reply = get(&client, &proxy.url("public", "/one/after-upload")).await;
    assert_eq!(reply.status, 200);

    // Sequential requests on one worker reuse one TLS connection per cluster.
    let full = |cluster: &str| {
        format!(
            "fulcrum_upstream_tls_handshakes_total{{cluster=\"{cluster}\",version=\"TLSv1.3\",kind=\"full\"}}"
        )
    };
    assert_eq!(proxy_metric(&proxy, &full("two")).await, 1.0);
    assert_eq!(proxy_metric(&proxy, &full("ip")).await, 1.0);
    // The health check connects over TLS as well, and passes.
    eventually("TLS health checks pass", async || {
        proxy_metric(
            &proxy,
            &format!(
                "fulcrum_health_checks_total{{cluster=\"one\",endpoint=\"{}\",result=\"success\"}}",
                origin.addr
            ),
        )
        .await
            >= 1.0
    })
    .await;
    let seen = origin.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.path == "/healthz"),
        "no health check reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_failures_are_refused_counted_and_logged() {
    let pki = TestPki::new("upstream-bad");
    let stranger = TestPki::new("upstream-stranger");
    let leaf = pki.leaf("origin", &["origin.internal"], KeyKind::EcdsaP256);
    let origin = Backend::start(
        "origin",
        Behavior::Tls(pki.origin(&leaf, &["http/1.1"], false)),
    );
    let plain = Backend::start("plain", Behavior::Echo);
    let ca = ca_line(&pki);
    let proxy = Proxy::start(&config(&[
        // Signed by a CA fulcrum was not told to trust.
        (
            "untrusted",
            cluster(
                &origin,
                "http1",
                &format!("{}\nsni = \"origin.internal\"", ca_line(&stranger)),
            ),
        ),
        // Trusted CA, but the certificate is for another name.
        (
            "wrongname",
            cluster(&origin, "http1", &format!("{ca}\nsni = \"api.internal\"")),
        ),
        // An HTTP/2 cluster offers only h2; this origin speaks only HTTP/1.1.
        (
            "alpn",
            cluster(
                &origin,
                "http2",
                &format!("{ca}\nsni = \"origin.internal\""),
            ),
        ),
        // Not a TLS server at all.
        ("plain", cluster(&plain, "http1", &ca)),
        // The same untrusted origin, explicitly unverified.
        (
            "insecure",
            cluster(
                &origin,
                "http1",
                "insecure_skip_verify = true\nsni = \"origin.internal\"",
            ),
        ),
    ]));
    let client = h1_client();
    for (path, reason) in [
        ("/untrusted/x", "unknown_ca"),
        ("/wrongname/x", "name_mismatch"),
        ("/alpn/x", "alpn"),
        ("/plain/x", "protocol"),
    ] {
        let reply = get(&client, &proxy.url("public", path)).await;
        assert_eq!(reply.status, 502, "{path}: {}", reply.body);
        assert_eq!(
            reply.header("x-fulcrum-reason"),
            Some("upstream_tls_failure"),
            "{path}"
        );
        assert!(reply.body.contains("TLS"), "{path}: {}", reply.body);
        let cluster = path.split('/').nth(1).unwrap();
        assert_eq!(
            proxy_metric(
                &proxy,
                &format!(
                    "fulcrum_upstream_tls_handshake_errors_total{{cluster=\"{cluster}\",reason=\"{reason}\"}}"
                )
            )
            .await,
            1.0,
            "{path}"
        );
    }
    assert_eq!(
        origin.hits(),
        0,
        "no request may reach an unverified origin"
    );
    let reply = get(&client, &proxy.url("public", "/insecure/x")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "origin");
    let logs = proxy.logs();
    assert!(
        logs.contains("TLS handshake with endpoint failed") && logs.contains("unknown_ca"),
        "{logs}"
    );
    assert!(
        logs.contains("insecure_skip_verify is set") && logs.contains("insecure"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_is_presented_to_origins_that_require_one() {
    let pki = TestPki::new("upstream-mtls");
    let leaf = pki.leaf("origin", &["origin.internal"], KeyKind::EcdsaP256);
    let (cert, key) = pki.leaf("fulcrum-client", &["fulcrum.internal"], KeyKind::EcdsaP256);
    let origin = Backend::start(
        "origin",
        Behavior::Tls(pki.origin(&leaf, &["h2", "http/1.1"], true)),
    );
    let base = format!("{}\nsni = \"origin.internal\"", ca_line(&pki));
    let with_cert = format!(
        "{base}\ncertificate = {{ cert = \"{}\", key = \"{}\" }}",
        path_str(&cert),
        path_str(&key)
    );
    let proxy = Proxy::start(&config(&[
        ("mtls", cluster(&origin, "http1", &with_cert)),
        ("mtls2", cluster(&origin, "http2", &with_cert)),
        ("anonymous", cluster(&origin, "http1", &base)),
    ]));
    let client = h1_client();
    for path in ["/mtls/x", "/mtls2/x"] {
        let reply = get(&client, &proxy.url("public", path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.header("x-tls-client-cert"), Some("present"), "{path}");
    }
    let reply = get(&client, &proxy.url("public", "/anonymous/x")).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        reply.header("x-fulcrum-reason"),
        Some("upstream_tls_failure")
    );
    assert_eq!(origin.hits(), 2);
}

#[test]
fn check_names_the_broken_upstream_tls_setting() {
    let pki = TestPki::new("upstream-check");
    let run_check = check_config;
    let http = |tls: &str| {
        app_config(
            1,
            "",
            &format!("endpoints = [{{ address = \"127.0.0.1:9\" }}]\n[clusters.tls]\n{tls}"),
        )
    };
    let missing = pki.dir.join("missing-ca.pem");
    let (code, stderr) = run_check(&http(&format!(
        "ca = \"{}\"\nsni = \"not a name\"\ncertificate = {{ cert = \"{}\", key = \"{}\" }}\nmin_version = \"1.0\"",
        path_str(&missing),
        path_str(&missing),
        path_str(&missing)
    )));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "clusters[0].tls.ca: cannot read {}",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"not a name\" is not a DNS name or IP address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("clusters[0].tls.certificate: cannot read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unsupported TLS version \"1.0\""),
        "{stderr}"
    );
    let (code, stderr) = run_check(&http(&format!(
        "{}\ninsecure_skip_verify = true",
        ca_line(&pki)
    )));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("contradict each other"), "{stderr}");
    // TLS origination belongs to HTTP clusters; an L4 listener forwards bytes.
    let (code, stderr) = run_check(&format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[[listeners]]\nname = \"db\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncluster = \"db\"\n[[clusters]]\nname = \"db\"\nendpoints = [{{ address = \"127.0.0.1:9\" }}]\n[clusters.tls]\n{}\n",
        ca_line(&pki)
    ));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("cluster \"db\" sets `tls`, but listener \"db\" uses it"),
        "{stderr}"
    );
    // Unverified needs no CA; the system roots are the default otherwise.
    let (code, stderr) = run_check(&http("insecure_skip_verify = true"));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run_check(&http("sni = \"api.example.com\""));
    assert_eq!(code, Some(0), "{stderr}");
}
