//! TLS 1.3 0-RTT (`early_data = true`) with a real rustls client that sends
//! its request as early data on a resumed session: a safe method is
//! forwarded before the handshake completes, marked `Early-Data: 1`; an
//! unsafe one is answered 425 and never reaches the origin; a request after
//! the handshake on the same connection is ordinary. Off by default, and
//! refused with shared ticket keys or client certificates.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use support::tls::*;
use support::*;

const HOST: &str = "site.example.test";

/// One HTTP/1.1 response read off a TLS connection.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response (Content-Length framed, as fulcrum and the test
/// backend send) from `conn` over `sock`.
fn read_answer(conn: &mut ClientConnection, sock: &mut TcpStream) -> Answer {
    let mut tls = rustls::Stream::new(conn, sock);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                return Answer { status, head, body };
            }
        }
        let n = tls.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed before a full response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: SocketAddr, client: &Arc<ClientConfig>) -> (ClientConnection, TcpStream) {
    let conn = ClientConnection::new(client.clone(), ServerName::try_from(HOST).unwrap()).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (conn, sock)
}

/// A full handshake and one request: the client keeps the session tickets.
fn first_visit(addr: SocketAddr, client: &Arc<ClientConfig>) {
    let (mut conn, mut sock) = connect(addr, client);
    rustls::Stream::new(&mut conn, &mut sock)
        .write_all(format!("GET /first HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    let a = read_answer(&mut conn, &mut sock);
    assert_eq!(a.status, 200);
    assert!(conn.early_data().is_none(), "not a resumption");
}

/// Resumes and sends `request` as early data; `None` if the server's ticket
/// did not allow early data.
fn early_request(
    addr: SocketAddr,
    client: &Arc<ClientConfig>,
    request: &str,
) -> Option<(ClientConnection, TcpStream)> {
    let (mut conn, sock) = connect(addr, client);
    let mut early = conn.early_data()?;
    early.write_all(request.as_bytes()).unwrap();
    Some((conn, sock))
}

fn early_client(pki: &TestPki) -> Arc<ClientConfig> {
    let mut client = pki.client_with_versions(&["http/1.1"], &[&rustls::version::TLS13]);
    client.enable_early_data = true;
    Arc::new(client)
}

#[tokio::test(flavor = "multi_thread")]
async fn early_data_forwards_safe_methods_marked_and_refuses_the_rest() {
    let pki = TestPki::new("early");
    let site = pki.leaf("site", &[HOST], KeyKind::EcdsaP256);
    let backend = Backend::start("app-1", Behavior::Echo);
    let config = app_config(
        1,
        &tls_table(&[site], "early_data = true"),
        &endpoints_line(&[&backend]),
    );
    let proxy = Proxy::start(&config);
    let addr = proxy.listener("public");
    let client = early_client(&pki);

    let (after_get, after_post) = tokio::task::spawn_blocking({
        let client = client.clone();
        move || {
            first_visit(addr, &client);

            // GET in early data: forwarded before the handshake completes.
            let (mut conn, mut sock) = early_request(
                addr,
                &client,
                &format!("GET /early HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            )
            .expect("the session allows early data");
            let a = read_answer(&mut conn, &mut sock);
            assert!(conn.is_early_data_accepted(), "server accepted 0-RTT");
            assert_eq!((a.status, a.body.as_str()), (200, "app-1"), "{}", a.head);
            // The same connection after the handshake: an ordinary request.
            rustls::Stream::new(&mut conn, &mut sock)
                .write_all(
                    format!("POST /later HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
            let a = read_answer(&mut conn, &mut sock);
            assert_eq!(a.status, 200, "{}", a.head);

            // POST in early data: 425, and the origin never sees it.
            let (mut conn, mut sock) = early_request(
                addr,
                &client,
                &format!("POST /order HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n"),
            )
            .expect("the session allows early data");
            let a = read_answer(&mut conn, &mut sock);
            assert!(conn.is_early_data_accepted());
            assert_eq!(a.status, 425, "{}", a.head);
            assert!(
                a.head
                    .to_ascii_lowercase()
                    .contains("x-fulcrum-reason: too_early"),
                "{}",
                a.head
            );
            (a.status, a.body)
        }
    })
    .await
    .unwrap();
    assert_eq!(after_get, 425);
    assert!(after_post.contains("early data"), "{after_post}");

    let seen = backend.seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/first", "/early", "/later"], "no /order upstream");
    let early_header = |i: usize| seen[i].headers.get("early-data").cloned();
    assert_eq!(early_header(0), None, "full handshake");
    assert_eq!(early_header(1).unwrap(), "1", "forwarded from early data");
    assert_eq!(early_header(2), None, "after the handshake completed");

    let series = |outcome: &str| {
        format!(
            "fulcrum_downstream_early_data_requests_total{{listener=\"public\",outcome=\"{outcome}\"}}"
        )
    };
    assert_eq!(proxy_metric(&proxy, &series("forwarded")).await, 1.0);
    assert_eq!(proxy_metric(&proxy, &series("too_early")).await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn early_data_is_off_by_default() {
    let pki = TestPki::new("no-early");
    let site = pki.leaf("site", &[HOST], KeyKind::EcdsaP256);
    let backend = Backend::start("app-1", Behavior::Echo);
    let config = app_config(1, &tls_table(&[site], ""), &endpoints_line(&[&backend]));
    let proxy = Proxy::start(&config);
    let addr = proxy.listener("public");
    let client = early_client(&pki);
    let offered = tokio::task::spawn_blocking(move || {
        first_visit(addr, &client);
        // The session resumes, but its ticket allows no early data.
        let (mut conn, mut sock) = connect(addr, &client);
        let offered = conn.early_data().is_some();
        rustls::Stream::new(&mut conn, &mut sock)
            .write_all(format!("GET /again HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
            .unwrap();
        let a = read_answer(&mut conn, &mut sock);
        assert_eq!(a.status, 200);
        assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        offered
    })
    .await
    .unwrap();
    assert!(!offered, "0-RTT offered though early_data is off");
    assert!(
        backend
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.headers.get("early-data").is_none())
    );
}

#[test]
fn early_data_is_refused_with_shared_ticket_keys_or_client_certificates() {
    let pki = TestPki::new("early-check");
    let site = pki.leaf("site", &[HOST], KeyKind::EcdsaP256);
    let keys = pki.dir.join("tickets.keys");
    std::fs::write(&keys, "").unwrap();
    let ca = pki.dir.join("ca.pem");
    let (code, stderr) = check_config(&app_config(
        1,
        &tls_table(
            &[site],
            &format!(
                "early_data = true\nsession_ticket_keys = \"{}\"\nclient_ca = \"{}\"",
                keys.display(),
                ca.display()
            ),
        ),
        "endpoints = [{ address = \"127.0.0.1:9\" }]",
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("early_data cannot be combined with session_ticket_keys"),
        "{stderr}"
    );
    assert!(
        stderr.contains("early_data cannot be combined with client_ca"),
        "{stderr}"
    );
    assert!(stderr.contains("remove session_ticket_keys"), "{stderr}");
}
