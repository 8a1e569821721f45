//! `fulcrum check` and `fulcrum run` on bad configs: exact messages, exit 1;
//! every example config passes.

mod support;

use std::process::Command;

use support::*;

#[test]
fn check_prints_every_problem_and_exits_1() {
    let path = write_config(
        r#"[[listeners]]
name = "public"
address = "127.0.0.1:8080"
[[listeners.routes]]
cluster = "web"

[[clusters]]
name = "api"
policy = "roundrobin"
endpoints = [{ address = "10.0.0.1:80", weight = 0 }]
"#,
    );
    let out = Command::new(fulcrum_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let file = path.display();
    let expected = format!(
        "error: {file}:5:11: listeners[0].routes[0].cluster: route points to cluster \"web\", which is not defined\n  help: defined clusters are: api\n\
         error: {file}:9:10: clusters[0].policy: unknown balancing policy \"roundrobin\"\n  help: did you mean \"round_robin\"?\n\
         error: {file}:10:50: clusters[0].endpoints[0].weight: weight 0 is out of range\n  help: weights start at 1; to take an endpoint out of rotation, drain it (POST /clusters/NAME/endpoints/ADDRESS/drain on the admin API) or remove it and reload\n\
         3 problems in {file}\n"
    );
    assert_eq!(stderr, expected);
}

#[test]
fn run_refuses_a_bad_config_the_same_way() {
    let path = write_config("[admin]\nadress = \"127.0.0.1:1\"\n");
    let out = Command::new(fulcrum_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            ":2:1: admin.adress: unknown field `adress`\n  help: did you mean `address`?"
        ),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_explained() {
    let out = Command::new(fulcrum_bin())
        .args(["check", "--config", "/nonexistent/fulcrum.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot read the file"), "{stderr}");
}

#[test]
fn examples_pass_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let mut path = entry.unwrap().path();
        // Kept alive until the check ran: the certificates tls.toml names.
        let mut _pki = None;
        if path.file_name().is_some_and(|n| n == "tls.toml") {
            let pki = support::tls::TestPki::new("example");
            std::fs::create_dir_all(pki.dir.join("certs")).unwrap();
            for (name, kind) in [
                ("a.example.test", support::tls::KeyKind::EcdsaP256),
                ("b.example.test", support::tls::KeyKind::Rsa2048),
            ] {
                pki.leaf(&format!("certs/{name}"), &[name], kind);
            }
            // The re-encrypting cluster's CA bundle and client certificate.
            std::fs::write(pki.dir.join("certs/origin-ca.pem"), &pki.ca_pem).unwrap();
            pki.leaf(
                "certs/fulcrum-client",
                &["fulcrum.example.test"],
                support::tls::KeyKind::EcdsaP256,
            );
            std::fs::write(
                pki.dir.join("certs/tickets.keys"),
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n",
            )
            .unwrap();
            let copy = pki.dir.join("tls.toml");
            std::fs::copy(&path, &copy).unwrap();
            path = copy;
            _pki = Some(pki);
        }
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(fulcrum_bin())
                .args(["check", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn busy_port_fails_the_start_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let path = write_config(&format!(
        "[admin]\naddress = \"{addr}\"\n[[listeners]]\nname = \"p\"\naddress = \"127.0.0.1:0\"\n[[listeners.routes]]\ncluster = \"c\"\n[[clusters]]\nname = \"c\"\nendpoints = [{{ address = \"127.0.0.1:1\" }}]\n"
    ));
    let out = Command::new(fulcrum_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on {addr} for the admin server")),
        "{stderr}"
    );
}
