//! Process lifecycle: bind sockets, start the worker threads and the control
//! thread, wait for SIGTERM/SIGINT, drain, exit.
//!
//! Workers each run a single-threaded tokio runtime with their own listening
//! sockets and upstream pools (no work stealing, no shared pools). The control
//! thread runs health checks and the admin server on its own runtime, so
//! neither can stall the data path.

mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::{self, Bound, Control, Shared};

/// The admin socket's name in a binary upgrade's hand-over.
const ADMIN_SOCKET: &str = "(admin)";

/// Runs until SIGTERM or SIGINT (or a successor took over), then drains and
/// returns. `config_path` is where reloads read the config from (none for
/// the demo); with `upgrade`, the listening sockets are taken over from the
/// fulcrum running at `runtime.upgrade_socket`, which then drains.
pub fn run(config: Config, config_path: Option<PathBuf>, upgrade: bool) -> anyhow::Result<()> {
    let workers = config.runtime.workers;
    let admin_address = config.admin.address;
    let upgrade_socket = config.runtime.upgrade_socket.clone();
    for warning in crate::config::warnings(&config) {
        tracing::warn!("{warning}");
    }
    let signals = Signals::install()?;
    let (mut inherited, predecessor) = if upgrade {
        let path = upgrade_socket.as_deref().context(
            "--upgrade needs runtime.upgrade_socket in the config: the socket where the running fulcrum hands its listening sockets over",
        )?;
        let (inherited, predecessor) = crate::upgrade::take_over(path)?;
        tracing::info!(
            sockets = inherited.len(),
            "binary upgrade: took over the running fulcrum's listening sockets"
        );
        (inherited, Some(predecessor))
    } else {
        (Vec::new(), None)
    };
    let inherited_admin = inherited
        .iter()
        .position(|i| i.listener == ADMIN_SOCKET && i.configured == admin_address)
        .map(|i| inherited.remove(i).socket);
    let shutdown = CancellationToken::new();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| tokio::sync::mpsc::unbounded_channel())
        .unzip();
    let control_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    // Binds every listener before starting any thread, so a busy port fails the start cleanly.
    let (control, shared, bound) = Control::start(
        config,
        config_path,
        senders,
        shutdown.clone(),
        control_rt.handle().clone(),
        inherited,
    )?;
    let admin = match inherited_admin {
        Some(crate::listener::BoundSocket::Stream(admin)) => admin,
        _ => crate::listener::bind_single(admin_address).with_context(|| {
            format!("cannot listen on {admin_address} for the admin server; set [admin] address to a free port")
        })?,
    };
    let admin_copy = admin.try_clone()?;
    announce(&bound, admin.local_addr()?);

    let mut threads = Vec::new();
    for (id, commands) in receivers.into_iter().enumerate() {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("fulcrum-worker-{id}"))
                .spawn(move || worker::run(id, commands, shared, shutdown))?,
        );
    }
    let control_stop = CancellationToken::new();
    let control_thread = {
        let (shared, control, stop) = (shared.clone(), control.clone(), control_stop.clone());
        std::thread::Builder::new()
            .name("fulcrum-control".into())
            .spawn(move || control_loop(control_rt, admin, shared, control, stop))?
    };
    shared.ready.store(true, Ordering::SeqCst);
    tracing::info!(workers, "fulcrum is ready");
    let upgraded = CancellationToken::new();
    if let Some(predecessor) = predecessor {
        predecessor
            .ready()
            .context("binary upgrade: cannot tell the running fulcrum to drain")?;
    }
    if let Some(path) = &upgrade_socket {
        let (offering, done) = (control.clone(), upgraded.clone());
        crate::upgrade::listen(
            path,
            move || {
                let mut offer = control::lock(&offering).offer();
                if let Ok(admin) = admin_copy.try_clone() {
                    offer.push(crate::upgrade::Offered {
                        listener: ADMIN_SOCKET.into(),
                        configured: admin_address,
                        socket: crate::listener::BoundSocket::Stream(admin),
                    });
                }
                offer
            },
            move || done.cancel(),
        )?;
    }
    // systemd (Type=notify): ready; after an upgrade this process is the
    // service's main process now (needs NotifyAccess=all).
    let mut states = vec![sd_notify::NotifyState::Ready];
    if upgrade {
        states.insert(0, sd_notify::NotifyState::MainPid(std::process::id()));
    }
    let _ = sd_notify::notify(false, &states);

    let stop = signals.wait(
        || {
            let _ = control::lock(&control).reload("SIGHUP");
        },
        || start_successor(config_path_of(&control), upgrade_socket.as_deref()),
        &upgraded,
    );
    if stop != Stop::Upgraded {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }
    // Readiness fails first; on SIGTERM listeners keep accepting for
    // `shutdown_delay`, so a load balancer in front stops sending before
    // connections would be refused. Ctrl-C (SIGINT) is someone at a
    // terminal: no delay.
    shared.draining.store(true, Ordering::SeqCst);
    let runtime = shared.snapshot.load().config.runtime.clone();
    // After an upgrade the successor accepts on the same sockets already.
    if stop == Stop::Term && !runtime.shutdown_delay.is_zero() {
        tracing::info!(delay = ?runtime.shutdown_delay, "shutting down: /ready answers 503; listeners stop accepting after the delay");
        std::thread::sleep(runtime.shutdown_delay);
    }
    let drain_started = crate::clock::now();
    let open_before = open_connections(&shared);
    tracing::info!(
        drain_timeout = ?runtime.drain_timeout,
        open_connections = open_before,
        "shutting down: stopped accepting, draining in-flight requests"
    );
    // The workers' sockets close as their accept loops end; the copies kept
    // for a successor go now, so nothing is left listening that no one accepts on.
    control::lock(&control).close_listening();
    shutdown.cancel();
    for t in threads {
        if t.join().is_err() {
            tracing::error!("a worker thread panicked during shutdown");
        }
    }
    control_stop.cancel();
    let _ = control_thread.join();
    tracing::info!(
        took_ms = crate::clock::elapsed(drain_started).as_millis() as u64,
        cut = open_connections(&shared),
        "shutdown complete"
    );
    Ok(())
}

