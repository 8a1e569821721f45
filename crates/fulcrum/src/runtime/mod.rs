//! Process lifecycle: bind sockets, start the worker threads and the control
//! thread, wait for SIGTERM/SIGINT, drain, exit.
//!
//! Workers each run a single-threaded tokio runtime with their own listening
//! sockets and upstream pools (no work stealing, no shared pools). The control
//! thread runs health checks and the admin server on its own runtime, so
//! neither can stall the data path.

mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{Config, ListenerProtocol};
use crate::listener::BoundSocket;
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::Metrics;

/// State shared by workers, the control thread and the admin API.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    /// Set once every listener is bound and the workers run.
    pub ready: AtomicBool,
    /// Set when shutdown begins: `/ready` turns 503 so load balancers in front stop sending.
    pub draining: AtomicBool,
}

/// Where the server ended up listening (ports may have been 0 in the config).
#[derive(Debug, Clone)]
pub struct Bound {
    /// Name, URL scheme (http, https, tcp, udp) and bound address.
    pub listeners: Vec<(String, &'static str, SocketAddr)>,
    pub admin: SocketAddr,
}

/// Runs until SIGTERM or SIGINT, then drains and returns.
pub fn run(config: Config) -> anyhow::Result<()> {
    let workers = config.runtime.workers;
    let drain_timeout = config.runtime.drain_timeout;
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(Snapshot::build(config.clone(), metrics.clone())?),
        metrics,
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
    });

    let signals = Signals::install()?;
    // Bind everything before starting any thread, so a busy port fails the start cleanly.
    let mut per_listener = Vec::new();
    let mut bound = Bound {
        listeners: Vec::new(),
        admin: config.admin.address,
    };
    for l in &config.listeners {
        let sockets: Vec<BoundSocket> = if l.protocol == ListenerProtocol::Udp {
            crate::listener::bind_reuseport_udp(l.address, workers)
                .map(|v| v.into_iter().map(BoundSocket::Datagram).collect())
        } else {
            crate::listener::bind_reuseport(l.address, workers)
                .map(|v| v.into_iter().map(BoundSocket::Stream).collect())
        }
        .with_context(|| {
            format!(
                "cannot listen on {} for listener \"{}\"; is another process using that port? Pick another address or stop that process",
                l.address, l.name
            )
        })?;
        let first = sockets.first().context("no socket bound")?;
        bound
            .listeners
            .push((l.name.clone(), scheme(l), first.local_addr()?));
        per_listener.push(sockets);
    }
    let admin = crate::listener::bind_single(config.admin.address).with_context(|| {
        format!(
            "cannot listen on {} for the admin server; set [admin] address to a free port",
            config.admin.address
        )
    })?;
    bound.admin = admin.local_addr()?;
    announce(&bound);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut threads = Vec::new();
    for id in 0..workers {
        let sockets: Vec<_> = per_listener
            .iter_mut()
            .map(|s| s.pop())
            .collect::<Option<_>>()
            .context("socket per worker")?;
        let shared = shared.clone();
        let rx = shutdown_rx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("fulcrum-worker-{id}"))
                .spawn(move || worker::run(id, sockets, shared, rx, drain_timeout))?,
        );
    }
    let (control_stop_tx, control_stop_rx) = watch::channel(false);
    let control = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("fulcrum-control".into())
            .spawn(move || control(admin, shared, control_stop_rx))?
    };
    shared.ready.store(true, Ordering::SeqCst);
    tracing::info!(workers, "fulcrum is ready");

    signals.wait(|| reload_tls(&shared, "SIGHUP"));
    shared.draining.store(true, Ordering::SeqCst);
    tracing::info!(
        ?drain_timeout,
        "shutting down: stopped accepting, draining in-flight requests"
    );
    let _ = shutdown_tx.send(true);
    for t in threads {
        if t.join().is_err() {
            tracing::error!("a worker thread panicked during shutdown");
        }
    }
    let _ = control_stop_tx.send(true);
    let _ = control.join();
    tracing::info!("shutdown complete");
    Ok(())
}

fn scheme(l: &crate::config::ListenerConfig) -> &'static str {
    match l.protocol {
        ListenerProtocol::Http if l.tls.is_some() => "https",
        ListenerProtocol::Http => "http",
        ListenerProtocol::Tcp | ListenerProtocol::TlsPassthrough => "tcp",
        ListenerProtocol::Udp => "udp",
    }
}

/// Machine-readable start lines on stdout: tests and scripts read the bound ports here.
fn announce(bound: &Bound) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (name, scheme, addr) in &bound.listeners {
        let _ = writeln!(out, "fulcrum: listener {name} on {scheme}://{addr}");
    }
    let _ = writeln!(out, "fulcrum: admin on http://{}", bound.admin);
    let _ = out.flush();
}

/// Re-reads every TLS listener's certificates and ticket keys, and every
/// re-encrypting cluster's CA bundle and client certificate.
fn reload_tls(shared: &Shared, why: &str) {
    let snapshot = shared.snapshot.load();
    for listener in &snapshot.listeners {
        if let Some(tls) = &listener.tls {
            tls.reload(why);
        }
    }
    for cluster in &snapshot.clusters {
        if let Some(tls) = cluster.transport.originator() {
            tls.reload(why);
        }
    }
}

/// How often the control thread looks for changed certificate and key files.
const TLS_FILE_POLL: Duration = Duration::from_secs(2);

fn control(admin: std::net::TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the control runtime; health checks and admin are off");
            return;
        }
    };
    rt.block_on(async move {
        let snapshot = shared.snapshot.load_full();
        crate::cluster::health::spawn_all(&snapshot.clusters, &shared.metrics);
        match tokio::net::TcpListener::from_std(admin) {
            Ok(listener) => {
                tokio::spawn(crate::admin::serve(listener, shared.clone()));
            }
            Err(e) => tracing::error!(error = %e, "admin listener unusable"),
        }
        let watcher = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TLS_FILE_POLL);
            loop {
                tick.tick().await;
                let snapshot = watcher.snapshot.load();
                for listener in &snapshot.listeners {
                    if let Some(tls) = &listener.tls {
                        tls.reload_if_changed();
                    }
                }
                for cluster in &snapshot.clusters {
                    if let Some(tls) = cluster.transport.originator() {
                        tls.reload_if_changed();
                    }
                }
            }
        });
        let _ = stop.changed().await;
    });
    // Dropping the runtime cancels the health-check and admin tasks.
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// SIGTERM/SIGINT (drain) and SIGHUP (reload TLS files) handlers, installed
/// before the bound addresses are announced: a supervisor (or a test) that
/// signals as soon as it reads them must get a drain (or a reload), not the
/// default action of dying on the spot.
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (term, int, hup) = rt.block_on(async {
            anyhow::Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            ))
        })?;
        Ok(Self { rt, term, int, hup })
    }

    /// Returns on SIGTERM or SIGINT; runs `on_hup` for every SIGHUP until then.
    fn wait(mut self, on_hup: impl Fn()) {
        self.rt.block_on(async {
            loop {
                tokio::select! {
                    _ = self.term.recv() => break tracing::info!("received SIGTERM"),
                    _ = self.int.recv() => break tracing::info!("received SIGINT"),
                    _ = self.hup.recv() => {
                        tracing::info!("received SIGHUP: reloading TLS certificates and keys");
                        on_hup();
                    }
                }
            }
        });
    }
}
