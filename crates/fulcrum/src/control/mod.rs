//! The control side: the one place that changes what the request path
//! reads. It owns the cluster manager (endpoint eligibility), the registry
//! of parts that outlive snapshots, the health-check tasks and the
//! listeners' sockets, and it publishes snapshots and assignments.
//!
//! Everything that changes state comes through [`Control`], serialised by
//! its mutex: check results from the probe tasks, drain and reload requests
//! from the admin API, SIGHUP, the config file watch. Workers never take
//! that mutex; they read what it published.

pub mod registry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::cluster::health::{CheckReport, probe_loop};
use crate::cluster::manager::{Event, Manager, Transition, UnknownTarget};
use crate::config::{Config, HealthCheckConfig, ListenerConfig, ListenerProtocol};
use crate::listener::BoundSocket;
use crate::snapshot::{ListenerHandle, Snapshot};
use crate::telemetry::metrics::{
    ClusterBreakerLabels, ClusterDetectorLabels, ClusterLabels, HealthCheckLabels, Metrics,
    ResultLabels,
};
use registry::Registry;

/// What the workers, the admin API and the control side share.
pub struct Shared {
    /// The config in force; requests read their listener's route table,
    /// which is published with it.
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    /// Set once every listener is bound and the workers run.
    pub ready: std::sync::atomic::AtomicBool,
    /// Set when shutdown begins: `/ready` turns 503 so load balancers in front stop sending.
    pub draining: std::sync::atomic::AtomicBool,
}

/// A listening socket for one worker to accept on.
pub struct Serve {
    pub handle: Arc<ListenerHandle>,
    pub socket: BoundSocket,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "this instance was started without a config file (demo), so there is nothing to reload"
    )]
    NoConfigFile,
    /// The config's own diagnostics, as `fulcrum check` prints them.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Apply(String),
}

/// Why a write action on the admin API was refused.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum Unauthorized {
    #[error(
        "write actions need a token when the admin API is not on loopback; set [admin] token_file"
    )]
    NoToken,
    #[error(
        "missing or wrong bearer token (send Authorization: Bearer <the token in admin.token_file>)"
    )]
    BadToken,
}

/// What an applied reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub generation: u64,
    /// With the address each was bound to (the config may say port 0).
    pub listeners_added: Vec<AddedListener>,
    pub listeners_removed: Vec<String>,
    /// Settings that only a restart applies; their old values stay in force.
    pub needs_restart: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AddedListener {
    pub name: String,
    pub address: SocketAddr,
}