fn config_path_of(control: &Mutex<Control>) -> Option<PathBuf> {
    control::lock(control).config_path().map(Path::to_path_buf)
}

/// SIGUSR2: starts the binary at the path this one was started from (a new
/// version installed there) with `--upgrade`, as NGINX does; it takes the
/// sockets over and this process drains when it is ready.
fn start_successor(config_path: Option<PathBuf>, upgrade_socket: Option<&Path>) {
    let (Some(config), Some(_)) = (config_path, upgrade_socket) else {
        tracing::error!(
            "SIGUSR2: a binary upgrade needs a config file with runtime.upgrade_socket; ignored"
        );
        return;
    };
    let Some(program) = std::env::args_os().next() else {
        tracing::error!("SIGUSR2: cannot tell which binary to start; ignored");
        return;
    };
    match std::process::Command::new(&program)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--upgrade")
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => {
            tracing::info!(pid = child.id(), program = %Path::new(&program).display(), "SIGUSR2: started the successor for a binary upgrade")
        }
        Err(e) => {
            tracing::error!(error = %e, program = %Path::new(&program).display(), "SIGUSR2: cannot start the successor")
        }
    }
}

/// Client connections (UDP: sessions) still open on every listener; after
/// the workers ended, the ones the drain timeout cut.
fn open_connections(shared: &Shared) -> u32 {
    shared
        .snapshot
        .load()
        .listeners
        .iter()
        .map(|l| l.state().connections.active())
        .sum()
}

/// Machine-readable start lines on stdout: tests and scripts read the bound ports here.
fn announce(bound: &Bound, admin: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (name, scheme, addr) in &bound.listeners {
        let _ = writeln!(out, "fulcrum: listener {name} on {scheme}://{addr}");
    }
    let _ = writeln!(out, "fulcrum: admin on http://{admin}");
    let _ = out.flush();
}

