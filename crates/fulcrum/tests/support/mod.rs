//! Shared test harness: real backends (including faulty ones) on loopback, the
//! real `fulcrum` binary started from a config, and a real HTTP client.
#![allow(dead_code)]
// Tests poll and wait on wall time (port ready, process exit); the clock ban
// in clippy.toml is for the program, not its harness.
#![allow(clippy::disallowed_methods)]

pub mod l4;
pub mod raw;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// How a test backend behaves. Each is a real server on a real socket.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with the backend's name; `/upload` counts the request body,
    /// `/download/N` streams N bytes, `/status/N` answers status N,
    /// `/delay/MS` waits before answering.
    Echo,
    /// Like Echo but every request waits this long first.
    Delay(Duration),
    /// Like Echo, but answers `status` to `percent` of its requests, spread
    /// evenly (deterministic: request n fails when n * percent / 100 steps).
    Fail { status: u16, percent: u32 },
    /// Accepts, reads the request, then resets the connection (RST).
    Reset,
    /// Accepts and reads but never answers.
    BlackHole,
    /// Like Echo, over TLS with this server config (an origin fulcrum
    /// re-encrypts to). Responses say what the handshake saw: `x-tls-sni`,
    /// `x-tls-alpn` and `x-tls-client-cert` (`present` or `absent`).
    Tls(Arc<rustls::ServerConfig>),
}

/// One request as a backend saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests that reached the backend and have not been answered yet.
    pub in_flight: Arc<AtomicUsize>,
    behavior: Behavior,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start(name: &str, behavior: Behavior) -> Backend {
        Self::start_at(name, behavior, "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_at(name: &str, behavior: Behavior, addr: SocketAddr) -> Backend {
        let listener = std::net::TcpListener::bind(addr).expect("bind backend");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let state = BackendState {
            name: name.to_string(),
            behavior: behavior.clone(),
            hits: hits.clone(),
            seen: seen.clone(),
            in_flight: in_flight.clone(),
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let state = Arc::new(state);
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve_conn(stream, state.clone()));
                    }
                };
                let stop = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                tokio::select! {
                    _ = accept => {},
                    _ = stop => {},
                }
            });
            // Dropping the runtime closes the listener and every connection.
            rt.shutdown_background();
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            seen,
            in_flight,
            behavior,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Stops the server: its port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Starts the same backend again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let again = Backend::start_at(&self.name, self.behavior.clone(), self.addr);
        *self = again;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

