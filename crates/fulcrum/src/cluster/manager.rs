//! The one owner of endpoint eligibility: a pure state machine, driven by
//! `(now, event)`, that decides which endpoints of each cluster may take new
//! requests and with what weight.
//!
//! Everything that can take an endpoint out of rotation is decided here (an
//! active check result, an operator's drain, an outlier ejection from the
//! counts workers keep), never a flag some task flips on the endpoint: one
//! place decides, so two causes cannot undo each other (a health check
//! passing must not put a drained endpoint back). The control side
//! ([`crate::control`]) feeds it and publishes what it decides; it has no
//! clock, socket or lock of its own, so the tests below drive it with a fake
//! clock.
//!
//! State is keyed by cluster name and endpoint address, so it survives a
//! config reload for every endpoint that is in both configs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::health::HealthState;
use super::outlier::{self, Change, Detector, OutlierState, Sample};
use super::slow_start;
use crate::config::{ClusterConfig, OutlierDetectionConfig, SlowStartConfig};

/// Why an endpoint takes no new requests. More than one can hold at once;
/// the endpoint is eligible only when none does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ineligible {
    /// Failed its active health checks (`unhealthy_threshold` in a row).
    pub unhealthy: bool,
    /// An operator drains it: in-flight requests finish, no new ones start.
    pub draining: bool,
    /// Outlier detection ejected it for failing real traffic; it returns
    /// by itself when the ejection time is over.
    pub ejected: bool,
}

impl Ineligible {
    pub fn any(self) -> bool {
        self.unhealthy || self.draining || self.ejected
    }

    /// Failing, by active checks or by real traffic (what panic mode counts).
    pub fn failing(self) -> bool {
        self.unhealthy || self.ejected
    }

    /// The reasons as the admin API and logs name them.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.unhealthy {
            names.push("unhealthy");
        }
        if self.draining {
            names.push("draining");
        }
        if self.ejected {
            names.push("ejected");
        }
        names
    }
}

/// What the manager decided for one endpoint: published with the cluster's
/// assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointStatus {
    pub address: SocketAddr,
    /// The weight the balancer uses: the configured one, or while an
    /// endpoint of the cluster slow-starts, every weight times
    /// `slow_start::SCALE` and the ramping ones' times their factor.
    pub weight: u32,
    /// Slow start: the share of its picks a ramping endpoint accepts, in
    /// thousandths (1000: every pick; see `Cluster::pick`).
    pub admit_permille: u16,
    pub ineligible: Ineligible,
    /// When the current drain began.
    pub draining_since: Option<Instant>,
    /// When the current outlier ejection ends.
    pub ejected_until: Option<Instant>,
}

impl EndpointStatus {
    pub fn is_eligible(&self) -> bool {
        !self.ineligible.any()
    }

    /// Whether the balancer may pick it: eligible, or, in panic mode, any
    /// endpoint not drained by an operator (panic never undoes a drain).
    pub fn is_routable(&self, panic: bool) -> bool {
        if panic {
            !self.ineligible.draining
        } else {
            self.is_eligible()
        }
    }
}

/// Something that may change an endpoint's eligibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One active health check finished.
    CheckResult {
        cluster: String,
        address: SocketAddr,
        success: bool,
    },
    /// Stop sending new requests; in-flight ones finish.
    Drain {
        cluster: String,
        address: SocketAddr,
    },
    Undrain {
        cluster: String,
        address: SocketAddr,
    },
    /// A draining endpoint was seen with nothing in flight.
    Drained {
        cluster: String,
        address: SocketAddr,
    },
}

impl Event {
    /// The endpoint the event is about.
    pub fn target(&self) -> (&str, SocketAddr) {
        match self {
            Event::CheckResult {
                cluster, address, ..
            }
            | Event::Drain { cluster, address }
            | Event::Undrain { cluster, address }
            | Event::Drained { cluster, address } => (cluster, *address),
        }
    }
}