/// Where the listeners ended up (ports may have been 0 in the config).
#[derive(Debug, Clone)]
pub struct Bound {
    /// Name, URL scheme (http, https, tcp, udp) and bound address.
    pub listeners: Vec<(String, &'static str, SocketAddr)>,
}

pub struct Control {
    shared: Arc<Shared>,
    registry: Registry,
    manager: Manager,
    config_path: Option<PathBuf>,
    workers: Vec<UnboundedSender<Serve>>,
    health: HashMap<(String, SocketAddr), HealthTask>,
    /// The control thread's runtime: probe tasks run there, whoever starts them.
    runtime: tokio::runtime::Handle,
    /// Itself, for the probe tasks' reports.
    this: Weak<Mutex<Control>>,
    /// The admin write token, from `admin.token_file` (re-read on reload).
    admin_token: Option<String>,
    /// A descriptor of every listening socket, by listener name: what a
    /// successor process takes over (`upgrade`).
    listening: HashMap<String, Listening>,
    /// Clusters last noted in panic mode (for the transition's log line).
    panicking: HashMap<String, bool>,
}

struct Listening {
    handle: Arc<ListenerHandle>,
    /// The address as the config names it.
    configured: SocketAddr,
    sockets: Vec<BoundSocket>,
}

struct HealthTask {
    check: HealthCheckConfig,
    transport: u64,
    abort: AbortHandle,
}

impl Drop for HealthTask {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl Control {
    /// Builds the first snapshot, binds every listener (a busy port fails
    /// the start with a clear message) and queues the sockets to the workers.
    pub fn start(
        config: Config,
        config_path: Option<PathBuf>,
        workers: Vec<UnboundedSender<Serve>>,
        shutdown: CancellationToken,
        runtime: tokio::runtime::Handle,
        mut inherited: Vec<crate::upgrade::Inherited>,
    ) -> anyhow::Result<(Arc<Mutex<Control>>, Arc<Shared>, Bound)> {
        let metrics = Arc::new(Metrics::new());
        let admin_token = read_token(&config)?;
        let registry = Registry::new(workers.len(), metrics.clone(), shutdown);
        let mut manager = Manager::new();
        manager.configure(crate::clock::now(), &config.clusters);
        let built = registry.build(config, &manager, 1)?;
        let sockets = bind_all(&built.added, workers.len(), &mut inherited)?;
        for unused in &inherited {
            tracing::info!(listener = %unused.listener, "binary upgrade: the predecessor's socket is not in this config; closing it");
        }
        let bound = Bound {
            listeners: sockets
                .iter()
                .map(|(handle, _, address)| {
                    (
                        handle.name.clone(),
                        scheme(&handle.state().config),
                        *address,
                    )
                })
                .collect(),
        };
        let mut registry = registry;
        let committed = registry.commit(built, &manager);
        metrics.config_generation.set(1);
        metrics.config_last_reload_success.set(1);
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(committed.snapshot),
            metrics,
            ready: false.into(),
            draining: false.into(),
        });
        let control = Arc::new_cyclic(|this| {
            Mutex::new(Control {
                shared: shared.clone(),
                registry,
                manager,
                config_path,
                workers,
                health: HashMap::new(),
                runtime,
                this: this.clone(),
                admin_token,
                listening: HashMap::new(),
                panicking: HashMap::new(),
            })
        });
        {
            let mut c = lock(&control);
            c.serve(sockets);
            c.reconcile_health();
            c.note_all_panics();
        }
        Ok((control, shared, bound))
    }

    /// Re-reads the config file and applies it; on any error nothing changes.
    pub fn reload(&mut self, why: &str) -> Result<Applied, ReloadError> {
        let result = self.try_reload();
        let metrics = &self.shared.metrics;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        metrics
            .config_reloads
            .get_or_create(&ResultLabels { result: outcome })
            .inc();
        metrics
            .config_last_reload_success
            .set(i64::from(result.is_ok()));
        metrics
            .config_last_reload_timestamp
            .set(i64::try_from(crate::clock::unix_seconds()).unwrap_or(i64::MAX));
        match &result {
            Ok(applied) => {
                let added: Vec<String> = applied
                    .listeners_added
                    .iter()
                    .map(|l| format!("{} on {}", l.name, l.address))
                    .collect();
                tracing::info!(
                    why,
                    generation = applied.generation,
                    ?added,
                    removed = ?applied.listeners_removed,
                    "config reloaded"
                );
            }
            Err(e) => {
                tracing::error!(why, error = %e, "config reload refused; the previous config keeps serving")
            }
        }
        for setting in result.iter().flat_map(|a| &a.needs_restart) {
            tracing::warn!(
                setting,
                "this setting changed but only applies at the next restart"
            );
        }
        result
    }

