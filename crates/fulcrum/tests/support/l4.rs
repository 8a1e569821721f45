//! Raw TCP and UDP peers for the L4 tests: real sockets, blocking std I/O,
//! one thread per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpMode {
    /// Reads to EOF, then answers `NAME:` + everything read and closes: a
    /// reply only arrives if the client's FIN went through (half-close).
    Collect,
    /// Sends `NAME\n` at once, then echoes every byte until EOF.
    Echo,
}

pub struct TcpBackend {
    pub name: String,
    pub addr: SocketAddr,
    /// Everything each connection sent, in accept order (Collect mode).
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TcpBackend {
    pub fn start(name: &str, mode: TcpMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, r, a, s) = (
            name.to_string(),
            received.clone(),
            accepted.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let (n, r) = (n.clone(), r.clone());
                std::thread::spawn(move || serve_tcp(conn, &n, mode, &r));
            }
        });
        Self {
            name: name.to_string(),
            addr,
            received,
            accepted,
            stop,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve_tcp(mut conn: TcpStream, name: &str, mode: TcpMode, received: &Mutex<Vec<Vec<u8>>>) {
    match mode {
        TcpMode::Collect => {
            let mut all = Vec::new();
            if conn.read_to_end(&mut all).is_err() {
                return;
            }
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&all);
            received.lock().unwrap().push(all);
            let _ = conn.write_all(&reply);
        }
        TcpMode::Echo => {
            if conn.write_all(format!("{name}\n").as_bytes()).is_err() {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A loopback port with nothing listening, kept reserved while this
/// lives: connects to it are refused. (Binding a port and letting it go
/// was racy: another test's server could take it meanwhile.)
pub struct ClosedPort {
    _socket: socket2::Socket,
    pub addr: SocketAddr,
}

pub fn closed_port() -> ClosedPort {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    ClosedPort {
        _socket: socket,
        addr,
    }
}

/// Connects, sends `payload`, half-closes, and returns everything the other
/// side sent until it closed.
pub fn tcp_exchange(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Reads one `\n`-terminated line (the Echo backend's greeting).
pub fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// True when the server closed (or reset) the connection without sending.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 1];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

/// A UDP backend answering every datagram with `NAME:` + the datagram.
pub struct UdpBackend {
    pub name: String,
    pub addr: SocketAddr,
    /// Distinct source addresses it has seen (one per fulcrum session).
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl UdpBackend {
    pub fn start(name: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (n, s, p) = (name.to_string(), stop.clone(), peers.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65_535];
            while !s.load(Ordering::SeqCst) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                {
                    let mut p = p.lock().unwrap();
                    if !p.contains(&from) {
                        p.push(from);
                    }
                }
                let mut reply = format!("{n}:").into_bytes();
                reply.extend_from_slice(&buf[..len]);
                let _ = socket.send_to(&reply, from);
            }
        });
        Self {
            name: name.to_string(),
            addr,
            peers,
            stop,
        }
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Sends `payload` from `socket` to `to`; returns the reply and where it came from.
pub fn udp_ask(socket: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Option<(String, SocketAddr)> {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(payload, to).unwrap();
    let mut buf = [0u8; 65_535];
    let (n, from) = socket.recv_from(&mut buf).ok()?;
    Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

/// GET an admin path with a plain HTTP/1.0 request (sync tests).
pub fn admin_get(admin: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: admin\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of one Prometheus sample, 0 when absent: `name{labels}` must
/// match the start of the line exactly.
pub fn metric(admin: SocketAddr, series: &str) -> f64 {
    admin_get(admin, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Polls `f` until true; a 30 s hang guard, not a timing assertion.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("gave up waiting for: {what}");
}

/// Config for one L4 listener `listener` (`protocol`) forwarding to one
/// cluster `cluster` of `endpoints`, admin and listener on ephemeral ports;
/// `listener_extra` and `cluster_extra` are extra TOML lines for each table.
pub fn l4_config(
    protocol: &str,
    listener: &str,
    cluster: &str,
    listener_extra: &str,
    cluster_extra: &str,
    endpoints: &[SocketAddr],
) -> String {
    let list: Vec<String> = endpoints
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
[[listeners]]
name = "{listener}"
address = "127.0.0.1:0"
protocol = "{protocol}"
cluster = "{cluster}"
{listener_extra}
[[clusters]]
name = "{cluster}"
endpoints = [{}]
{cluster_extra}
"#,
        list.join(", ")
    )
}