/// A change worth a log line and a metric; `republish` says whether the
/// cluster's assignment must be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    BecameHealthy,
    BecameUnhealthy,
    DrainStarted,
    /// The last in-flight request of a draining endpoint finished `took`
    /// after the drain began (the "drain time" SLO).
    DrainFinished {
        took: Duration,
    },
    Undrained,
    /// Outlier detection took it out of rotation for `duration`.
    Ejected {
        detector: Detector,
        duration: Duration,
    },
    /// Its ejection ended (time over, or an active check passed).
    Returned,
    /// An outlier that stays in rotation: ejecting it would pass the
    /// cluster's `max_ejection_percent`.
    EjectionOverflow {
        detector: Detector,
    },
}

impl Transition {
    /// Whether the endpoint's eligibility may have changed.
    pub fn republish(&self) -> bool {
        !matches!(
            self,
            Transition::DrainFinished { .. } | Transition::EjectionOverflow { .. }
        )
    }
}

/// An event named a cluster or endpoint the current config does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownTarget {
    #[error("no cluster named \"{0}\"")]
    Cluster(String),
    #[error("cluster \"{cluster}\" has no endpoint {address}")]
    Endpoint {
        cluster: String,
        address: SocketAddr,
    },
}

#[derive(Debug, Default, Clone)]
pub struct Manager {
    clusters: HashMap<String, ClusterState>,
    /// The latest time it was given: weights are computed for it.
    now: Option<Instant>,
}

#[derive(Debug, Clone)]
struct ClusterState {
    /// In config order, so statuses line up with `ClusterConfig::endpoints`.
    endpoints: Vec<EndpointState>,
    /// Percent; 0: panic mode off.
    panic_threshold: u32,
    /// None: outlier detection is off.
    outlier: Option<OutlierDetectionConfig>,
    /// When the outlier detectors' current interval ends (set on the first
    /// evaluation).
    interval_ends: Option<Instant>,
    /// None: off (or a hash policy).
    slow_start: Option<SlowStartConfig>,
}

#[derive(Debug, Clone)]
struct EndpointState {
    address: SocketAddr,
    weight: u32,
    /// `None` when the cluster has no active check.
    health: Option<HealthState>,
    drain: Option<Drain>,
    outlier: OutlierState,
    /// Slow start: when it (re)joined rotation, while its ramp lasts.
    warming_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Drain {
    since: Instant,
    finished: bool,
}

impl Manager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a (new) config: endpoints present before keep their health and
    /// drain state, new ones start healthy (HAProxy's default; the first
    /// check runs at once), removed ones are forgotten. A changed weight
    /// applies; changed thresholds apply to the next results. Endpoints a
    /// reload adds slow-start; the ones of the first config do not (there
    /// is nothing to protect them from: everything starts at once).
    pub fn configure(&mut self, now: Instant, clusters: &[ClusterConfig]) {
        let reload = self.now.is_some();
        self.now = Some(now);
        let mut old = std::mem::take(&mut self.clusters);
        for c in clusters {
            let old_cluster = old.remove(&c.name);
            let interval_ends = old_cluster.as_ref().and_then(|s| s.interval_ends);
            let mut previous: HashMap<SocketAddr, EndpointState> = old_cluster
                .map(|s| s.endpoints.into_iter().map(|e| (e.address, e)).collect())
                .unwrap_or_default();
            let thresholds = c
                .health_check
                .as_ref()
                .map(|h| (h.healthy_threshold, h.unhealthy_threshold));
            let endpoints = c
                .endpoints
                .iter()
                .map(|e| {
                    let kept = previous.remove(&e.address);
                    let health = thresholds.map(|(rise, fall)| {
                        let mut h = HealthState::new(rise, fall);
                        if let Some(was) = kept.as_ref().and_then(|k| k.health.as_ref()) {
                            h.carry_over(was);
                        }
                        h
                    });
                    let warming_since = match &kept {
                        Some(k) => k.warming_since,
                        None => reload.then_some(now),
                    };
                    let (drain, outlier) = kept.map(|k| (k.drain, k.outlier)).unwrap_or_default();
                    EndpointState {
                        address: e.address,
                        weight: e.weight,
                        health,
                        drain,
                        outlier,
                        warming_since: warming_since.filter(|_| c.slow_start.is_some()),
                    }
                })
                .collect();
            self.clusters.insert(
                c.name.clone(),
                ClusterState {
                    endpoints,
                    panic_threshold: c.panic_threshold,
                    interval_ends: interval_ends.filter(|_| c.outlier_detection.is_some()),
                    outlier: c.outlier_detection.clone(),
                    slow_start: c.slow_start.clone(),
                },
            );
        }
    }