    fn try_reload(&mut self) -> Result<Applied, ReloadError> {
        let path = self.config_path.clone().ok_or(ReloadError::NoConfigFile)?;
        let mut config =
            crate::config::load(&path).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let current = self.shared.snapshot.load_full();
        let needs_restart = keep_restart_only(&mut config, &current.config);
        let generation = current.generation + 1;
        let admin_token = read_token(&config).map_err(|e| ReloadError::Apply(format!("{e:#}")))?;
        let mut manager = self.manager.clone();
        manager.configure(crate::clock::now(), &config.clusters);
        let built = self
            .registry
            .build(config, &manager, generation)
            .map_err(|e| ReloadError::Apply(e.to_string()))?;
        let sockets = bind_all(&built.added, self.workers.len(), &mut Vec::new())
            .map_err(|e| ReloadError::Apply(format!("{e:#}")))?;
        let committed = self.registry.commit(built, &manager);
        self.manager = manager;
        self.admin_token = admin_token;
        let applied = Applied {
            generation,
            listeners_added: sockets
                .iter()
                .map(|(handle, _, address)| AddedListener {
                    name: handle.name.clone(),
                    address: *address,
                })
                .collect(),
            listeners_removed: committed.removed.iter().map(|h| h.name.clone()).collect(),
            needs_restart,
        };
        self.shared.snapshot.store(Arc::new(committed.snapshot));
        self.shared
            .metrics
            .config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.serve(sockets);
        for removed in &committed.removed {
            // Its accept loops stop; its connections close gracefully.
            removed.stop.cancel();
            self.listening
                .retain(|_, l| !Arc::ptr_eq(&l.handle, removed));
        }
        self.reconcile_health();
        self.note_all_panics();
        // A reload also re-reads the TLS files of what it kept (SIGHUP's
        // meaning before whole-config reload existed).
        reload_tls(&self.shared.snapshot.load(), Some("config reload"));
        Ok(applied)
    }

    /// Hands freshly bound (or inherited) sockets to the workers, spread
    /// evenly (an upgrade may bring more sockets than there are workers: all
    /// are accepted on, so none leaves connections waiting in its queue),
    /// and keeps a descriptor of each for a successor to take over.
    fn serve(&mut self, sockets: Vec<BoundListener>) {
        for (handle, sockets, _) in sockets {
            let copies = sockets.iter().filter_map(|s| s.try_clone().ok()).collect();
            let configured = handle.state().config.address;
            self.listening.insert(
                handle.name.clone(),
                Listening {
                    handle: handle.clone(),
                    configured,
                    sockets: copies,
                },
            );
            for (i, socket) in sockets.into_iter().enumerate() {
                if let Some(worker) = self.workers.get(i % self.workers.len().max(1)) {
                    let _ = worker.send(Serve {
                        handle: handle.clone(),
                        socket,
                    });
                }
            }
        }
    }

    /// Drops the copies of the listening sockets (shutdown).
    pub fn close_listening(&mut self) {
        self.listening.clear();
    }

    /// Every listening socket, for a successor process.
    pub fn offer(&self) -> Vec<crate::upgrade::Offered> {
        self.listening
            .iter()
            .flat_map(|(name, l)| {
                l.sockets.iter().filter_map(move |s| {
                    Some(crate::upgrade::Offered {
                        listener: name.clone(),
                        configured: l.configured,
                        socket: s.try_clone().ok()?,
                    })
                })
            })
            .collect()
    }

    /// Starts, stops or restarts probe tasks so that exactly the endpoints
    /// of clusters with a check are probed, each with its cluster's current
    /// check and transport; unchanged ones keep running.
    fn reconcile_health(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        let mut next = HashMap::new();
        for cluster in snapshot.clusters.iter() {
            let Some(check) = &cluster.config.health_check else {
                continue;
            };
            for endpoint in &cluster.endpoints {
                let key = (cluster.name().to_string(), endpoint.address);
                let transport = cluster.transport.id();
                let task = match self.health.remove(&key) {
                    Some(t) if t.check == *check && t.transport == transport => t,
                    _ => {
                        let abort = self
                            .runtime
                            .spawn(probe_loop(
                                key.0.clone(),
                                endpoint.address,
                                cluster.transport.clone(),
                                check.clone(),
                                self.shared.metrics.clone(),
                                self.report_to(key.0.clone(), endpoint.address),
                            ))
                            .abort_handle();
                        HealthTask {
                            check: check.clone(),
                            transport,
                            abort,
                        }
                    }
                };
                next.insert(key, task);
            }
        }
        // Dropping what is left aborts the probes of removed endpoints.
        self.health = next;
    }

    fn report_to(&self, cluster: String, address: SocketAddr) -> CheckReport {
        let this = self.this.clone();
        Box::new(move |result| {
            if let Some(control) = this.upgrade() {
                lock(&control).check_result(&cluster, address, result);
            }
        })
    }

