//! `fulcrum demo`: three built-in backends on loopback with different latency
//! profiles, the load balancer in front of them and its admin server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// How a demo backend answers.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    /// Answers at once.
    Fast,
    /// 5-15 ms.
    Medium,
    /// Usually 2 ms, but one request in ten takes 250 ms: a slow tail that
    /// least-request balancing steers around.
    SlowTail,
}

impl Profile {
    fn delay(self) -> Duration {
        match self {
            Profile::Fast => Duration::ZERO,
            Profile::Medium => Duration::from_millis(fastrand::u64(5..=15)),
            Profile::SlowTail if fastrand::u8(0..10) == 0 => Duration::from_millis(250),
            Profile::SlowTail => Duration::from_millis(2),
        }
    }
}

pub const BACKENDS: [(&str, Profile); 3] = [
    ("fast", Profile::Fast),
    ("medium", Profile::Medium),
    ("slow-tail", Profile::SlowTail),
];

/// Serves one demo backend on `listener` forever.
pub async fn serve_backend(
    listener: tokio::net::TcpListener,
    name: &'static str,
    profile: Profile,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| async move {
                if req.uri().path() != "/healthz" {
                    tokio::time::sleep(profile.delay()).await;
                }
                let body = format!(
                    "hello from {name} ({} {})\n",
                    req.method(),
                    req.uri().path()
                );
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                resp.headers_mut()
                    .insert("x-backend", http::HeaderValue::from_static(name));
                Ok::<_, Infallible>(resp)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The demo's config, written in the same TOML a user would write: the three
/// backends behind `least_request` with HTTP health checks. At the rate of a
/// person running curl, least_request spreads requests over all three;
/// `peak_ewma`, the default, would send nearly all of them to the fastest.
pub fn config_text(
    listen: SocketAddr,
    admin: SocketAddr,
    backends: &[SocketAddr],
    workers: usize,
) -> String {
    let endpoints: Vec<String> = backends
        .iter()
        .zip(BACKENDS)
        .map(|(addr, (name, _))| format!("  {{ address = \"{addr}\", zone = \"{name}\" }},"))
        .collect();
    format!(
        r#"[admin]
address = "{admin}"

[runtime]
workers = {workers}
# Nothing sits in front of a demo to notice /ready failing: stop at once.
shutdown_delay = "0s"

[[listeners]]
name = "demo"
address = "{listen}"

[[listeners.routes]]
cluster = "demo"

[[clusters]]
name = "demo"
policy = "least_request"
endpoints = [
{}
]

[clusters.health_check]
type = "http"
path = "/healthz"
interval = "1s"
"#,
        endpoints.join("\n")
    )
}

/// Starts the backends on their own thread and returns their addresses.
pub fn start_backends() -> anyhow::Result<Vec<SocketAddr>> {
    let mut listeners = Vec::new();
    for _ in BACKENDS {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.set_nonblocking(true)?;
        listeners.push(l);
    }
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::Builder::new().name("fulcrum-demo-backends".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "demo backends cannot start");
                return;
            }
        };
        rt.block_on(async move {
            for (l, (name, profile)) in listeners.into_iter().zip(BACKENDS) {
                match tokio::net::TcpListener::from_std(l) {
                    Ok(l) => {
                        tokio::spawn(serve_backend(l, name, profile));
                    }
                    Err(e) => tracing::error!(error = %e, backend = name, "demo backend cannot listen"),
                }
            }
            std::future::pending::<()>().await;
        });
    })?;
    Ok(addrs)
}