    /// Applies one event. `Ok(None)`: nothing changed.
    pub fn handle(
        &mut self,
        now: Instant,
        event: &Event,
    ) -> Result<Option<Transition>, UnknownTarget> {
        self.now = Some(now);
        let (cluster, address) = event.target();
        let state = self
            .clusters
            .get_mut(cluster)
            .ok_or_else(|| UnknownTarget::Cluster(cluster.to_string()))?;
        let endpoint = state
            .endpoints
            .iter_mut()
            .find(|e| e.address == address)
            .ok_or_else(|| UnknownTarget::Endpoint {
                cluster: cluster.to_string(),
                address,
            })?;
        let transition = match event {
            Event::CheckResult { success, .. } => {
                let flipped = endpoint.health.as_mut().and_then(|h| h.observe(*success));
                // A passing active check ends an outlier ejection early
                // (Envoy's `successful_active_health_check_uneject_host`).
                let returned = *success && endpoint.outlier.return_now();
                match flipped {
                    Some(true) => Some(Transition::BecameHealthy),
                    Some(false) => Some(Transition::BecameUnhealthy),
                    None => returned.then_some(Transition::Returned),
                }
            }
            Event::Drain { .. } => match endpoint.drain {
                Some(_) => None,
                None => {
                    endpoint.drain = Some(Drain {
                        since: now,
                        finished: false,
                    });
                    Some(Transition::DrainStarted)
                }
            },
            Event::Undrain { .. } => endpoint.drain.take().map(|_| Transition::Undrained),
            Event::Drained { .. } => match &mut endpoint.drain {
                Some(d) if !d.finished => {
                    d.finished = true;
                    Some(Transition::DrainFinished {
                        took: now.saturating_duration_since(d.since),
                    })
                }
                _ => None,
            },
        };
        if matches!(
            transition,
            Some(Transition::BecameHealthy | Transition::Returned | Transition::Undrained)
        ) && state.slow_start.is_some()
        {
            endpoint.warming_since = Some(now);
        }
        Ok(transition)
    }

    /// What is decided for each endpoint of `cluster`, in config order, as
    /// of the latest time the manager was given.
    pub fn statuses(&self, cluster: &str) -> Vec<EndpointStatus> {
        self.clusters.get(cluster).map_or_else(Vec::new, |c| {
            let factors: Vec<Option<f64>> =
                c.endpoints.iter().map(|e| self.ramp_factor(c, e)).collect();
            let ramping = factors.iter().any(Option::is_some);
            c.endpoints
                .iter()
                .zip(factors)
                .map(|(e, factor)| EndpointStatus {
                    address: e.address,
                    admit_permille: factor
                        .map_or(1000, |f| (f * 1000.0).round().clamp(1.0, 1000.0) as u16),
                    weight: if ramping {
                        slow_start::ramped(e.weight, factor.unwrap_or(1.0))
                    } else {
                        e.weight
                    },
                    ineligible: Ineligible {
                        unhealthy: e.health.as_ref().is_some_and(|h| !h.is_healthy()),
                        draining: e.drain.is_some(),
                        ejected: e.outlier.is_ejected(),
                    },
                    draining_since: e.drain.map(|d| d.since),
                    ejected_until: e.outlier.ejected_until(),
                })
                .collect()
        })
    }

    /// Panic mode (Envoy's healthy panic threshold): fewer than
    /// `panic_threshold` percent of the endpoints an operator has not
    /// drained are eligible (neither failing checks nor ejected), so the
    /// cluster balances over all of those instead of crushing the few left
    /// (fail open). A cluster drained entirely is not in panic: nothing is
    /// meant to take traffic.
    pub fn in_panic(&self, cluster: &str) -> bool {
        let Some(c) = self.clusters.get(cluster) else {
            return false;
        };
        let considered: Vec<&EndpointState> =
            c.endpoints.iter().filter(|e| e.drain.is_none()).collect();
        let eligible = considered
            .iter()
            .filter(|e| e.health.as_ref().is_none_or(HealthState::is_healthy))
            .filter(|e| !e.outlier.is_ejected())
            .count();
        c.panic_threshold > 0
            && !considered.is_empty()
            && (eligible as u64) * 100 < u64::from(c.panic_threshold) * considered.len() as u64
    }