    fn check_result(&mut self, cluster: &str, address: SocketAddr, result: Result<(), String>) {
        let event = Event::CheckResult {
            cluster: cluster.to_string(),
            address,
            success: result.is_ok(),
        };
        let reason = result.err().unwrap_or_default();
        // A result from a probe a reload just stopped is of no interest.
        let _ = self.apply(&event, &reason);
    }

    /// Applies one event: the manager decides, the cluster's assignment is
    /// republished if eligibility may have changed, and the transition is
    /// logged and counted.
    pub fn apply(
        &mut self,
        event: &Event,
        reason: &str,
    ) -> Result<Option<Transition>, UnknownTarget> {
        let Some(transition) = self.manager.handle(crate::clock::now(), event)? else {
            return Ok(None);
        };
        let (cluster, address) = event.target();
        self.enact(cluster, &[(address, transition.clone())], reason);
        Ok(Some(transition))
    }

    /// Publishes what the manager decided for `cluster` (once, if any
    /// eligibility may have changed), then logs and counts each transition.
    fn enact(&mut self, cluster: &str, transitions: &[(SocketAddr, Transition)], reason: &str) {
        let snapshot = self.shared.snapshot.load_full();
        let current = snapshot.clusters.iter().find(|c| c.name() == cluster);
        if transitions.iter().any(|(_, t)| t.republish())
            && let Some(c) = current
        {
            c.publish(
                &self.manager.statuses(cluster),
                self.manager.in_panic(cluster),
            );
            self.note_panic(c);
        }
        let eligible = current.map_or(0, |c| c.eligible_count());
        for (address, transition) in transitions {
            if let (Transition::Ejected { .. }, Some(c)) = (transition, current)
                && let Some(e) = c.endpoints.iter().find(|e| e.address == *address)
            {
                e.outlier.reset_consecutive();
            }
            self.note(cluster, *address, transition, eligible, reason);
        }
    }