struct BackendState {
    name: String,
    behavior: Behavior,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn serve_conn(stream: tokio::net::TcpStream, state: Arc<BackendState>) {
    match state.behavior {
        Behavior::Reset => {
            // Read the whole request head first, so the reset comes after the
            // request was sent (a reset on an idle connection is a different case).
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
            state.hits.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Behavior::BlackHole => {
            state.hits.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        }
        Behavior::Tls(ref config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let (_, conn) = stream.get_ref();
            let sni = conn.server_name().unwrap_or("").to_string();
            let alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            let client_cert = if conn.peer_certificates().is_some_and(|c| !c.is_empty()) {
                "present"
            } else {
                "absent"
            };
            let service = service_fn(move |req| {
                let (state, sni, alpn) = (state.clone(), sni.clone(), alpn.clone());
                async move {
                    let mut resp = handle(state, req).await?;
                    let headers = resp.headers_mut();
                    headers.insert("x-tls-sni", sni.parse().unwrap());
                    headers.insert("x-tls-alpn", alpn.parse().unwrap());
                    headers.insert("x-tls-client-cert", client_cert.parse().unwrap());
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Behavior::Echo | Behavior::Delay(_) | Behavior::Fail { .. } => {
            let service = service_fn(move |req| handle(state.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

async fn handle(
    state: Arc<BackendState>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, Infallible> {
    let n = state.hits.fetch_add(1, Ordering::SeqCst) as u64;
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let mut path = req.uri().path().to_string();
    if let Behavior::Fail { status, percent } = state.behavior {
        let percent = u64::from(percent);
        if (n + 1) * percent / 100 > n * percent / 100 {
            path = format!("/status/{status}");
        }
    }
    state.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        headers: req.headers().clone(),
    });
    if let Behavior::Delay(d) = state.behavior {
        tokio::time::sleep(d).await;
    }
    let mut status = StatusCode::OK;
    let body: BoxBody = if path == "/upload" {
        let mut total: u64 = 0;
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => total += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => break,
            }
        }
        Full::new(Bytes::from(format!("{total}"))).boxed()
    } else if let Some(n) = path.strip_prefix("/download/") {
        let total: usize = n.parse().unwrap_or(0);
        stream_bytes(total)
    } else if let Some(code) = path.strip_prefix("/status/") {
        status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        Full::new(Bytes::from(state.name.clone())).boxed()
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        Full::new(Bytes::from(state.name.clone())).boxed()
    } else {
        Full::new(Bytes::from(state.name.clone())).boxed()
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("x-backend", state.name.parse().unwrap());
    Ok(resp)
}

/// A body of `total` bytes produced in 64 KiB chunks, never held whole.
fn stream_bytes(total: usize) -> BoxBody {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let frames = futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK);
            Some((Ok::<_, Infallible>(Frame::data(chunk.slice(..n))), left - n))
        }
    });
    StreamBody::new(frames).boxed()
}

/// A body of `total` bytes for uploads, generated lazily.
pub fn upload_body(total: usize) -> BoxBody {
    stream_bytes(total)
}

/// The real fulcrum binary, started from a config text.
pub struct Proxy {
    child: Child,
    pub listeners: HashMap<String, SocketAddr>,
    pub admin: SocketAddr,
    pub log: PathBuf,
    /// The file it was started with.
    pub config: PathBuf,
}

static CONFIG_SEQ: AtomicUsize = AtomicUsize::new(0);

pub fn fulcrum_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fulcrum")
}

/// Runs `fulcrum check` on this config text: its exit code and stderr.
pub fn check_config(text: &str) -> (Option<i32>, String) {
    let path = write_config(text);
    let out = Command::new(fulcrum_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

pub fn write_config(text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let n = CONFIG_SEQ.fetch_add(1, Ordering::SeqCst);
    let path = dir.join(format!("fulcrum-test-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

impl Proxy {
    pub fn start(config: &str) -> Proxy {
        Proxy::start_with(config, &[])
    }

    /// `fulcrum run --config FILE` with more arguments (`--upgrade`).
    pub fn start_with(config: &str, args: &[&str]) -> Proxy {
        let path = write_config(config);
        let log = path.with_extension("log");
        let mut child = Command::new(fulcrum_bin())
            .args(["run", "--config"])
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn fulcrum");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listeners = HashMap::new();
        // A hang guard, not a timing assertion: the proxy prints its ports at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        let admin = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "fulcrum did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            };
            if let Some(rest) = line.strip_prefix("fulcrum: listener ") {
                let (name, url) = rest.split_once(" on ").unwrap();
                let (_scheme, addr) = url.split_once("://").unwrap();
                listeners.insert(name.to_string(), addr.parse().unwrap());
            } else if let Some(url) = line.strip_prefix("fulcrum: admin on http://") {
                break url.parse().unwrap();
            }
        };
        Proxy {
            child,
            listeners,
            admin,
            log,
            config: path,
        }
    }

    /// Replaces the config file the proxy was started with (a reload reads it).
    pub fn rewrite_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// Sends SIGHUP (by PID, to this process only): reload the config.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The address of the listener called `name`.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    pub fn url(&self, name: &str, path: &str) -> String {
        format!("http://{}{}", self.listener(name), path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (by PID, to this process only).
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// Peak resident memory of the proxy (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub type TestClient = Client<HttpConnector, BoxBody>;

/// An HTTP/1.1 client with keep-alive.
pub fn h1_client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A cleartext HTTP/2 (prior knowledge) client.
pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// A client that opens a new connection for every request.
pub fn fresh_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(HttpConnector::new())
}

/// A client whose every connection goes to one address whatever the URI
/// names, so a test can use any authority: `http://api.example.com/` is
/// sent with that `Host` (HTTP/1.1) or `:authority` (HTTP/2). An HTTP/2
/// request whose `host` header disagrees with its `:authority` is
/// malformed (RFC 9113 8.3.1), so tests never set both.
pub type PinnedClient = Client<Pinned, BoxBody>;

#[derive(Clone, Debug)]
pub struct Pinned(SocketAddr);

impl tower_service::Service<http::Uri> for Pinned {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let addr = self.0;
        Box::pin(async move { Ok(TokioIo::new(tokio::net::TcpStream::connect(addr).await?)) })
    }
}

/// HTTP/1.1 (`http2 = false`) or h2c to `addr`, for any authority.
pub fn pinned_client(addr: SocketAddr, http2: bool) -> PinnedClient {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(Pinned(addr))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn get(client: &TestClient, url: &str) -> Reply {
    send(client, Request::get(url).body(empty()).unwrap()).await
}

pub async fn send<C>(client: &Client<C, BoxBody>, req: Request<BoxBody>) -> Reply
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let resp = client.request(req).await.expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn empty() -> BoxBody {
    Full::new(Bytes::new()).boxed()
}

/// Polls `f` until it returns true; a hang guard of 30 s, not a timing assertion.
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for: {what}");
}

/// POSTs to the admin API (a write action), with a bearer token if given;
/// returns the status and body.
pub async fn admin_post(proxy: &Proxy, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = Request::post(proxy.admin_url(path));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let reply = send(&h1_client(), req.body(empty()).unwrap()).await;
    (reply.status.as_u16(), reply.body)
}

/// The generation of the config in force (admin `/config`).
pub async fn config_generation(proxy: &Proxy) -> u64 {
    let reply = get(&h1_client(), &proxy.admin_url("/config")).await;
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    v["generation"].as_u64().unwrap()
}

/// GET the admin `/clusters` JSON.
pub async fn clusters(proxy: &Proxy) -> serde_json::Value {
    let reply = get(&h1_client(), &proxy.admin_url("/clusters")).await;
    serde_json::from_str(&reply.body).unwrap()
}

/// Config text with `{b0}`, `{b1}`... replaced by backend addresses.
pub fn config_with(template: &str, backends: &[&Backend]) -> String {
    let mut text = template.to_string();
    for (i, b) in backends.iter().enumerate() {
        text = text.replace(&format!("{{b{i}}}"), &b.addr.to_string());
    }
    text
}

/// The config most tests need: admin and one listener "public" on ephemeral
/// loopback ports, one route to one cluster "app". `route` and `cluster` are
/// extra TOML lines for the route table and the cluster table.
pub fn app_config(workers: usize, route: &str, cluster: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = {workers}
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[listeners.routes]]
cluster = "app"
{route}
[[clusters]]
name = "app"
{cluster}
"#
    )
}

/// `endpoints = [...]` for these backends, weights omitted.
pub fn endpoints_line(backends: &[&Backend]) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ address = \"{}\" }}", b.addr))
        .collect();
    format!("endpoints = [{}]", list.join(", "))
}

/// One series' value from the proxy's `/metrics` (0 when absent).
pub async fn proxy_metric(proxy: &Proxy, series: &str) -> f64 {
    get(&h1_client(), &proxy.admin_url("/metrics"))
        .await
        .body
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}