    /// Runs outlier detection for `cluster` on the workers' counts
    /// (`samples`, one per endpoint in config order) and returns what
    /// changed. Cheap enough for every control tick: the statistical
    /// detectors run only once per `interval`.
    pub fn evaluate_outliers(
        &mut self,
        now: Instant,
        cluster: &str,
        samples: &[Sample],
    ) -> Vec<(SocketAddr, Transition)> {
        self.now = Some(now);
        let Some(c) = self.clusters.get_mut(cluster) else {
            return Vec::new();
        };
        let Some(config) = &c.outlier else {
            return Vec::new();
        };
        let interval_due = match c.interval_ends {
            Some(end) if end <= now => {
                c.interval_ends = Some(now + config.interval);
                true
            }
            Some(_) => false,
            None => {
                // The first evaluation starts the first interval (and its baselines).
                c.interval_ends = Some(now + config.interval);
                true
            }
        };
        let mut states: Vec<OutlierState> = c.endpoints.iter().map(|e| e.outlier.clone()).collect();
        let changes = outlier::evaluate(config, now, interval_due, &mut states, samples);
        let slow_start = c.slow_start.is_some();
        for (i, (endpoint, state)) in c.endpoints.iter_mut().zip(states).enumerate() {
            endpoint.outlier = state;
            if slow_start
                && changes
                    .iter()
                    .any(|(j, ch)| *j == i && *ch == Change::Returned)
            {
                endpoint.warming_since = Some(now);
            }
        }
        changes
            .into_iter()
            .filter_map(|(i, change)| {
                let address = c.endpoints.get(i)?.address;
                Some((
                    address,
                    match change {
                        Change::Ejected { detector, duration } => {
                            Transition::Ejected { detector, duration }
                        }
                        Change::Returned => Transition::Returned,
                        Change::Overflow { detector } => Transition::EjectionOverflow { detector },
                    },
                ))
            })
            .collect()
    }

    /// The share of its weight a slow-starting endpoint has now; None when
    /// it is not ramping (never started, or its window is over).
    fn ramp_factor(&self, c: &ClusterState, e: &EndpointState) -> Option<f64> {
        let (config, since, now) = (c.slow_start.as_ref()?, e.warming_since?, self.now?);
        let elapsed = now.saturating_duration_since(since);
        (elapsed < config.window).then(|| slow_start::factor(config, elapsed))
    }

    /// Clusters whose weights change with time at `now` (an endpoint is
    /// slow-starting): the control side republishes them on its tick. A
    /// ramp that ended is reported once more, so its full weight is
    /// published, and then forgotten.
    pub fn ramping(&mut self, now: Instant) -> Vec<String> {
        self.now = Some(now);
        let mut names = Vec::new();
        for (name, c) in &mut self.clusters {
            let Some(config) = &c.slow_start else {
                continue;
            };
            let mut any = false;
            for e in &mut c.endpoints {
                if let Some(since) = e.warming_since {
                    any = true;
                    if now.saturating_duration_since(since) >= config.window {
                        e.warming_since = None;
                    }
                }
            }
            if any {
                names.push(name.clone());
            }
        }
        names
    }

