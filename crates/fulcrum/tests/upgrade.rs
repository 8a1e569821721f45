//! Seamless binary upgrade through the real binary: a successor (`run
//! --upgrade`, or started by SIGUSR2) takes the listening sockets over while
//! clients open a new connection for every request, and not one is refused.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::l4::{TcpBackend, TcpMode, read_line};
use support::*;

fn upgrade_socket() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "fulcrum-upgrade-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

fn config(app: SocketAddr, raw: SocketAddr, socket: &std::path::Path) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
shutdown_delay = "0s"
upgrade_socket = "{}"
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[listeners.routes]]
cluster = "app"
[[listeners]]
name = "tcp"
address = "127.0.0.1:0"
protocol = "tcp"
cluster = "raw"
[[clusters]]
name = "app"
endpoints = [{{ address = "{app}" }}]
[[clusters]]
name = "raw"
endpoints = [{{ address = "{raw}" }}]
"#,
        socket.display()
    )
}

/// One request on a new connection: the status line, or what went wrong.
fn one_request(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    if reply.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("reply: {reply:?}"))
    }
}

/// Clients that each open a new connection per request until stopped
/// (bounded by count too); returns the successes and the failures.
fn load(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, Vec::new());
        for _ in 0..100_000 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match one_request(addr) {
                Ok(()) => ok += 1,
                Err(e) => failed.push(e),
            }
        }
        (ok, failed)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successor_takes_the_sockets_over_and_no_connection_is_refused() {
    let app = Backend::start("app", Behavior::Echo);
    let raw = TcpBackend::start("raw", TcpMode::Echo);
    let socket = upgrade_socket();
    let text = config(app.addr, raw.addr, &socket);
    let mut old = Proxy::start(&text);
    let addr = old.listener("public");
    // A request in flight and an L4 flow open on the old process.
    let slow = old.url("public", "/delay/1500");
    let in_flight = tokio::spawn(async move { get(&fresh_client(), &slow).await });
    let mut flow = TcpStream::connect(old.listener("tcp")).unwrap();
    flow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(read_line(&mut flow), "raw");
    eventually("the slow request reached the backend", async || {
        app.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2).map(|_| load(addr, stop.clone())).collect();
    let new = Proxy::start_with(&text, &["--upgrade"]);
    assert_eq!(
        new.listener("public"),
        addr,
        "the same socket, not a new one"
    );
    assert_eq!(new.listener("tcp"), old.listener("tcp"));
    assert_eq!(new.admin, old.admin, "the admin socket went over too");
    // The old process still carries its open flow; once it ends, nothing
    // holds the old process back.
    flow.write_all(b"still here").unwrap();
    let mut echoed = [0u8; 10];
    flow.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"still here");
    drop(flow);
    let old_status = tokio::task::spawn_blocking(move || {
        let status = old.wait();
        (status, old.logs())
    })
    .await
    .unwrap();
    assert!(old_status.0.success(), "{}", old_status.1);
    assert!(old_status.1.contains("the successor serves on our sockets"));
    // Some more requests, all on the successor now.
    for _ in 0..20 {
        one_request(addr).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for client in clients {
        let (ok, failed) = client.join().unwrap();
        assert!(
            failed.is_empty(),
            "{} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        total += ok;
    }
    assert!(total > 0);
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the old process finished its request");
    assert!(
        proxy_metric(
            &new,
            "fulcrum_downstream_connections_total{listener=\"public\"}"
        )
        .await
            >= 20.0
    );
    assert!(
        new.logs()
            .contains("took over the running fulcrum's listening sockets")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigusr2_starts_the_successor_from_the_same_binary() {
    let app = Backend::start("app", Behavior::Echo);
    let raw = TcpBackend::start("raw", TcpMode::Echo);
    let socket = upgrade_socket();
    let mut old = Proxy::start(&config(app.addr, raw.addr, &socket));
    let addr = old.listener("public");
    let stop = Arc::new(AtomicBool::new(false));
    let client = load(addr, stop.clone());
    let status = std::process::Command::new("kill")
        .args(["-USR2", &old.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, logs) = tokio::task::spawn_blocking(move || {
        let status = old.wait();
        (status, old.logs())
    })
    .await
    .unwrap();
    assert!(status.success(), "{logs}");
    // The successor shares the log file; stop it by its PID when done.
    let successor: u32 = logs
        .lines()
        .find(|l| l.contains("started the successor"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no successor pid in the log:\n{logs}"));
    let served = (0..20)
        .map(|_| one_request(addr))
        .collect::<Result<Vec<_>, _>>();
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = client.join().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &successor.to_string()])
        .status();
    served.expect("the successor serves");
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok > 0);
}