    /// The log line and metrics of one transition.
    fn note(
        &self,
        cluster: &str,
        address: SocketAddr,
        transition: &Transition,
        eligible: usize,
        reason: &str,
    ) {
        let metrics = &self.shared.metrics;
        let endpoint = address.to_string();
        let health_label = |result: &'static str| HealthCheckLabels {
            cluster: cluster.to_string(),
            endpoint: endpoint.clone(),
            result,
        };
        match &transition {
            Transition::BecameHealthy => {
                metrics
                    .health_transitions
                    .get_or_create(&health_label("healthy"))
                    .inc();
                tracing::info!(cluster, %endpoint, eligible, "endpoint is healthy again; it receives traffic");
            }
            Transition::BecameUnhealthy => {
                metrics
                    .health_transitions
                    .get_or_create(&health_label("unhealthy"))
                    .inc();
                tracing::warn!(cluster, %endpoint, eligible, reason, "endpoint failed its health checks; it is ejected from the cluster");
            }
            Transition::DrainStarted => {
                tracing::info!(cluster, %endpoint, eligible, "endpoint draining: no new requests, in-flight ones finish");
            }
            Transition::Undrained => {
                tracing::info!(cluster, %endpoint, eligible, "endpoint undrained; it takes new requests again");
            }
            Transition::DrainFinished { took } => {
                metrics
                    .endpoint_drain_duration
                    .get_or_create(&ClusterLabels {
                        cluster: cluster.to_string(),
                    })
                    .observe(*took);
                tracing::info!(cluster, %endpoint, took_ms = took.as_millis() as u64, "endpoint drained: its last in-flight request finished");
            }
            Transition::Ejected { detector, duration } => {
                metrics
                    .outlier_ejections
                    .get_or_create(&ClusterDetectorLabels {
                        cluster: cluster.to_string(),
                        detector: detector.name(),
                    })
                    .inc();
                tracing::warn!(cluster, %endpoint, eligible, detector = detector.name(), ejected_for_s = duration.as_secs(), "outlier detection ejected the endpoint: it failed real traffic");
            }
            Transition::Returned => {
                tracing::info!(cluster, %endpoint, eligible, "ejected endpoint returns to rotation");
            }
            Transition::EjectionOverflow { detector } => {
                metrics
                    .outlier_ejections_overflow
                    .get_or_create(&ClusterDetectorLabels {
                        cluster: cluster.to_string(),
                        detector: detector.name(),
                    })
                    .inc();
                tracing::warn!(cluster, %endpoint, detector = detector.name(), "outlier not ejected: max_ejection_percent of the cluster is already ejected");
            }
        }
    }

    fn note_all_panics(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        self.panicking
            .retain(|name, _| snapshot.clusters.iter().any(|c| c.name() == name));
        for cluster in snapshot.clusters.iter() {
            self.note_panic(cluster);
        }
    }

    /// Logs and counts a cluster entering or leaving panic mode (compared
    /// with what was last noted for it).
    fn note_panic(&mut self, cluster: &Cluster) {
        let panic = cluster.in_panic();
        let was = self
            .panicking
            .insert(cluster.name().to_string(), panic)
            .unwrap_or(false);
        let labels = ClusterLabels {
            cluster: cluster.name().to_string(),
        };
        let metrics = &self.shared.metrics;
        metrics
            .cluster_panic
            .get_or_create(&labels)
            .set(i64::from(panic));
        if panic == was {
            return;
        }
        let statuses = self.manager.statuses(cluster.name());
        let undrained = statuses.iter().filter(|s| !s.ineligible.draining).count();
        let eligible = statuses.iter().filter(|s| s.is_eligible()).count();
        if panic {
            metrics.cluster_panic_entries.get_or_create(&labels).inc();
            tracing::warn!(
                cluster = cluster.name(),
                eligible,
                endpoints = undrained,
                panic_threshold = cluster.config.panic_threshold,
                "cluster in panic mode: too few endpoints pass their health checks, so requests go to all of them (fail open)"
            );
        } else {
            tracing::info!(
                cluster = cluster.name(),
                eligible,
                endpoints = undrained,
                "cluster left panic mode"
            );
        }
    }

    /// The control thread's periodic work: drains, outlier detection,
    /// slow-start ramps and the circuit breakers' remaining capacity.
    pub fn tick(&mut self) {
        self.check_drains();
        self.check_outliers();
        self.check_ramps();
        self.note_breakers();
    }

    /// `fulcrum_circuit_breaker_remaining{cluster, breaker}` for HTTP clusters.
    fn note_breakers(&self) {
        let snapshot = self.shared.snapshot.load_full();
        for cluster in snapshot.clusters.iter() {
            let Some(load) = cluster.endpoints.first().map(|e| e.cluster_load()) else {
                continue;
            };
            let limits = &cluster.config.circuit_breakers;
            let used = [
                (
                    "max_connections",
                    limits.max_connections,
                    u64::try_from(cluster.connections.active.get()).unwrap_or(0),
                ),
                (
                    "max_pending_requests",
                    limits.max_pending_requests,
                    load.pending.load(std::sync::atomic::Ordering::Relaxed),
                ),
                ("max_requests", limits.max_requests, load.active_requests()),
            ];
            for (breaker, limit, used) in used {
                self.shared
                    .metrics
                    .circuit_breaker_remaining
                    .get_or_create(&ClusterBreakerLabels {
                        cluster: cluster.name().to_string(),
                        breaker,
                    })
                    .set(i64::from(limit).saturating_sub(i64::try_from(used).unwrap_or(i64::MAX)));
            }
        }
    }

    /// Republishes the clusters whose endpoints slow-start, with the
    /// weights the manager computes for now.
    fn check_ramps(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        for name in self.manager.ramping(crate::clock::now()) {
            if let Some(cluster) = snapshot.clusters.iter().find(|c| c.name() == name) {
                cluster.publish(&self.manager.statuses(&name), self.manager.in_panic(&name));
            }
        }
    }

    /// Feeds the workers' outlier counts to the manager and enacts what it
    /// decides (ejections, returns).
    fn check_outliers(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        let now = crate::clock::now();
        for name in self.manager.detecting_outliers() {
            let Some(cluster) = snapshot.clusters.iter().find(|c| c.name() == name) else {
                continue;
            };
            let samples: Vec<_> = cluster
                .endpoints
                .iter()
                .map(|e| e.outlier.sample())
                .collect();
            let transitions = self.manager.evaluate_outliers(now, &name, &samples);
            if !transitions.is_empty() {
                self.enact(&name, &transitions, "");
            }
        }
    }

    /// Reports `Drained` for draining endpoints with nothing in flight.
    fn check_drains(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        for (cluster, address) in self.manager.drains_in_progress() {
            let idle = snapshot
                .clusters
                .iter()
                .find(|c| c.name() == cluster)
                .and_then(|c| c.endpoints.iter().find(|e| e.address == address))
                .is_some_and(|e| e.active_requests() == 0);
            if idle {
                let _ = self.apply(&Event::Drained { cluster, address }, "");
            }
        }
    }

    /// Whether an admin write action may proceed: with a token configured
    /// it must be presented (`Authorization: Bearer`); without one, only on
    /// a loopback admin address.
    pub fn authorize(&self, header: Option<&http::HeaderValue>) -> Result<(), Unauthorized> {
        let Some(token) = &self.admin_token else {
            return if self.shared.snapshot.load().config.admin.is_loopback() {
                Ok(())
            } else {
                Err(Unauthorized::NoToken)
            };
        };
        let presented = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(Unauthorized::BadToken),
        }
    }

    /// The manager's view of one cluster, for the admin API.
    pub fn statuses(&self, cluster: &str) -> Vec<crate::cluster::manager::EndpointStatus> {
        self.manager.statuses(cluster)
    }

    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config_path.as_deref()
    }
}