    /// Names of clusters with outlier detection on.
    pub fn detecting_outliers(&self) -> Vec<String> {
        self.clusters
            .iter()
            .filter(|(_, c)| c.outlier.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Draining endpoints whose in-flight requests have not all finished
    /// yet: the control side watches their counts and reports `Drained`.
    pub fn drains_in_progress(&self) -> Vec<(String, SocketAddr)> {
        self.clusters
            .iter()
            .flat_map(|(name, c)| {
                c.endpoints
                    .iter()
                    .filter(|e| e.drain.is_some_and(|d| !d.finished))
                    .map(move |e| (name.clone(), e.address))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// One cluster from real config text, so defaults are the real ones.
    fn cluster(name: &str, ports: &[(u16, u32)], check: bool) -> ClusterConfig {
        let endpoints: Vec<String> = ports
            .iter()
            .map(|(port, weight)| {
                format!("{{ address = \"127.0.0.1:{port}\", weight = {weight} }}")
            })
            .collect();
        let check = if check {
            "health_check = { type = \"tcp\", healthy_threshold = 2, unhealthy_threshold = 2 }"
        } else {
            ""
        };
        let src = format!(
            "[[listeners]]\nname = \"l\"\naddress = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"{name}\"\n\
             [[clusters]]\nname = \"{name}\"\nendpoints = [{}]\n{check}\n",
            endpoints.join(", ")
        );
        crate::config::parse("t.toml", &src)
            .unwrap()
            .clusters
            .remove(0)
    }

    fn check(cluster: &str, port: u16, success: bool) -> Event {
        Event::CheckResult {
            cluster: cluster.into(),
            address: addr(port),
            success,
        }
    }

    fn eligible(m: &Manager, cluster: &str) -> Vec<u16> {
        m.statuses(cluster)
            .iter()
            .filter(|s| s.is_eligible())
            .map(|s| s.address.port())
            .collect()
    }

    #[test]
    fn check_results_eject_and_restore_after_their_thresholds() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        m.configure(t0, &[cluster("web", &[(1, 1), (2, 1)], true)]);
        assert_eq!(eligible(&m, "web"), [1, 2], "endpoints start healthy");
        assert_eq!(m.handle(t0, &check("web", 1, false)), Ok(None));
        assert_eq!(
            m.handle(t0, &check("web", 1, false)),
            Ok(Some(Transition::BecameUnhealthy))
        );
        assert_eq!(eligible(&m, "web"), [2]);
        assert_eq!(m.statuses("web")[0].ineligible.names(), ["unhealthy"]);
        m.handle(t0, &check("web", 1, true)).unwrap();
        assert_eq!(
            m.handle(t0, &check("web", 1, true)),
            Ok(Some(Transition::BecameHealthy))
        );
        assert_eq!(eligible(&m, "web"), [1, 2]);
    }

    #[test]
    fn a_passing_check_does_not_undo_a_drain() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        m.configure(t0, &[cluster("web", &[(1, 1), (2, 1)], true)]);
        let drain = Event::Drain {
            cluster: "web".into(),
            address: addr(1),
        };
        assert_eq!(m.handle(t0, &drain), Ok(Some(Transition::DrainStarted)));
        assert_eq!(m.handle(t0, &drain), Ok(None), "draining twice is a no-op");
        for _ in 0..5 {
            m.handle(t0, &check("web", 1, true)).unwrap();
        }
        assert_eq!(eligible(&m, "web"), [2]);
        // Unhealthy while draining: both reasons are reported.
        m.handle(t0, &check("web", 1, false)).unwrap();
        m.handle(t0, &check("web", 1, false)).unwrap();
        assert_eq!(
            m.statuses("web")[0].ineligible.names(),
            ["unhealthy", "draining"]
        );
        let undrain = Event::Undrain {
            cluster: "web".into(),
            address: addr(1),
        };
        assert_eq!(m.handle(t0, &undrain), Ok(Some(Transition::Undrained)));
        assert_eq!(
            eligible(&m, "web"),
            [2],
            "still unhealthy after the undrain"
        );
    }

    #[test]
    fn a_drain_finishes_once_with_its_duration() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        m.configure(t0, &[cluster("web", &[(1, 1)], false)]);
        let ev = |e: fn(String, SocketAddr) -> Event| e("web".into(), addr(1));
        m.handle(
            t0,
            &ev(|cluster, address| Event::Drain { cluster, address }),
        )
        .unwrap();
        assert_eq!(m.drains_in_progress(), [("web".to_string(), addr(1))]);
        let drained = ev(|cluster, address| Event::Drained { cluster, address });
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(
            m.handle(later, &drained),
            Ok(Some(Transition::DrainFinished {
                took: Duration::from_millis(1500)
            }))
        );
        assert_eq!(m.handle(later, &drained), Ok(None));
        assert!(m.drains_in_progress().is_empty());
        assert!(
            !Transition::DrainFinished {
                took: Duration::ZERO
            }
            .republish()
        );
        assert_eq!(m.statuses("web")[0].draining_since, Some(t0));
    }

    #[test]
    fn a_reload_keeps_the_state_of_endpoints_it_keeps() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        m.configure(
            t0,
            &[
                cluster("web", &[(1, 1), (2, 1)], true),
                cluster("api", &[(3, 1)], false),
            ],
        );
        m.handle(t0, &check("web", 1, false)).unwrap();
        m.handle(t0, &check("web", 1, false)).unwrap();
        m.handle(
            t0,
            &Event::Drain {
                cluster: "web".into(),
                address: addr(2),
            },
        )
        .unwrap();
        // One failure toward ejecting endpoint 4 is not carried anywhere: it is new.
        // The reload changes weights, adds an endpoint, removes a cluster.
        m.configure(t0, &[cluster("web", &[(2, 5), (1, 3), (4, 1)], true)]);
        let statuses = m.statuses("web");
        let by_port = |p: u16| statuses.iter().find(|s| s.address.port() == p).unwrap();
        assert!(by_port(1).ineligible.unhealthy, "still ejected");
        assert!(by_port(2).ineligible.draining, "still draining");
        // Endpoint 4 is new, so it slow-starts: weights are scaled meanwhile.
        assert_eq!(
            by_port(2).weight,
            5 * slow_start::SCALE,
            "the new weight applies"
        );
        assert!(by_port(4).is_eligible(), "a new endpoint starts healthy");
        assert_eq!(
            by_port(4).weight,
            slow_start::SCALE / 10,
            "from 10 % of its weight"
        );
        assert_eq!(eligible(&m, "web"), [4]);
        assert_eq!(
            m.handle(t0, &check("api", 3, true)),
            Err(UnknownTarget::Cluster("api".into()))
        );
        // The ejected endpoint still needs its full healthy streak.
        m.handle(t0, &check("web", 1, true)).unwrap();
        assert_eq!(eligible(&m, "web"), [4]);
        m.handle(t0, &check("web", 1, true)).unwrap();
        assert_eq!(eligible(&m, "web"), [1, 4]);
    }

    #[test]
    fn removing_the_check_makes_an_ejected_endpoint_eligible() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        m.configure(t0, &[cluster("web", &[(1, 1)], true)]);
        m.handle(t0, &check("web", 1, false)).unwrap();
        m.handle(t0, &check("web", 1, false)).unwrap();
        assert!(eligible(&m, "web").is_empty());
        m.configure(t0, &[cluster("web", &[(1, 1)], false)]);
        assert_eq!(eligible(&m, "web"), [1]);
        assert_eq!(m.handle(t0, &check("web", 1, false)), Ok(None));
    }