/// How often the control thread looks for changed certificate and key files.
const TLS_FILE_POLL: Duration = Duration::from_secs(2);

/// The control thread: health probes (spawned onto this runtime by
/// `Control`), the admin server, the drain watch and the TLS file poll.
fn control_loop(
    rt: tokio::runtime::Runtime,
    admin: std::net::TcpListener,
    shared: Arc<Shared>,
    control: Arc<Mutex<Control>>,
    stop: CancellationToken,
) {
    rt.block_on(async move {
        match tokio::net::TcpListener::from_std(admin) {
            Ok(listener) => {
                tokio::spawn(crate::admin::serve(
                    listener,
                    shared.clone(),
                    control.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "admin listener unusable"),
        }
        let watcher = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TLS_FILE_POLL);
            loop {
                tick.tick().await;
                control::reload_tls(&watcher.snapshot.load(), None);
            }
        });
        let ticking = control.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(control::TICK);
            loop {
                tick.tick().await;
                control::lock(&ticking).tick();
            }
        });
        tokio::spawn(watch_config(shared.clone(), control.clone()));
        stop.cancelled().await;
    });
    // Dropping the runtime cancels the health-check and admin tasks.
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// How often `watch_config` looks at the config file.
const CONFIG_FILE_POLL: Duration = Duration::from_secs(1);

/// With `runtime.watch_config`, reloads the config whenever its file
/// changes (a refused reload is logged and counted; the file is looked at
/// again on its next change). The setting itself is read on every tick, so
/// a reload can turn the watch on or off.
async fn watch_config(shared: Arc<Shared>, control: Arc<Mutex<Control>>) {
    let Some(path) = control::lock(&control).config_path().map(Path::to_path_buf) else {
        return;
    };
    let file = crate::watch::WatchedFiles::new(vec![path]);
    let mut tick = tokio::time::interval(CONFIG_FILE_POLL);
    loop {
        tick.tick().await;
        if !file.changed() {
            continue;
        }
        file.mark();
        if shared.snapshot.load().config.runtime.watch_config {
            let _ = control::lock(&control).reload("config file changed");
        }
    }
}

/// SIGTERM/SIGINT (drain), SIGHUP (reload the config) and SIGUSR2 (binary
/// upgrade) handlers, installed
/// before the bound addresses are announced: a supervisor (or a test) that
/// signals as soon as it reads them must get a drain (or a reload), not the
/// default action of dying on the spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Int,
    /// A successor process took the sockets over.
    Upgraded,
}

struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (term, int, hup, usr2) = rt.block_on(async {
            anyhow::Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
                signal(SignalKind::user_defined2())?,
            ))
        })?;
        Ok(Self {
            rt,
            term,
            int,
            hup,
            usr2,
        })
    }

    /// Returns on SIGTERM or SIGINT, or when `upgraded` is cancelled; runs
    /// `on_hup` for every SIGHUP and `on_usr2` for every SIGUSR2 until then.
    fn wait(mut self, on_hup: impl Fn(), on_usr2: impl Fn(), upgraded: &CancellationToken) -> Stop {
        self.rt.block_on(async {
            loop {
                tokio::select! {
                    _ = self.term.recv() => {
                        tracing::info!("received SIGTERM");
                        break Stop::Term;
                    }
                    _ = self.int.recv() => {
                        tracing::info!("received SIGINT");
                        break Stop::Int;
                    }
                    _ = self.hup.recv() => {
                        tracing::info!("received SIGHUP: reloading the config (and TLS files)");
                        on_hup();
                    }
                    _ = self.usr2.recv() => {
                        tracing::info!("received SIGUSR2: starting a binary upgrade");
                        on_usr2();
                    }
                    () = upgraded.cancelled() => break Stop::Upgraded,
                }
            }
        })
    }
}
