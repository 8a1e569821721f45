//! TLS termination with a real rustls client: certificates chosen by SNI
//! (exact, wildcard, default, strict), ALPN choosing HTTP/2 or HTTP/1.1 on one
//! port, minimum version, resumption, handshake metrics and failures, and
//! `fulcrum check` on broken certificate settings. Certificates are generated
//! per test run (rcgen); no key is committed.

mod support;

use std::process::Command;
use std::sync::Arc;

use support::tls::*;
use support::*;

/// notAfter of the certificates `expiring_pki` makes: 2031-01-01T00:00:00Z.
const NOT_AFTER_2031: f64 = 1_924_992_000.0;

struct Site {
    pki: TestPki,
    backend: Backend,
    proxy: Proxy,
}

/// A TLS listener with three certificates: a default (ECDSA), an exact name
/// (RSA) and a wildcard (ECDSA), in front of one backend.
fn site(tag: &str, extra: &str) -> Site {
    let pki = TestPki::new(tag);
    let default = pki.leaf("default", &["default.example.test"], KeyKind::EcdsaP256);
    let a = pki.leaf("a", &["a.example.test"], KeyKind::Rsa2048);
    let b = pki.leaf("b", &["*.b.example.test"], KeyKind::EcdsaP256);
    let backend = Backend::start("app-1", Behavior::Echo);
    let config = app_config(
        1,
        &tls_table(&[default, a, b], extra),
        &endpoints_line(&[&backend]),
    );
    let proxy = Proxy::start(&config);
    Site {
        pki,
        backend,
        proxy,
    }
}

