//! TLS files that change while fulcrum runs: a new certificate serves new
//! handshakes while open connections carry on, a broken file is refused and
//! the old certificate kept; two instances sharing a session-ticket key file
//! resume each other's sessions, and rotating the file keeps or retires old
//! tickets as documented; a replaced client CA bundle decides who gets in;
//! a re-encrypting cluster's CA bundle and client certificate are reloaded.

mod support;

use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use support::tls::*;
use support::*;

fn hup(proxy: &Proxy) {
    let status = Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Writes a ticket-key file with one key per seed byte, atomically (rename).
fn write_keys(path: &std::path::Path, seeds: &[u8]) {
    let text: Vec<String> = seeds
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.encode([*s; 48]))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_certificate_serves_new_handshakes_and_open_connections_carry_on() {
    let pki = TestPki::new("reload");
    let (cert, key) = pki.leaf("site", &["site.example.test"], KeyKind::EcdsaP256);
    let backend = Backend::start("app-1", Behavior::Echo);
    let proxy = Proxy::start(&app_config(
        1,
        &tls_table(&[(cert.clone(), key.clone())], ""),
        &endpoints_line(&[&backend]),
    ));
    let addr = proxy.listener("public");
    let client = Arc::new(pki.client(&["http/1.1"]));
    let mut open = TlsConnection::open(addr, client, "site.example.test").await;
    assert_eq!(open.served_names, ["site.example.test"]);
    assert_eq!(open.get("/").await, 200);

    // Version 2 (one more name), written beside the old files and renamed
    // into place, as a certificate manager does.
    let (cert2, key2) = pki.leaf(
        "site-v2",
        &["site.example.test", "v2.example.test"],
        KeyKind::Rsa2048,
    );
    std::fs::rename(&key2, &key).unwrap();
    std::fs::rename(&cert2, &cert).unwrap();
    hup(&proxy);
    // A fresh client each time: a resumed session would report the
    // certificate of the session it resumed.
    eventually("new handshakes get the new certificate", async || {
        let fresh = Arc::new(pki.client(&["http/1.1"]));
        tls_get(addr, fresh, "site.example.test", "/")
            .await
            .is_ok_and(|r| r.status == 200 && r.served_names.len() == 2)
    })
    .await;
    assert_eq!(
        open.get("/").await,
        200,
        "the connection opened before the reload carries on"
    );

    // A broken file is refused; the certificate in use keeps serving.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    hup(&proxy);
    eventually("the refusal is logged", async || {
        proxy.logs().contains("keeping the certificates in use")
    })
    .await;
    let fresh = Arc::new(pki.client(&["http/1.1"]));
    let r = tls_get(addr, fresh, "site.example.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.served_names, ["site.example.test", "v2.example.test"]);
    let failures = proxy_metric(
        &proxy,
        "fulcrum_tls_reload_failures_total{listener=\"public\"}",
    )
    .await;
    assert!(failures >= 1.0, "{failures}");
    assert!(
        proxy
            .logs()
            .contains("holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"),
        "the log says what is wrong with the file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_sharing_a_ticket_key_file_resume_each_others_sessions() {
    let pki = TestPki::new("tickets");
    let site = pki.leaf("site", &["site.example.test"], KeyKind::EcdsaP256);
    let keys = pki.dir.join("tickets.keys");
    write_keys(&keys, &[1]);
    let backend = Backend::start("app-1", Behavior::Echo);
    let config = app_config(
        1,
        &tls_table(
            &[site],
            &format!("session_ticket_keys = \"{}\"", keys.display()),
        ),
        &endpoints_line(&[&backend]),
    );
    let a = Proxy::start(&config);
    let b = Proxy::start(&config);
    let (a_addr, b_addr) = (a.listener("public"), b.listener("public"));

    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let client = Arc::new(pki.client_with_versions(&["h2"], versions));
        let first = tls_get(a_addr, client.clone(), "site.example.test", "/")
            .await
            .unwrap();
        assert!(!first.resumed);
        let second = tls_get(b_addr, client, "site.example.test", "/")
            .await
            .unwrap();
        assert!(
            second.resumed,
            "{versions:?}: b resumed a session a started"
        );
        assert_eq!(second.status, 200);
    }

    // Two clients hold tickets sealed with key 1.
    let rotated_client = Arc::new(pki.client(&["h2"]));
    let retired_client = Arc::new(pki.client(&["h2"]));
    for c in [&rotated_client, &retired_client] {
        assert!(
            !tls_get(a_addr, c.clone(), "site.example.test", "/")
                .await
                .unwrap()
                .resumed
        );
    }
    // Rotation: key 2 encrypts from now on, key 1 still decrypts.
    write_keys(&keys, &[2, 1]);
    hup(&b);
    eventually("b reloads two keys", async || b.logs().contains("keys=2")).await;
    let r = tls_get(b_addr, rotated_client, "site.example.test", "/")
        .await
        .unwrap();
    assert!(r.resumed, "a key-1 ticket resumes after the rotation");
    // Retirement: key 1 is gone, so its tickets get a full handshake.
    write_keys(&keys, &[2]);
    hup(&b);
    eventually("b reloads one key", async || b.logs().contains("keys=1")).await;
    let r = tls_get(b_addr, retired_client, "site.example.test", "/")
        .await
        .unwrap();
    assert!(
        !r.resumed,
        "a key-1 ticket is refused once key 1 is retired"
    );
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_client_ca_decides_which_client_certificates_get_in() {
    let pki = TestPki::new("ca-reload");
    let other = TestPki::new("ca-reload-other");
    let site = pki.leaf("site", &["site.example.test"], KeyKind::EcdsaP256);
    let (old_cert, old_key) = pki.leaf("old-client", &["old.example.test"], KeyKind::EcdsaP256);
    let (new_cert, new_key) = other.leaf("new-client", &["new.example.test"], KeyKind::EcdsaP256);
    let client_ca = pki.dir.join("clients.pem");
    std::fs::write(&client_ca, &pki.ca_pem).unwrap();
    let backend = Backend::start("app-1", Behavior::Echo);
    let proxy = Proxy::start(&app_config(
        1,
        &tls_table(&[site], &format!("client_ca = \"{}\"", client_ca.display())),
        &endpoints_line(&[&backend]),
    ));
    let addr = proxy.listener("public");
    let old = Arc::new(pki.client_with_cert(&["http/1.1"], &old_cert, &old_key));
    let new = Arc::new(pki.client_with_cert(&["http/1.1"], &new_cert, &new_key));
    assert!(
        tls_get(addr, old.clone(), "site.example.test", "/")
            .await
            .is_ok()
    );
    assert!(
        tls_get(addr, new.clone(), "site.example.test", "/")
            .await
            .is_err()
    );

    // An unreadable bundle is refused; the CA in use keeps deciding.
    std::fs::write(&client_ca, "not a certificate\n").unwrap();
    hup(&proxy);
    support::eventually("the broken client CA is refused", async || {
        proxy.logs().contains("client_ca cannot be loaded")
    })
    .await;
    assert!(
        tls_get(addr, old.clone(), "site.example.test", "/")
            .await
            .is_ok()
    );

    // The other CA replaces it (renamed into place): its clients get in, the old ones no longer do.
    let tmp = pki.dir.join("clients.tmp");
    std::fs::write(&tmp, &other.ca_pem).unwrap();
    std::fs::rename(&tmp, &client_ca).unwrap();
    hup(&proxy);
    support::eventually("the new client CA admits its clients", async || {
        tls_get(addr, new.clone(), "site.example.test", "/")
            .await
            .is_ok()
    })
    .await;
    // The old client holds a session verified under the old CA: it must not
    // resume past the change (sessions are bound to the CA bundle).
    assert!(tls_get(addr, old, "site.example.test", "/").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clusters_ca_bundle_and_client_certificate_reload_without_a_restart() {
    let pki = TestPki::new("upstream-reload");
    let stranger = TestPki::new("upstream-reload-other");
    let leaf = pki.leaf("origin", &["origin.internal"], KeyKind::EcdsaP256);
    // The origin requires a client certificate signed by `pki`'s CA.
    let origin = Backend::start(
        "origin",
        Behavior::Tls(pki.origin(&leaf, &["http/1.1"], true)),
    );
    let good = pki.leaf("fulcrum-client", &["fulcrum.internal"], KeyKind::EcdsaP256);
    let bad = stranger.leaf("fulcrum-client", &["fulcrum.internal"], KeyKind::EcdsaP256);
    // fulcrum starts with the wrong CA bundle and the wrong client certificate.
    let files = pki.dir.join("fulcrum");
    std::fs::create_dir_all(&files).unwrap();
    let (ca, cert, key) = (
        files.join("ca.pem"),
        files.join("client.pem"),
        files.join("client.key"),
    );
    std::fs::write(&ca, &stranger.ca_pem).unwrap();
    std::fs::copy(&bad.0, &cert).unwrap();
    std::fs::copy(&bad.1, &key).unwrap();
    let cluster = format!(
        "endpoints = [{{ address = \"{}\" }}]\n[clusters.tls]\nca = \"{}\"\nsni = \"origin.internal\"\ncertificate = {{ cert = \"{}\", key = \"{}\" }}",
        origin.addr,
        path_str(&ca),
        path_str(&cert),
        path_str(&key)
    );
    let proxy = Proxy::start(&app_config(1, "", &cluster));
    let client = h1_client();
    let url = proxy.url("public", "/x");
    let reply = get(&client, &url).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        reply.header("x-fulcrum-reason"),
        Some("upstream_tls_failure")
    );

    // The right CA and certificate, then SIGHUP: new connections use both
    // (the origin verifies, and accepts fulcrum's certificate).
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::copy(&good.0, &cert).unwrap();
    std::fs::copy(&good.1, &key).unwrap();
    hup(&proxy);
    support::eventually("the reloaded CA and certificate are used", async || {
        let r = get(&client, &url).await;
        r.status == 200 && r.header("x-tls-client-cert") == Some("present")
    })
    .await;
    assert_eq!(origin.hits(), 1, "nothing reached the origin unverified");

    // A broken CA file is refused and the working one stays.
    std::fs::write(&ca, "not a certificate\n").unwrap();
    hup(&proxy);
    support::eventually("the refused reload is counted", async || {
        proxy_metric(
            &proxy,
            "fulcrum_upstream_tls_reload_failures_total{cluster=\"app\"}",
        )
        .await
            >= 1.0
    })
    .await;
    assert!(
        proxy
            .logs()
            .contains("upstream TLS files cannot be loaded; keeping the ones in use"),
        "{}",
        proxy.logs()
    );
    let reply = get(&fresh_client(), &url).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