/// Compares without an early exit, so response timing does not reveal
/// how much of a guessed token was right (the lengths may differ).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn read_token(config: &Config) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    config
        .admin
        .token_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .with_context(|| format!("cannot read admin.token_file {}", path.display()))
        })
        .transpose()
}

pub fn lock(control: &Mutex<Control>) -> std::sync::MutexGuard<'_, Control> {
    control.lock().unwrap_or_else(|p| p.into_inner())
}

/// Settings a running process cannot change: the reload keeps the values
/// in force and names them.
fn keep_restart_only(next: &mut Config, current: &Config) -> Vec<String> {
    let mut named = Vec::new();
    if next.runtime.workers != current.runtime.workers {
        named.push(format!(
            "runtime.workers ({} in force, {} in the file)",
            current.runtime.workers, next.runtime.workers
        ));
        next.runtime.workers = current.runtime.workers;
    }
    if next.runtime.log_level != current.runtime.log_level {
        named.push(format!(
            "runtime.log_level ({:?} in force, {:?} in the file)",
            current.runtime.log_level, next.runtime.log_level
        ));
        next.runtime.log_level = current.runtime.log_level.clone();
    }
    if next.admin.address != current.admin.address {
        named.push(format!(
            "admin.address ({} in force, {} in the file)",
            current.admin.address, next.admin.address
        ));
        next.admin.address = current.admin.address;
    }
    named
}

type BoundListener = (Arc<ListenerHandle>, Vec<BoundSocket>, SocketAddr);