/// Waits for a server-side count: the client may see the handshake end
/// before the server has recorded it.
async fn metric_reaches(proxy: &Proxy, series: &str, value: f64) {
    support::eventually(&format!("{series} == {value}"), async || {
        proxy_metric(proxy, series).await == value
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_chooses_the_certificate_and_alpn_the_protocol() {
    let s = site("sni", "");
    let addr = s.proxy.listener("public");
    let h2 = Arc::new(s.pki.client(&["h2", "http/1.1"]));
    let h1 = Arc::new(s.pki.client(&["http/1.1"]));

    let r = tls_get(addr, h2.clone(), "a.example.test", "/")
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "app-1"));
    assert_eq!(r.served_cn, "a.example.test");
    assert_eq!(r.alpn.as_deref(), Some("h2"));

    // Wildcard: one label under b.example.test, any case.
    let r = tls_get(addr, h1.clone(), "X.B.Example.Test", "/")
        .await
        .unwrap();
    assert_eq!(r.served_cn, "*.b.example.test");
    assert_eq!(r.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(r.status, 200);

    // No certificate for this name: the first one is served, and this
    // client (rightly) refuses it.
    let err = tls_get(addr, h2.clone(), "unknown.example.test", "/")
        .await
        .unwrap_err();
    assert!(err.contains("default.example.test"), "{err}");
    // A wildcard does not cover two labels.
    let err = tls_get(addr, h2, "x.y.b.example.test", "/")
        .await
        .unwrap_err();
    assert!(err.contains("default.example.test"), "{err}");

    let seen = s.backend.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.headers.get("x-forwarded-proto").unwrap(), "https");
    }
    let full = proxy_metric(
        &s.proxy,
        "fulcrum_downstream_tls_handshakes_total{listener=\"public\",version=\"TLSv1.3\",kind=\"full\"}",
    )
    .await;
    assert_eq!(full, 2.0);
    // The two refusals arrive as alerts from the client.
    metric_reaches(
        &s.proxy,
        "fulcrum_downstream_tls_handshake_errors_total{listener=\"public\",reason=\"bad_certificate\"}",
        2.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_sni_refuses_names_without_a_certificate() {
    let s = site("strict", "strict_sni = true");
    let addr = s.proxy.listener("public");
    let client = Arc::new(s.pki.client(&["h2"]));
    let r = tls_get(addr, client.clone(), "a.example.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let err = tls_get(addr, client, "unknown.example.test", "/")
        .await
        .unwrap_err();
    assert!(!err.contains("default.example.test"), "{err}");
    metric_reaches(
        &s.proxy,
        "fulcrum_downstream_tls_handshake_errors_total{listener=\"public\",reason=\"unknown_sni\"}",
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn min_version_is_enforced_and_tls12_works_by_default() {
    let s = site("versions", "");
    let addr = s.proxy.listener("public");
    let tls12 = Arc::new(
        s.pki
            .client_with_versions(&["h2"], &[&rustls::version::TLS12]),
    );
    let r = tls_get(addr, tls12.clone(), "a.example.test", "/")
        .await
        .unwrap();
    assert_eq!((r.status, r.version.as_str()), (200, "TLSv1_2"));
    assert_eq!(r.alpn.as_deref(), Some("h2"));

    let strict = site("versions13", "min_version = \"1.3\"");
    let addr = strict.proxy.listener("public");
    let tls12 = Arc::new(
        strict
            .pki
            .client_with_versions(&["h2"], &[&rustls::version::TLS12]),
    );
    assert!(tls_get(addr, tls12, "a.example.test", "/").await.is_err());
    metric_reaches(
        &strict.proxy,
        "fulcrum_downstream_tls_handshake_errors_total{listener=\"public\",reason=\"version\"}",
        1.0,
    )
    .await;
    let tls13 = Arc::new(strict.pki.client(&["http/1.1"]));
    let r = tls_get(addr, tls13, "a.example.test", "/").await.unwrap();
    assert_eq!((r.status, r.version.as_str()), (200, "TLSv1_3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_returning_client_resumes_its_session() {
    let s = site("resume", "");
    let addr = s.proxy.listener("public");
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        // One client config = one client session cache.
        let client = Arc::new(s.pki.client_with_versions(&["h2"], versions));
        let first = tls_get(addr, client.clone(), "a.example.test", "/")
            .await
            .unwrap();
        assert!(!first.resumed);
        let second = tls_get(addr, client, "a.example.test", "/").await.unwrap();
        assert!(second.resumed, "{versions:?}: second connection resumed");
        assert_eq!(second.status, 200);
    }
    for version in ["TLSv1.3", "TLSv1.2"] {
        let resumed = proxy_metric(
            &s.proxy,
            &format!("fulcrum_downstream_tls_handshakes_total{{listener=\"public\",version=\"{version}\",kind=\"resumed\"}}"),
        )
        .await;
        assert_eq!(resumed, 1.0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_a_tls_port_is_refused_and_counted() {
    let s = site("plain", "");
    let addr = s.proxy.listener("public");
    let plain = h1_client()
        .request(
            http::Request::get(format!("http://{addr}/"))
                .body(empty())
                .unwrap(),
        )
        .await;
    assert!(plain.is_err(), "no HTTP answer on a TLS port");
    metric_reaches(
        &s.proxy,
        "fulcrum_downstream_tls_handshake_errors_total{listener=\"public\",reason=\"protocol\"}",
        1.0,
    )
    .await;
    // The listener is unharmed.
    let client = Arc::new(s.pki.client(&["h2"]));
    let r = tls_get(addr, client, "a.example.test", "/").await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_expiry_is_exported() {
    let pki = TestPki::new("expiry");
    let cert = pki.leaf_expiring("site", &["site.example.test"], 2031);
    let backend = Backend::start("app-1", Behavior::Echo);
    let proxy = Proxy::start(&app_config(
        1,
        &tls_table(std::slice::from_ref(&cert), ""),
        &endpoints_line(&[&backend]),
    ));
    let series = format!(
        "fulcrum_tls_certificate_expiry_timestamp_seconds{{listener=\"public\",certificate=\"{}\"}}",
        cert.0.display()
    );
    assert_eq!(proxy_metric(&proxy, &series).await, NOT_AFTER_2031);
}

#[test]
fn check_names_the_broken_certificate_setting() {
    let pki = TestPki::new("check");
    let (cert, key) = pki.leaf("site", &["site.example.test"], KeyKind::EcdsaP256);
    let (_, other_key) = pki.leaf("other", &["other.example.test"], KeyKind::EcdsaP256);
    let run_check = |tls: &str| {
        check_config(&app_config(
            1,
            tls,
            "endpoints = [{ address = \"127.0.0.1:9\" }]",
        ))
    };
    let missing = pki.dir.join("missing.pem");
    let (code, stderr) = run_check(&tls_table(&[(missing.clone(), key.clone())], ""));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "listeners[0].tls.certificates[0]: cannot read {}",
            missing.display()
        )),
        "{stderr}"
    );
    let (code, stderr) = run_check(&tls_table(&[(cert.clone(), other_key)], ""));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    let (code, stderr) = run_check(&tls_table(&[(key.clone(), key.clone())], ""));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    let (code, stderr) = run_check(&tls_table(
        &[(cert.clone(), key.clone())],
        "min_version = \"1.1\"\nalpn = [\"h3\"]\ncipher_suites = [\"TLS13_AES_128_GCM_SHA255\"]",
    ));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("unsupported TLS version \"1.1\""),
        "{stderr}"
    );
    assert!(stderr.contains("unknown ALPN protocol \"h3\""), "{stderr}");
    assert!(
        stderr.contains("did you mean \"TLS13_AES_128_GCM_SHA256\""),
        "{stderr}"
    );
    let (code, stderr) = run_check(&tls_table(
        &[(cert.clone(), key.clone())],
        "client_certificate = \"sometimes\"\nclient_certificate_header = \"bad header\"\nsession_ticket_keys = \"/nonexistent/keys\"",
    ));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("unknown client_certificate mode \"sometimes\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("client_certificate needs client_ca"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"bad header\" is not a valid header name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("session_ticket_keys: cannot read /nonexistent/keys"),
        "{stderr}"
    );
    let (code, stderr) = run_check(&tls_table(
        &[(cert.clone(), key.clone())],
        "hsts = \"always\"\n[[listeners]]\nname = \"plain\"\naddress = \"127.0.0.1:0\"\nhttps_port = 8443\n[[listeners.routes]]\ncluster = \"app\"",
    ));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("\"always\" is not a Strict-Transport-Security value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("https_port only goes with `redirect_to_https = true`"),
        "{stderr}"
    );
    // Relative paths start at the config file's directory.
    let path = pki.dir.join("fulcrum.toml");
    std::fs::write(
        &path,
        app_config(
            1,
            "[listeners.tls]\ncertificates = [{ cert = \"site.pem\", key = \"site.key\" }]",
            "endpoints = [{ address = \"127.0.0.1:9\" }]",
        ),
    )
    .unwrap();
    let out = Command::new(fulcrum_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_verified_and_passed_upstream_unforgeably() {
    let pki = TestPki::new("mtls");
    let site = pki.leaf("site", &["site.example.test"], KeyKind::EcdsaP256);
    let (client_cert, client_key) =
        pki.leaf("client", &["client.example.test"], KeyKind::EcdsaP256);
    let stranger_ca = TestPki::new("mtls-stranger");
    let (stranger_cert, stranger_key) =
        stranger_ca.leaf("stranger", &["client.example.test"], KeyKind::EcdsaP256);
    let ca = pki.dir.join("ca.pem");
    let backend = Backend::start("app-1", Behavior::Echo);
    let proxy = Proxy::start(&app_config(
        1,
        &tls_table(
            std::slice::from_ref(&site),
            &format!("client_ca = \"{}\"", ca.display()),
        ),
        &endpoints_line(&[&backend]),
    ));
    let addr = proxy.listener("public");

    // A verified client: its identity goes upstream, replacing a forged one.
    let with_cert = Arc::new(pki.client_with_cert(&["http/1.1"], &client_cert, &client_key));
    let mut conn = TlsConnection::open(addr, with_cert, "site.example.test").await;
    assert_eq!(
        conn.get_with("/", &[("x-forwarded-client-cert", "Subject=\"CN=admin\"")])
            .await,
        200
    );
    let seen = backend.seen.lock().unwrap().clone();
    let values: Vec<&str> = seen[0]
        .headers
        .get_all("x-forwarded-client-cert")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    assert!(values[0].starts_with("Hash="), "{}", values[0]);
    assert!(
        values[0].contains(";Subject=\"CN=client.example.test\""),
        "{}",
        values[0]
    );
    assert!(
        values[0].ends_with(";DNS=client.example.test"),
        "{}",
        values[0]
    );

    // No certificate, or one from another CA: refused.
    let without = Arc::new(pki.client(&["http/1.1"]));
    assert!(
        tls_get(addr, without, "site.example.test", "/")
            .await
            .is_err()
    );
    let stranger = Arc::new(pki.client_with_cert(&["http/1.1"], &stranger_cert, &stranger_key));
    assert!(
        tls_get(addr, stranger, "site.example.test", "/")
            .await
            .is_err()
    );
    metric_reaches(
        &proxy,
        "fulcrum_downstream_tls_handshake_errors_total{listener=\"public\",reason=\"bad_certificate\"}",
        2.0,
    )
    .await;
    assert_eq!(backend.seen.lock().unwrap().len(), 1);

    // Optional mode lets a client without a certificate in, unnamed: a
    // forged header does not reach the backend.
    let backend2 = Backend::start("app-2", Behavior::Echo);
    let optional = Proxy::start(&app_config(
        1,
        &tls_table(
            &[site],
            &format!(
                "client_ca = \"{}\"\nclient_certificate = \"optional\"",
                ca.display()
            ),
        ),
        &endpoints_line(&[&backend2]),
    ));
    let without = Arc::new(pki.client(&["http/1.1"]));
    let mut conn =
        TlsConnection::open(optional.listener("public"), without, "site.example.test").await;
    assert_eq!(
        conn.get_with("/", &[("x-forwarded-client-cert", "Hash=00")])
            .await,
        200
    );
    let seen = backend2.seen.lock().unwrap().clone();
    assert!(seen[0].headers.get("x-forwarded-client-cert").is_none());
    // Plain listeners strip it too.
    let plain_backend = Backend::start("app-3", Behavior::Echo);
    let plain = Proxy::start(&app_config(1, "", &endpoints_line(&[&plain_backend])));
    let req = http::Request::get(plain.url("public", "/"))
        .header("x-forwarded-client-cert", "Hash=00")
        .body(empty())
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.status, 200);
    let seen = plain_backend.seen.lock().unwrap().clone();
    assert!(seen[0].headers.get("x-forwarded-client-cert").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_listener_redirects_to_https_and_tls_responses_carry_hsts() {
    let pki = TestPki::new("hsts");
    let (cert, key) = pki.leaf("site", &["site.example.test"], KeyKind::EcdsaP256);
    let backend = Backend::start("app-1", Behavior::Echo);
    let proxy = Proxy::start(&format!(
        r#"
[admin]
address = "127.0.0.1:0"
[[listeners]]
name = "https"
address = "127.0.0.1:0"
[listeners.tls]
certificates = [{{ cert = "{}", key = "{}" }}]
hsts = "max-age=63072000; includeSubDomains"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "http"
address = "127.0.0.1:0"
redirect_to_https = true
https_port = 8443
[[clusters]]
name = "app"
{}
"#,
        cert.display(),
        key.display(),
        endpoints_line(&[&backend])
    ));
    let http = proxy.listener("http");
    let get = http::Request::get(format!("http://{http}/a/b?c=1"))
        .header("host", "site.example.test:8080")
        .body(empty())
        .unwrap();
    let r = send(&h1_client(), get).await;
    assert_eq!(r.status.as_u16(), 301);
    assert_eq!(
        r.header("location"),
        Some("https://site.example.test:8443/a/b?c=1")
    );
    let post = http::Request::post(format!("http://{http}/form"))
        .header("host", "site.example.test")
        .body(empty())
        .unwrap();
    let r = send(&h1_client(), post).await;
    assert_eq!(r.status.as_u16(), 308, "a POST stays a POST");
    assert_eq!(
        r.header("location"),
        Some("https://site.example.test:8443/form")
    );
    assert_eq!(backend.hits(), 0, "redirects never reach a cluster");

    let client = Arc::new(pki.client(&["h2"]));
    let r = tls_get(proxy.listener("https"), client, "site.example.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("strict-transport-security").unwrap(),
        "max-age=63072000; includeSubDomains"
    );
}