    #[test]
    fn panic_mode_starts_below_the_threshold_and_ignores_drained_endpoints() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        // Four endpoints, checks ejecting after two failures, threshold 50 %.
        m.configure(
            t0,
            &[cluster("web", &[(1, 1), (2, 1), (3, 1), (4, 1)], true)],
        );
        let eject = |m: &mut Manager, port| {
            m.handle(t0, &check("web", port, false)).unwrap();
            m.handle(t0, &check("web", port, false)).unwrap();
        };
        eject(&mut m, 1);
        eject(&mut m, 2);
        assert!(!m.in_panic("web"), "2 of 4 is not below 50 %");
        eject(&mut m, 3);
        assert!(m.in_panic("web"), "1 of 4 is");
        let statuses = m.statuses("web");
        assert!(
            statuses.iter().all(|s| s.is_routable(true)),
            "panic routes to all"
        );
        assert_eq!(statuses.iter().filter(|s| s.is_routable(false)).count(), 1);
        // A drained endpoint counts neither way and stays out even in panic.
        m.handle(
            t0,
            &Event::Drain {
                cluster: "web".into(),
                address: addr(1),
            },
        )
        .unwrap();
        assert!(m.in_panic("web"), "1 of 3 undrained");
        assert!(!m.statuses("web")[0].is_routable(true));
        m.handle(t0, &check("web", 2, true)).unwrap();
        m.handle(t0, &check("web", 2, true)).unwrap();
        assert!(!m.in_panic("web"), "2 of 3 undrained are eligible");
        // Threshold 0 turns it off.
        let mut off = cluster("web", &[(1, 1), (2, 1)], true);
        off.panic_threshold = 0;
        m.configure(t0, &[off]);
        eject(&mut m, 1);
        eject(&mut m, 2);
        assert!(!m.in_panic("web"));
    }

    #[test]
    fn outlier_ejection_counts_toward_panic_and_a_passing_check_ends_it() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        m.configure(t0, &[cluster("web", &[(1, 1), (2, 1)], true)]);
        let failing = Sample {
            consecutive_5xx: 5,
            consecutive_gateway: 0,
            requests: 5,
            failures: 5,
        };
        let changes = m.evaluate_outliers(t0, "web", &[failing, Sample::default()]);
        assert!(matches!(
            changes[..],
            [(a, Transition::Ejected { detector: Detector::Consecutive5xx, .. })] if a == addr(1)
        ));
        assert_eq!(eligible(&m, "web"), [2]);
        assert_eq!(m.statuses("web")[0].ineligible.names(), ["ejected"]);
        assert!(m.statuses("web")[0].ejected_until.is_some());
        assert!(
            !m.in_panic("web"),
            "one of two eligible is the 50 % threshold"
        );
        // A reload keeps the ejection.
        m.configure(t0, &[cluster("web", &[(1, 1), (2, 1)], true)]);
        assert_eq!(eligible(&m, "web"), [2]);
        assert_eq!(
            m.handle(t0, &check("web", 1, true)),
            Ok(Some(Transition::Returned))
        );
        assert_eq!(eligible(&m, "web"), [1, 2]);
    }

    #[test]
    fn endpoints_joining_after_start_up_ramp_over_the_window() {
        let t0 = crate::clock::now();
        let mut m = Manager::new();
        let weights =
            |m: &Manager| -> Vec<u32> { m.statuses("web").iter().map(|s| s.weight).collect() };
        m.configure(t0, &[cluster("web", &[(1, 2), (2, 2)], true)]);
        assert_eq!(weights(&m), [2, 2], "the first config does not slow-start");
        assert!(m.ramping(t0).is_empty());
        // A reload adds endpoint 3: it ramps linearly from 10 % over 30 s.
        m.configure(t0, &[cluster("web", &[(1, 2), (2, 2), (3, 2)], true)]);
        assert_eq!(weights(&m), [200, 200, 20]);
        assert_eq!(m.ramping(t0 + Duration::from_secs(15)), ["web"]);
        assert_eq!(weights(&m), [200, 200, 100], "half way, half its weight");
        assert_eq!(
            m.ramping(t0 + Duration::from_secs(30)),
            ["web"],
            "once more at the end"
        );
        assert_eq!(weights(&m), [2, 2, 2]);
        assert!(m.ramping(t0 + Duration::from_secs(31)).is_empty());
        // Undrained and healthy again: both ramp from the moment they return.
        let t1 = t0 + Duration::from_secs(60);
        let drain = |address| Event::Drain {
            cluster: "web".into(),
            address,
        };
        let undrain = |address| Event::Undrain {
            cluster: "web".into(),
            address,
        };
        m.handle(t1, &drain(addr(1))).unwrap();
        m.handle(t1, &undrain(addr(1))).unwrap();
        for _ in 0..2 {
            m.handle(t1, &check("web", 2, false)).unwrap();
        }
        for _ in 0..2 {
            m.handle(t1, &check("web", 2, true)).unwrap();
        }
        assert_eq!(m.ramping(t1 + Duration::from_secs(3)), ["web"]);
        assert_eq!(weights(&m), [20, 20, 200]);
    }

    #[test]
    fn unknown_endpoints_are_errors_not_panics() {
        let mut m = Manager::new();
        m.configure(crate::clock::now(), &[cluster("web", &[(1, 1)], false)]);
        assert_eq!(
            m.handle(
                crate::clock::now(),
                &Event::Drain {
                    cluster: "web".into(),
                    address: addr(9)
                }
            ),
            Err(UnknownTarget::Endpoint {
                cluster: "web".into(),
                address: addr(9)
            })
        );
    }
}