/// One socket per worker for each listener (SO_REUSEPORT), or the ones a
/// predecessor handed over for the same listener (same name, configured
/// address and socket kind), topped up to one per worker.
fn bind_all(
    handles: &[Arc<ListenerHandle>],
    workers: usize,
    inherited: &mut Vec<crate::upgrade::Inherited>,
) -> anyhow::Result<Vec<BoundListener>> {
    handles
        .iter()
        .map(|handle| {
            let config = handle.state().config.clone();
            let udp = config.protocol == ListenerProtocol::Udp;
            let (matching, rest): (Vec<_>, Vec<_>) =
                std::mem::take(inherited).into_iter().partition(|i| {
                    i.listener == config.name
                        && i.configured == config.address
                        && i.socket.is_datagram() == udp
                });
            *inherited = rest;
            let mut sockets: Vec<BoundSocket> = matching.into_iter().map(|i| i.socket).collect();
            if sockets.is_empty() {
                sockets = bind(&config, workers)?;
            } else if sockets.len() < workers {
                let at = ListenerConfig {
                    address: sockets[0].local_addr()?,
                    ..config.clone()
                };
                sockets.extend(bind(&at, workers - sockets.len())?);
            }
            let address = sockets
                .first()
                .map(BoundSocket::local_addr)
                .transpose()?
                .unwrap_or(config.address);
            Ok((handle.clone(), sockets, address))
        })
        .collect()
}

fn bind(l: &ListenerConfig, workers: usize) -> anyhow::Result<Vec<BoundSocket>> {
    use anyhow::Context as _;
    let sockets: std::io::Result<Vec<BoundSocket>> = if l.protocol == ListenerProtocol::Udp {
        crate::listener::bind_reuseport_udp(l.address, workers)
            .map(|v| v.into_iter().map(BoundSocket::Datagram).collect())
    } else {
        crate::listener::bind_reuseport(l.address, workers)
            .map(|v| v.into_iter().map(BoundSocket::Stream).collect())
    };
    sockets.with_context(|| {
        format!(
            "cannot listen on {} for listener \"{}\"; is another process using that port? Pick another address or stop that process",
            l.address, l.name
        )
    })
}

pub fn scheme(l: &ListenerConfig) -> &'static str {
    match l.protocol {
        ListenerProtocol::Http if l.tls.is_some() => "https",
        ListenerProtocol::Http => "http",
        ListenerProtocol::Tcp | ListenerProtocol::TlsPassthrough => "tcp",
        ListenerProtocol::Udp => "udp",
    }
}

/// Re-reads every TLS listener's certificates and ticket keys, and every
/// re-encrypting cluster's CA bundle and client certificate: all of them
/// when `why` names a reason (a reload), else only files that changed on
/// disk (the control thread's poll).
pub fn reload_tls(snapshot: &Snapshot, why: Option<&str>) {
    for listener in &snapshot.listeners {
        if let Some(tls) = &listener.state().tls {
            match why {
                Some(why) => tls.reload(why),
                None => tls.reload_if_changed(),
            }
        }
    }
    for cluster in snapshot.clusters.iter() {
        if let Some(tls) = cluster.transport.originator() {
            match why {
                Some(why) => tls.reload(why),
                None => tls.reload_if_changed(),
            }
        }
    }
}

/// How often the control thread looks for finished drains and evaluates
/// outlier detection (ejections act within this of the failure that
/// crossed a threshold).
pub const TICK: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::keep_restart_only;

    fn config(extra_runtime: &str, admin: &str) -> crate::config::Config {
        let src = format!(
            "[admin]\naddress = \"{admin}\"\n[runtime]\nworkers = 2\n{extra_runtime}\n\
             [[listeners]]\nname = \"l\"\naddress = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"c\"\n\
             [[clusters]]\nname = \"c\"\nendpoints = [{{ address = \"127.0.0.1:2\" }}]\n"
        );
        crate::config::parse("t.toml", &src).unwrap()
    }

    #[test]
    fn a_reload_keeps_what_only_a_restart_can_change_and_names_it() {
        let current = config("log_level = \"info\"", "127.0.0.1:9901");
        let mut next = config("log_level = \"debug\"", "127.0.0.1:9902");
        next.runtime.workers = 4;
        let named = keep_restart_only(&mut next, &current);
        assert_eq!(named.len(), 3, "{named:?}");
        assert!(named[0].starts_with("runtime.workers"));
        assert!(named[1].starts_with("runtime.log_level"));
        assert!(named[2].starts_with("admin.address"));
        assert_eq!(next.runtime, current.runtime);
        assert_eq!(next.admin, current.admin);
        let mut same = current.clone();
        assert!(keep_restart_only(&mut same, &current).is_empty());
    }
}
