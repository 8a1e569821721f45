//! Turns the file as written ([`schema`]) into the checked [`model`], collecting
//! every problem in one pass instead of stopping at the first.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use fulcrum_balance::Policy;
use toml::Spanned;

use super::defaults;
use super::diagnostic::{Collector, did_you_mean};
use super::model::*;
use super::schema::*;

const POLICIES: [&str; 9] = [
    "round_robin",
    "weighted_round_robin",
    "random",
    "least_request",
    "peak_ewma",
    "ring_hash",
    "maglev",
    "consistent_bounded",
    "rendezvous",
];
const MAX_WEIGHT: i64 = 10_000;

pub fn validate(file: FileConfig, c: &mut Collector<'_>, base: &Path) -> Option<Config> {
    let admin = match &file.admin.address {
        Some(a) => socket_addr(c, a, "admin.address", false),
        None => defaults::ADMIN_ADDRESS.parse().ok(),
    };
    let token_file = file.admin.token_file.as_ref().and_then(|t| {
        let path = base.join(t.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => Some(path),
            Ok(_) => {
                c.error(
                    t.span(),
                    "admin.token_file",
                    format!("{} is empty", path.display()),
                    Some("write a long random token in it, e.g. `openssl rand -hex 32 > FILE`".into()),
                );
                None
            }
            Err(e) => {
                c.error(
                    t.span(),
                    "admin.token_file",
                    format!("cannot read {}: {e}", path.display()),
                    Some("check the path (relative paths start at the config file's directory) and that the file is readable".into()),
                );
                None
            }
        }
    });
    let runtime = runtime(c, &file.runtime, base);
    let clusters: Vec<Option<ClusterConfig>> = file
        .clusters
        .iter()
        .enumerate()
        .map(|(i, s)| cluster(c, i, s, base))
        .collect();
    let cluster_names: HashMap<&str, usize> = unique_names(
        c,
        file.clusters.iter().map(|s| &s.name),
        "clusters",
        "cluster",
    );
    let listeners: Vec<Option<ListenerConfig>> = file
        .listeners
        .iter()
        .enumerate()
        .map(|(i, s)| listener(c, i, s, &cluster_names, base))
        .collect();
    unique_names(
        c,
        file.listeners.iter().map(|s| &s.name),
        "listeners",
        "listener",
    );
    if file.listeners.is_empty() {
        c.error(
            0..0,
            "listeners",
            "no listeners are defined, so fulcrum would accept no traffic",
            Some("add a [[listeners]] table with a name, an address and at least one [[listeners.routes]]".into()),
        );
    }
    // A UDP and a stream listener may share an address (DNS does).
    let mut seen_addrs: HashMap<(SocketAddr, bool), usize> = HashMap::new();
    for (i, l) in listeners.iter().enumerate() {
        // Port 0 asks the kernel for a free port: never a clash.
        if let Some(l) = l
            && l.address.port() != 0
            && let Some(first) =
                seen_addrs.insert((l.address, l.protocol == ListenerProtocol::Udp), i)
        {
            c.error(
                file.listeners[i].address.span(),
                format!("listeners[{i}].address"),
                format!("{} is already used by listeners[{first}]", l.address),
                Some("give each listener its own address or port".into()),
            );
        }
    }
    cluster_usage(c, &file, &listeners, &clusters);
    if !c.diagnostics.is_empty() {
        return None;
    }
    Some(Config {
        admin: AdminConfig {
            address: admin?,
            token_file,
        },
        runtime: runtime?,
        listeners: listeners.into_iter().collect::<Option<_>>()?,
        clusters: clusters.into_iter().collect::<Option<_>>()?,
    })
}

/// Cluster options that only some listener kinds can honour, checked where
/// the listener uses the cluster so the message names both.
fn cluster_usage(
    c: &mut Collector<'_>,
    file: &FileConfig,
    listeners: &[Option<ListenerConfig>],
    clusters: &[Option<ClusterConfig>],
) {
    for l in listeners.iter() {
        let Some(l) = l else { continue };
        let used = l
            .routes
            .iter()
            .map(|r| r.cluster_index)
            .chain(l.cluster.as_ref().map(|r| r.index));
        for index in used {
            let (Some(Some(cl)), Some(section)) = (clusters.get(index), file.clusters.get(index))
            else {
                continue;
            };
            let mut refuse = |field: &str, span: Option<std::ops::Range<usize>>, why: &str| {
                c.error(
                    span.unwrap_or(0..0),
                    format!("clusters[{index}].{field}"),
                    format!(
                        "cluster \"{}\" sets `{field}`, but listener \"{}\" uses it and {why}",
                        cl.name, l.name
                    ),
                    Some(format!(
                        "remove `{field}`, or give listener \"{}\" its own cluster",
                        l.name
                    )),
                );
            };
            match l.protocol {
                ListenerProtocol::Http => {
                    if cl.proxy_protocol.is_some() {
                        refuse(
                            "proxy_protocol",
                            section.proxy_protocol.as_ref().map(|v| v.span()),
                            "HTTP upstream connections are pooled and shared by many clients, so they cannot carry one client's PROXY header",
                        );
                    }
                    if cl.max_connections.is_some() {
                        refuse(
                            "max_connections",
                            section.max_connections.as_ref().map(|v| v.span()),
                            "it limits L4 flows only; for HTTP use [clusters.circuit_breakers] max_connections",
                        );
                    }
                    if section.connect_attempts.is_some() {
                        refuse(
                            "connect_attempts",
                            section.connect_attempts.as_ref().map(|v| v.span()),
                            "it applies to L4 flows only; for HTTP use [clusters.retry_policy] num_retries",
                        );
                    }
                }
                ListenerProtocol::Udp => {
                    if cl.proxy_protocol.is_some() {
                        refuse(
                            "proxy_protocol",
                            section.proxy_protocol.as_ref().map(|v| v.span()),
                            "fulcrum sends PROXY headers on TCP only",
                        );
                    }
                }
                ListenerProtocol::Tcp | ListenerProtocol::TlsPassthrough => {}
            }
            if l.protocol.is_l4() && cl.tls.is_some() {
                refuse(
                    "tls",
                    section.tls.as_ref().map(|v| v.span()),
                    "L4 listeners forward the client's bytes as they are (to pass TLS through untouched use `protocol = \"tls_passthrough\"`; to re-encrypt, terminate on an http listener)",
                );
            }
        }
    }
}

fn runtime(c: &mut Collector<'_>, s: &RuntimeSection, base: &Path) -> Option<RuntimeConfig> {
    let workers = match &s.workers {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(w) if (1..=1024).contains(w.get_ref()) => *w.get_ref() as usize,
        Some(w) => {
            c.error(
                w.span(),
                "runtime.workers",
                format!("{} worker threads is out of range", w.get_ref()),
                Some("use 1 to 1024, or leave it out to run one worker per CPU core".into()),
            );
            1
        }
    };
    if let Some(level) = &s.log_level
        && tracing_subscriber::EnvFilter::try_new(level.get_ref()).is_err()
    {
        c.error(
                level.span(),
                "runtime.log_level",
                format!("\"{}\" is not a log level or filter", level.get_ref()),
                Some("use one of error, warn, info, debug, trace (or a RUST_LOG-style filter such as \"info,fulcrum=debug\")".into()),
            );
    }
    let drain_timeout = duration(
        c,
        &s.drain_timeout,
        "runtime.drain_timeout",
        defaults::DRAIN_TIMEOUT,
    );
    let shutdown_delay = duration(
        c,
        &s.shutdown_delay,
        "runtime.shutdown_delay",
        defaults::SHUTDOWN_DELAY,
    );
    Some(RuntimeConfig {
        workers,
        log_level: s.log_level.as_ref().map(|l| l.get_ref().clone()),
        drain_timeout: drain_timeout?,
        shutdown_delay: shutdown_delay?,
        watch_config: s.watch_config.as_ref().is_some_and(|w| *w.get_ref()),
        upgrade_socket: s.upgrade_socket.as_ref().map(|p| base.join(p.get_ref())),
    })
}

fn listener(
    c: &mut Collector<'_>,
    i: usize,
    s: &ListenerSection,
    clusters: &HashMap<&str, usize>,
    base: &Path,
) -> Option<ListenerConfig> {
    let at = format!("listeners[{i}]");
    let address = socket_addr(c, &s.address, &format!("{at}.address"), false);
    let protocol = match &s.protocol {
        None => Some(ListenerProtocol::Http),
        Some(p) => match p.get_ref().as_str() {
            "http" => Some(ListenerProtocol::Http),
            "tcp" => Some(ListenerProtocol::Tcp),
            "udp" => Some(ListenerProtocol::Udp),
            "tls_passthrough" => Some(ListenerProtocol::TlsPassthrough),
            other => {
                c.error(
                    p.span(),
                    format!("{at}.protocol"),
                    format!("unknown listener protocol \"{other}\""),
                    Some(match did_you_mean(other, LISTENER_PROTOCOLS) {
                        Some(m) => format!("did you mean \"{m}\"? Listener protocols are {}", LISTENER_PROTOCOLS.join(", ")),
                        None => "use \"http\" (HTTP/1.1 and cleartext HTTP/2), \"tcp\", \"udp\" or \"tls_passthrough\" (TLS routed by SNI, not terminated)".into(),
                    }),
                );
                None
            }
        },
    };
    let header_timeout = duration(
        c,
        &s.request_header_timeout,
        &format!("{at}.request_header_timeout"),
        defaults::REQUEST_HEADER_TIMEOUT,
    );
    let idle_default = match protocol {
        Some(ListenerProtocol::Tcp | ListenerProtocol::TlsPassthrough) => {
            defaults::TCP_IDLE_TIMEOUT
        }
        Some(ListenerProtocol::Udp) => defaults::UDP_IDLE_TIMEOUT,
        _ => defaults::DOWNSTREAM_IDLE_TIMEOUT,
    };
    let idle_timeout = duration(
        c,
        &s.idle_timeout,
        &format!("{at}.idle_timeout"),
        idle_default,
    );
    let tunnel_idle_timeout = duration(
        c,
        &s.tunnel_idle_timeout,
        &format!("{at}.tunnel_idle_timeout"),
        defaults::TUNNEL_IDLE_TIMEOUT,
    );
    let limits = http_limits(c, s, &at);
    let inspect_timeout = duration(
        c,
        &s.inspect_timeout,
        &format!("{at}.inspect_timeout"),
        defaults::INSPECT_TIMEOUT,
    );
    let name = s.name.get_ref();
    let cluster = s
        .cluster
        .as_ref()
        .and_then(|cl| cluster_ref(c, cl, &format!("{at}.cluster"), "listener", clusters));
    let protocol = protocol?;
    // Which fields mean something for this protocol: one message per misplaced field.
    let misplaced =
        |c: &mut Collector<'_>, span: std::ops::Range<usize>, field: &str, help: &str| {
            c.error(
                span,
                format!("{at}.{field}"),
                format!(
                    "`{field}` does not apply to a {} listener",
                    protocol_name(protocol)
                ),
                Some(help.into()),
            );
        };
    let redirect = s.redirect_to_https.as_ref().is_some_and(|r| *r.get_ref());
    if protocol != ListenerProtocol::Http {
        let http_only = [
            (
                "tunnel_idle_timeout",
                s.tunnel_idle_timeout.as_ref().map(Spanned::span),
            ),
            (
                "request_body_timeout",
                s.request_body_timeout.as_ref().map(Spanned::span),
            ),
            (
                "max_request_header_size",
                s.max_request_header_size.as_ref().map(Spanned::span),
            ),
            (
                "max_request_headers",
                s.max_request_headers.as_ref().map(Spanned::span),
            ),
            (
                "http2_max_concurrent_streams",
                s.http2_max_concurrent_streams.as_ref().map(Spanned::span),
            ),
        ];
        for (field, span) in http_only {
            if let Some(span) = span {
                misplaced(
                    c,
                    span,
                    field,
                    "it bounds HTTP requests; an L4 flow's inactivity limit is the listener's `idle_timeout`",
                );
            }
        }
    }
    match protocol {
        ListenerProtocol::Http => {
            if s.routes.is_empty() && !redirect {
                c.error(
                    s.name.span(),
                    format!("{at}.routes"),
                    format!("listener \"{name}\" has no routes, so every request would get 404"),
                    Some(
                        "add a [[listeners.routes]] table with at least `cluster = \"...\"`".into(),
                    ),
                );
            }
            if let Some(cl) = &s.cluster {
                misplaced(
                    c,
                    cl.span(),
                    "cluster",
                    "HTTP listeners choose a cluster per request: add a [[listeners.routes]] table with `cluster = \"...\"`",
                );
            }
        }
        ListenerProtocol::Tcp | ListenerProtocol::Udp => {
            if s.cluster.is_none() {
                c.error(
                    s.name.span(),
                    format!("{at}.cluster"),
                    format!(
                        "{} listener \"{name}\" names no cluster to forward to",
                        protocol_name(protocol)
                    ),
                    Some("add `cluster = \"...\"` to the listener".into()),
                );
            }
            if !s.routes.is_empty() {
                misplaced(
                    c,
                    s.name.span(),
                    "routes",
                    "an L4 listener forwards every flow to its `cluster`; remove the routes (tls_passthrough listeners route by SNI)",
                );
            }
        }
        ListenerProtocol::TlsPassthrough => {
            if s.cluster.is_none() && s.routes.is_empty() {
                c.error(
                    s.name.span(),
                    format!("{at}.routes"),
                    format!("tls_passthrough listener \"{name}\" has no routes and no default cluster"),
                    Some("add [[listeners.routes]] tables with `host = \"name.example.com\"` (matched against the SNI) and `cluster`, and/or a default `cluster = \"...\"` on the listener".into()),
                );
            }
            for (j, r) in s.routes.iter().enumerate() {
                let rat = format!("routes[{j}]");
                if let Some(p) = &r.path_prefix {
                    misplaced(
                        c,
                        p.span(),
                        &format!("{rat}.path_prefix"),
                        "TLS passthrough sees no HTTP path; route on `host` (the SNI) only",
                    );
                }
                if let Some(h) = r.hash_policy.first() {
                    misplaced(
                        c,
                        h.span(),
                        &format!("{rat}.hash_policy"),
                        "L4 flows are hashed by the listener's `hash_key`",
                    );
                }
                if let Some(a) = &r.affinity_cookie {
                    misplaced(
                        c,
                        a.span(),
                        &format!("{rat}.affinity_cookie"),
                        "TLS passthrough cannot set cookies; use a hashing policy with `hash_key = \"source_ip\"`",
                    );
                }
            }
        }
    }
    if !protocol.is_l4()
        && let Some(h) = &s.hash_key
    {
        misplaced(
            c,
            h.span(),
            "hash_key",
            "HTTP routes choose what to hash with `hash_policy`",
        );
    }
    let hash_key = match &s.hash_key {
        None => Some(FlowHashKey::FiveTuple),
        Some(h) => match h.get_ref().as_str() {
            "five_tuple" => Some(FlowHashKey::FiveTuple),
            "source_ip" => Some(FlowHashKey::SourceIp),
            other => {
                c.error(
                    h.span(),
                    format!("{at}.hash_key"),
                    format!("unknown hash key \"{other}\""),
                    Some("use \"five_tuple\" (each flow on its own) or \"source_ip\" (all flows of a client together)".into()),
                );
                None
            }
        },
    };
    let max_connections = match (&s.max_connections, protocol) {
        (Some(m), ListenerProtocol::Udp) => {
            misplaced(
                c,
                m.span(),
                "max_connections",
                "UDP has no connections; cap sessions with `max_sessions`",
            );
            None
        }
        (m, _) => count(c, m, &format!("{at}.max_connections")),
    };
    let max_sessions = match (&s.max_sessions, protocol) {
        (None, ListenerProtocol::Udp) => Some(Some(defaults::MAX_UDP_SESSIONS)),
        (Some(m), ListenerProtocol::Udp) => {
            count(c, &Some(m.clone()), &format!("{at}.max_sessions"))
        }
        (Some(m), _) => {
            misplaced(
                c,
                m.span(),
                "max_sessions",
                "only UDP listeners have sessions; cap connections with `max_connections`",
            );
            None
        }
        (None, _) => None,
    };
    let mut trusted = Vec::new();
    if let Some(list) = &s.accept_proxy_protocol_from {
        if protocol == ListenerProtocol::Udp {
            misplaced(
                c,
                list.span(),
                "accept_proxy_protocol_from",
                "PROXY protocol is accepted on tcp, tls_passthrough and http listeners",
            );
        }
        for (k, net) in list.get_ref().iter().enumerate() {
            let text = net.get_ref();
            let parsed = text.parse::<ipnet::IpNet>().ok().or_else(|| {
                text.parse::<std::net::IpAddr>()
                    .ok()
                    .map(ipnet::IpNet::from)
            });
            match parsed {
                Some(n) => trusted.push(n.trunc()),
                None => c.error(
                    net.span(),
                    format!("{at}.accept_proxy_protocol_from[{k}]"),
                    format!("\"{text}\" is not an IP network"),
                    Some("write a network in CIDR form (\"10.0.0.0/8\", \"fd00::/8\") or a single address (\"192.0.2.7\")".into()),
                ),
            }
        }
        if list.get_ref().is_empty() {
            c.error(
                list.span(),
                format!("{at}.accept_proxy_protocol_from"),
                "the list of trusted networks is empty".to_string(),
                Some("list the networks of the L4 tier in front (\"10.0.0.0/8\"), or remove the field to turn PROXY protocol off".into()),
            );
        }
    }
    let tls = match (&s.tls, protocol) {
        (None, _) => Some(None),
        (Some(t), ListenerProtocol::Http) => super::tls::tls(c, &at, t, base).map(Some),
        (Some(t), _) => {
            misplaced(
                c,
                t.span(),
                "tls",
                "TLS is terminated on http listeners; to route TLS by SNI without terminating it use `protocol = \"tls_passthrough\"`",
            );
            None
        }
    };
    let redirect_to_https = match (&s.redirect_to_https, &s.tls, protocol) {
        (Some(r), _, p) if *r.get_ref() && p != ListenerProtocol::Http => {
            misplaced(
                c,
                r.span(),
                "redirect_to_https",
                "only http listeners answer with redirects",
            );
            None
        }
        (Some(r), Some(_), _) if *r.get_ref() => {
            misplaced(
                c,
                r.span(),
                "redirect_to_https",
                "this listener already terminates TLS; set redirect_to_https on the plain http listener",
            );
            None
        }
        (Some(r), _, _) if *r.get_ref() => match &s.https_port {
            None => Some(Some(443)),
            Some(port) => match u16::try_from(*port.get_ref()) {
                Ok(p) if p > 0 => Some(Some(p)),
                _ => {
                    c.error(
                        port.span(),
                        format!("{at}.https_port"),
                        format!("{} is not a port", port.get_ref()),
                        Some("use the port of the https listener, 1-65535 (default 443)".into()),
                    );
                    None
                }
            },
        },
        (_, _, _) => {
            if let Some(port) = &s.https_port {
                misplaced(
                    c,
                    port.span(),
                    "https_port",
                    "https_port only goes with `redirect_to_https = true`",
                );
            }
            Some(None)
        }
    };
    let routes: Vec<Option<RouteConfig>> = s
        .routes
        .iter()
        .enumerate()
        .map(|(j, r)| route(c, &format!("{at}.routes[{j}]"), r, clusters))
        .collect();
    Some(ListenerConfig {
        name: name.clone(),
        address: address?,
        protocol,
        request_header_timeout: header_timeout?,
        idle_timeout: idle_timeout?,
        tunnel_idle_timeout: tunnel_idle_timeout?,
        limits: limits?,
        routes: routes.into_iter().collect::<Option<_>>()?,
        cluster,
        hash_key: hash_key?,
        max_connections: max_connections.flatten(),
        max_sessions: max_sessions.flatten(),
        accept_proxy_protocol_from: trusted,
        inspect_timeout: inspect_timeout?,
        tls: tls?,
        redirect_to_https: redirect_to_https?,
    })
}

const LISTENER_PROTOCOLS: [&str; 4] = ["http", "tcp", "udp", "tls_passthrough"];

fn protocol_name(p: ListenerProtocol) -> &'static str {
    match p {
        ListenerProtocol::Http => "http",
        ListenerProtocol::Tcp => "tcp",
        ListenerProtocol::Udp => "udp",
        ListenerProtocol::TlsPassthrough => "tls_passthrough",
    }
}

/// An optional positive limit (connections, sessions, attempts): `Some(None)` when unset.
/// The HTTP resource bounds of a listener, each with its default.
fn http_limits(c: &mut Collector<'_>, s: &ListenerSection, at: &str) -> Option<HttpLimits> {
    let d = HttpLimits::default();
    let body = duration(
        c,
        &s.request_body_timeout,
        &format!("{at}.request_body_timeout"),
        d.request_body_timeout,
    );
    // hyper's HTTP/1.1 reader needs at least 8 KiB; 1 MiB is far past
    // any real header section.
    let size = bounded(
        c,
        &s.max_request_header_size,
        &format!("{at}.max_request_header_size"),
        8192..=1024 * 1024,
        d.max_request_header_size,
    );
    let headers = bounded(
        c,
        &s.max_request_headers,
        &format!("{at}.max_request_headers"),
        1..=10_000,
        d.max_request_headers,
    );
    let streams = bounded(
        c,
        &s.http2_max_concurrent_streams,
        &format!("{at}.http2_max_concurrent_streams"),
        1..=10_000,
        d.http2_max_concurrent_streams,
    );
    Some(HttpLimits {
        request_body_timeout: body?,
        max_request_header_size: size?,
        max_request_headers: headers?,
        http2_max_concurrent_streams: streams?,
    })
}

/// A whole number in `range`, or `default` when the field is left out.
pub(super) fn bounded(
    c: &mut Collector<'_>,
    v: &Option<Spanned<i64>>,
    at: &str,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Option<u32> {
    let Some(v) = v else { return Some(default) };
    let help = format!(
        "use a whole number from {} to {} (default {default})",
        range.start(),
        range.end()
    );
    whole_number(c, v, at, range, help)
}

/// An optional limit: a whole number from 1, or none when left out.
fn count(c: &mut Collector<'_>, v: &Option<Spanned<i64>>, at: &str) -> Option<Option<u32>> {
    let Some(v) = v else { return Some(None) };
    let help = format!(
        "use a whole number from 1 to {}, or leave it out for no limit",
        u32::MAX
    );
    whole_number(c, v, at, 1..=u32::MAX, help).map(Some)
}

fn whole_number(
    c: &mut Collector<'_>,
    v: &Spanned<i64>,
    at: &str,
    range: std::ops::RangeInclusive<u32>,
    help: String,
) -> Option<u32> {
    match u32::try_from(*v.get_ref()) {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            c.error(
                v.span(),
                at,
                format!("{} is out of range", v.get_ref()),
                Some(help),
            );
            None
        }
    }
}

/// Resolves a cluster name, with a did-you-mean when it is not defined.
fn cluster_ref(
    c: &mut Collector<'_>,
    v: &Spanned<String>,
    at: &str,
    who: &str,
    clusters: &HashMap<&str, usize>,
) -> Option<ClusterRef> {
    let name = v.get_ref();
    if let Some(&index) = clusters.get(name.as_str()) {
        return Some(ClusterRef {
            name: name.clone(),
            index,
        });
    }
    let help = match did_you_mean(name, clusters.keys().copied()) {
        Some(m) => format!("did you mean \"{m}\"?"),
        None if clusters.is_empty() => "define it in a [[clusters]] table".into(),
        None => {
            let mut known: Vec<_> = clusters.keys().copied().collect();
            known.sort_unstable();
            format!("defined clusters are: {}", known.join(", "))
        }
    };
    c.error(
        v.span(),
        at,
        format!("{who} points to cluster \"{name}\", which is not defined"),
        Some(help),
    );
    None
}

fn route(
    c: &mut Collector<'_>,
    at: &str,
    s: &RouteSection,
    clusters: &HashMap<&str, usize>,
) -> Option<RouteConfig> {
    let host = match &s.host {
        None => Some(HostMatch::Any),
        Some(h) => host_match(c, h, &format!("{at}.host")),
    };
    let path_prefix = match &s.path_prefix {
        None => Some("/".to_string()),
        Some(p) if p.get_ref().starts_with('/') => Some(p.get_ref().clone()),
        Some(p) => {
            c.error(
                p.span(),
                format!("{at}.path_prefix"),
                format!("path prefix \"{}\" does not start with \"/\"", p.get_ref()),
                Some(format!("write it as \"/{}\"", p.get_ref())),
            );
            None
        }
    };
    let cluster = cluster_ref(c, &s.cluster, &format!("{at}.cluster"), "route", clusters);
    let hash_policy = hash_policy(c, at, s);
    let retry_policy = s
        .retry_policy
        .as_ref()
        .map(|r| super::failure::retry_policy(c, at, Some(r)).map(std::sync::Arc::new));
    Some(RouteConfig {
        host: host?,
        path_prefix: path_prefix?,
        cluster: s.cluster.get_ref().clone(),
        cluster_index: cluster?.index,
        hash_policy: hash_policy?,
        retry_policy: match retry_policy {
            None => None,
            Some(r) => Some(r?),
        },
    })
}

fn hash_policy(c: &mut Collector<'_>, at: &str, s: &RouteSection) -> Option<HashPolicy> {
    let mut sources = Vec::new();
    let mut ok = true;
    for (k, entry) in s.hash_policy.iter().enumerate() {
        let e = entry.get_ref();
        let mut set: Vec<HashSource> = Vec::new();
        let mut entry_ok = true;
        if e.source_ip == Some(true) {
            set.push(HashSource::SourceIp);
        }
        if e.path == Some(true) {
            set.push(HashSource::Path);
        }
        if let Some(h) = &e.header {
            match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(name) => set.push(HashSource::Header(name)),
                Err(_) => {
                    c.error(
                        h.span(),
                        format!("{at}.hash_policy[{k}].header"),
                        format!("\"{}\" is not a header name", h.get_ref()),
                        None,
                    );
                    entry_ok = false;
                }
            }
        }
        for (field, value) in [
            ("cookie", &e.cookie),
            ("query_parameter", &e.query_parameter),
        ] {
            if let Some(v) = value {
                if v.get_ref().is_empty() {
                    c.error(
                        v.span(),
                        format!("{at}.hash_policy[{k}].{field}"),
                        format!("the {field} name is empty"),
                        None,
                    );
                    entry_ok = false;
                } else if field == "cookie" {
                    set.push(HashSource::Cookie(v.get_ref().clone()));
                } else {
                    set.push(HashSource::QueryParameter(v.get_ref().clone()));
                }
            }
        }
        if set.len() != 1 && entry_ok {
            c.error(
                entry.span(),
                format!("{at}.hash_policy[{k}]"),
                if set.is_empty() { "this entry names no hash source".to_string() } else { "this entry names more than one hash source".to_string() },
                Some("write one source per entry: { header = \"x-user\" }, { cookie = \"sid\" }, { query_parameter = \"u\" }, { source_ip = true } or { path = true }; entries are tried in order".into()),
            );
            entry_ok = false;
        }
        ok &= entry_ok;
        sources.extend(set);
    }
    let affinity_cookie = match &s.affinity_cookie {
        None => None,
        Some(a) => {
            let a_at = format!("{at}.affinity_cookie");
            let a = a.get_ref();
            let name = a.name.get_ref();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                c.error(
                    a.name.span(),
                    format!("{a_at}.name"),
                    format!("\"{name}\" is not a usable cookie name"),
                    Some("use letters, digits, '-' and '_'".into()),
                );
                ok = false;
            }
            let ttl = match &a.ttl {
                None => None,
                Some(t) => duration(c, &Some(t.clone()), &format!("{a_at}.ttl"), Duration::ZERO),
            };
            let path = a
                .path
                .as_ref()
                .map_or_else(|| "/".to_string(), |p| p.get_ref().clone());
            if !path.starts_with('/') || path.contains(';') {
                c.error(
                    a.path.as_ref().map_or(0..0, |p| p.span()),
                    format!("{a_at}.path"),
                    format!("\"{path}\" is not a cookie path"),
                    Some("use a path such as \"/\"".into()),
                );
                ok = false;
            }
            Some(AffinityCookie {
                name: name.clone(),
                ttl,
                path,
            })
        }
    };
    ok.then_some(HashPolicy {
        sources,
        affinity_cookie,
    })
}

fn host_match(c: &mut Collector<'_>, h: &Spanned<String>, at: &str) -> Option<HostMatch> {
    let host = h.get_ref().to_ascii_lowercase();
    let valid_label = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.')
    };
    if host == "*" {
        return Some(HostMatch::Any);
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        if valid_label(suffix) {
            return Some(HostMatch::Suffix(format!(".{suffix}")));
        }
    } else if valid_label(&host) && !host.contains(':') {
        return Some(HostMatch::Exact(host));
    }
    c.error(
        h.span(),
        at,
        format!("\"{}\" is not a host name or wildcard", h.get_ref()),
        Some("use an exact name (\"api.example.com\"), a leading wildcard (\"*.example.com\") or \"*\"; leave the port out".into()),
    );
    None
}

fn cluster(
    c: &mut Collector<'_>,
    i: usize,
    s: &ClusterSection,
    base: &Path,
) -> Option<ClusterConfig> {
    let at = format!("clusters[{i}]");
    let policy = policy(c, s, &at);
    let protocol = match &s.protocol {
        None => Some(UpstreamProtocol::Http1),
        Some(p) => match p.get_ref().as_str() {
            "http1" => Some(UpstreamProtocol::Http1),
            "http2" => Some(UpstreamProtocol::Http2),
            other => {
                c.error(
                    p.span(),
                    format!("{at}.protocol"),
                    format!("unknown upstream protocol \"{other}\""),
                    Some("use \"http1\" (HTTP/1.1 keep-alive pool) or \"http2\" (cleartext HTTP/2, multiplexed)".into()),
                );
                None
            }
        },
    };
    let connect_timeout = duration(
        c,
        &s.connect_timeout,
        &format!("{at}.connect_timeout"),
        defaults::CONNECT_TIMEOUT,
    );
    let request_timeout = duration(
        c,
        &s.request_timeout,
        &format!("{at}.request_timeout"),
        defaults::REQUEST_TIMEOUT,
    );
    let idle_timeout = duration(
        c,
        &s.idle_timeout,
        &format!("{at}.idle_timeout"),
        defaults::UPSTREAM_IDLE_TIMEOUT,
    );
    let proxy_protocol = match &s.proxy_protocol {
        None => Some(None),
        Some(v) => match v.get_ref().as_str() {
            "v1" => Some(Some(ProxyProtocolVersion::V1)),
            "v2" => Some(Some(ProxyProtocolVersion::V2)),
            other => {
                c.error(
                    v.span(),
                    format!("{at}.proxy_protocol"),
                    format!("unknown PROXY protocol version \"{other}\""),
                    Some("use \"v1\" (text) or \"v2\" (binary); leave it out to send none".into()),
                );
                None
            }
        },
    };
    let max_connections = count(c, &s.max_connections, &format!("{at}.max_connections"));
    let connect_attempts = match count(c, &s.connect_attempts, &format!("{at}.connect_attempts")) {
        Some(Some(n)) if n > 100 => {
            c.error(
                s.connect_attempts.as_ref().map_or(0..0, |v| v.span()),
                format!("{at}.connect_attempts"),
                format!("{n} connect attempts per flow is too many"),
                Some("use 1 to 100; a few attempts ride out a dead endpoint, more only delay the client".into()),
            );
            None
        }
        Some(n) => Some(n.unwrap_or(defaults::CONNECT_ATTEMPTS)),
        None => None,
    };
    let panic_threshold = bounded(
        c,
        &s.panic_threshold,
        &format!("{at}.panic_threshold"),
        0..=100,
        defaults::PANIC_THRESHOLD,
    );
    if s.endpoints.get_ref().is_empty() {
        c.error(
            s.endpoints.span(),
            format!("{at}.endpoints"),
            format!("cluster \"{}\" has no endpoints", s.name.get_ref()),
            Some("add at least one endpoint: endpoints = [{ address = \"10.0.0.1:8080\" }]".into()),
        );
    }
    let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
    let mut endpoints = Vec::new();
    for (j, e) in s.endpoints.get_ref().iter().enumerate() {
        let ep = endpoint(c, &format!("{at}.endpoints[{j}]"), e);
        if let Some(ep) = &ep
            && let Some(first) = seen.insert(ep.address, j)
        {
            c.error(
                e.address.span(),
                format!("{at}.endpoints[{j}].address"),
                format!(
                    "{} is listed twice in this cluster (also endpoints[{first}])",
                    ep.address
                ),
                Some("remove the duplicate; to send it more traffic, raise its weight".into()),
            );
        }
        endpoints.push(ep);
    }
    let health_check = s
        .health_check
        .as_ref()
        .map(|h| health_check(c, &format!("{at}.health_check"), h.get_ref()));
    let outlier_detection = super::failure::outlier_detection(c, &at, s.outlier_detection.as_ref());
    let retry_policy = super::failure::retry_policy(c, &at, s.retry_policy.as_ref());
    let retry_budget = super::failure::retry_budget(c, &at, s.retry_budget.as_ref());
    let hashing = policy.as_ref().is_some_and(|p| p.is_hashing());
    let slow_start = super::failure::slow_start(c, &at, s.slow_start.as_ref(), hashing);
    let circuit_breakers = super::failure::circuit_breakers(c, &at, s.circuit_breakers.as_ref());
    let tls = s
        .tls
        .as_ref()
        .map(|t| super::tls::upstream_tls(c, &at, t, base));
    Some(ClusterConfig {
        name: s.name.get_ref().clone(),
        policy: policy?,
        protocol: protocol?,
        connect_timeout: connect_timeout?,
        request_timeout: request_timeout?,
        idle_timeout: idle_timeout?,
        proxy_protocol: proxy_protocol?,
        max_connections: max_connections?,
        connect_attempts: connect_attempts?,
        panic_threshold: panic_threshold?,
        endpoints: endpoints.into_iter().collect::<Option<_>>()?,
        health_check: match health_check {
            None => None,
            Some(h) => Some(h?),
        },
        outlier_detection: outlier_detection?,
        retry_policy: retry_policy?,
        retry_budget: retry_budget?,
        slow_start: slow_start?,
        circuit_breakers: circuit_breakers?,
        tls: match tls {
            None => None,
            Some(t) => Some(t?),
        },
    })
}

fn policy(c: &mut Collector<'_>, s: &ClusterSection, at: &str) -> Option<Policy> {
    let choice_count = match &s.choice_count {
        None => Some(defaults::CHOICE_COUNT),
        Some(n) if (2..=100).contains(n.get_ref()) => Some(*n.get_ref() as u32),
        Some(n) => {
            c.error(
                n.span(),
                format!("{at}.choice_count"),
                format!("choice_count {} is out of range", n.get_ref()),
                Some("use 2 (power of two choices, the default) up to 100".into()),
            );
            None
        }
    };
    let name = s
        .policy
        .as_ref()
        .map_or(defaults::POLICY, |p| p.get_ref().as_str());
    let policy_span = s.policy.as_ref().map_or(0..0, |p| p.span());
    let uint = |v: &Option<Spanned<i64>>, default: u64| {
        v.as_ref().map_or(default, |n| (*n.get_ref()).max(0) as u64)
    };
    let policy = match name {
        "round_robin" => Policy::RoundRobin,
        "weighted_round_robin" => Policy::WeightedRoundRobin,
        "random" => Policy::Random,
        "least_request" => Policy::LeastRequest {
            choice_count: choice_count?,
        },
        "ring_hash" => Policy::RingHash {
            min_ring_size: uint(&s.ring_min_size, fulcrum_balance::DEFAULT_MIN_RING_SIZE),
            max_ring_size: uint(&s.ring_max_size, fulcrum_balance::DEFAULT_MAX_RING_SIZE),
        },
        "maglev" => Policy::Maglev {
            table_size: uint(
                &s.maglev_table_size,
                fulcrum_balance::DEFAULT_MAGLEV_TABLE_SIZE,
            ),
        },
        "consistent_bounded" => Policy::ConsistentBounded {
            balance_factor: match &s.balance_factor {
                None => fulcrum_balance::DEFAULT_BALANCE_FACTOR,
                Some(f)
                    if f.get_ref().is_finite() && *f.get_ref() >= 1.0 && *f.get_ref() <= 100.0 =>
                {
                    (f.get_ref() * 100.0).round() as u32
                }
                Some(f) => {
                    c.error(
                        f.span(),
                        format!("{at}.balance_factor"),
                        format!("balance_factor {} is out of range", f.get_ref()),
                        Some("use 1.0 or more (1.25, the default, lets an endpoint take 25% more than the average load)".into()),
                    );
                    return None;
                }
            },
            min_ring_size: uint(&s.ring_min_size, fulcrum_balance::DEFAULT_MIN_RING_SIZE),
            max_ring_size: uint(&s.ring_max_size, fulcrum_balance::DEFAULT_MAX_RING_SIZE),
        },
        "rendezvous" => Policy::Rendezvous,
        "peak_ewma" => {
            let mut config = fulcrum_balance::PeakEwmaConfig::DEFAULT;
            if let Some(d) = duration(
                c,
                &s.ewma_decay,
                &format!("{at}.ewma_decay"),
                Duration::from_nanos(config.decay_ns),
            ) {
                config.decay_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            }
            Policy::PeakEwma {
                choice_count: choice_count?,
                config,
            }
        }
        other => {
            let help = match did_you_mean(other, POLICIES) {
                Some(m) => format!("did you mean \"{m}\"?"),
                None => format!("use one of: {}", POLICIES.join(", ")),
            };
            c.error(
                policy_span,
                format!("{at}.policy"),
                format!("unknown balancing policy \"{other}\""),
                Some(help),
            );
            return None;
        }
    };
    if let Err(e) = policy.validate() {
        c.error(
            policy_span.clone(),
            format!("{at}.policy"),
            format!("{name}: {e}"),
            None,
        );
        return None;
    }
    // Parameters that only make sense for some policies.
    let applies: [(&str, bool, bool); 5] = [
        (
            "choice_count",
            s.choice_count.is_some(),
            matches!(
                policy,
                Policy::LeastRequest { .. } | Policy::PeakEwma { .. }
            ),
        ),
        (
            "maglev_table_size",
            s.maglev_table_size.is_some(),
            matches!(policy, Policy::Maglev { .. }),
        ),
        (
            "ring_min_size",
            s.ring_min_size.is_some(),
            matches!(
                policy,
                Policy::RingHash { .. } | Policy::ConsistentBounded { .. }
            ),
        ),
        (
            "ring_max_size",
            s.ring_max_size.is_some(),
            matches!(
                policy,
                Policy::RingHash { .. } | Policy::ConsistentBounded { .. }
            ),
        ),
        (
            "balance_factor",
            s.balance_factor.is_some(),
            matches!(policy, Policy::ConsistentBounded { .. }),
        ),
    ];
    for (field, present, fits) in applies {
        if present && !fits {
            c.error(
                policy_span.clone(),
                format!("{at}.{field}"),
                format!("{field} does not apply to policy \"{name}\""),
                Some(format!(
                    "remove {field}, or choose a policy it applies to (see examples/fulcrum.toml)"
                )),
            );
            return None;
        }
    }
    if s.ewma_decay.is_some() && !matches!(policy, Policy::PeakEwma { .. }) {
        c.error(
            policy_span,
            format!("{at}.ewma_decay"),
            format!("ewma_decay does not apply to policy \"{name}\""),
            Some("remove ewma_decay, or set policy = \"peak_ewma\"".into()),
        );
        return None;
    }
    Some(policy)
}

fn endpoint(c: &mut Collector<'_>, at: &str, s: &EndpointSection) -> Option<EndpointConfig> {
    let address = socket_addr(c, &s.address, &format!("{at}.address"), true);
    let weight = match &s.weight {
        None => Some(1),
        Some(w) if (1..=MAX_WEIGHT).contains(w.get_ref()) => Some(*w.get_ref() as u32),
        Some(w) => {
            let help = if *w.get_ref() == 0 {
                "weights start at 1; to take an endpoint out of rotation, drain it (POST /clusters/NAME/endpoints/ADDRESS/drain on the admin API) or remove it and reload".to_string()
            } else {
                format!("use a weight from 1 to {MAX_WEIGHT}")
            };
            c.error(
                w.span(),
                format!("{at}.weight"),
                format!("weight {} is out of range", w.get_ref()),
                Some(help),
            );
            None
        }
    };
    Some(EndpointConfig {
        address: address?,
        weight: weight?,
        zone: s.zone.as_ref().map(|z| z.get_ref().clone()),
    })
}

fn health_check(
    c: &mut Collector<'_>,
    at: &str,
    s: &HealthCheckSection,
) -> Option<HealthCheckConfig> {
    let interval = duration(
        c,
        &s.interval,
        &format!("{at}.interval"),
        defaults::HC_INTERVAL,
    );
    let jitter = duration(c, &s.jitter, &format!("{at}.jitter"), defaults::HC_JITTER);
    let timeout = duration(
        c,
        &s.timeout,
        &format!("{at}.timeout"),
        defaults::HC_TIMEOUT,
    );
    for (d, name) in [(&interval, "interval"), (&timeout, "timeout")] {
        if *d == Some(Duration::ZERO) {
            let span = if name == "interval" {
                &s.interval
            } else {
                &s.timeout
            };
            c.error(
                span.as_ref().map_or(0..0, |s| s.span()),
                format!("{at}.{name}"),
                format!("health check {name} must be longer than zero"),
                Some("use a value such as \"2s\"".into()),
            );
        }
    }
    let healthy = threshold(
        c,
        &s.healthy_threshold,
        &format!("{at}.healthy_threshold"),
        defaults::HC_HEALTHY_THRESHOLD,
    );
    let unhealthy = threshold(
        c,
        &s.unhealthy_threshold,
        &format!("{at}.unhealthy_threshold"),
        defaults::HC_UNHEALTHY_THRESHOLD,
    );
    let kind = match s.kind.as_ref().map_or("http", |k| k.get_ref().as_str()) {
        "tcp" => {
            for (field, present) in [
                ("path", s.path.is_some()),
                ("method", s.method.is_some()),
                ("host", s.host.is_some()),
                ("expected_statuses", s.expected_statuses.is_some()),
            ] {
                if present {
                    c.error(
                        s.kind.as_ref().map_or(0..0, |k| k.span()),
                        format!("{at}.{field}"),
                        format!("{field} only applies to HTTP health checks, and this one is type = \"tcp\""),
                        Some(format!("remove {field}, or set type = \"http\"")),
                    );
                }
            }
            Some(HealthCheckKind::Tcp)
        }
        "http" => http_check(c, at, s),
        other => {
            c.error(
                s.kind.as_ref().map_or(0..0, |k| k.span()),
                format!("{at}.type"),
                format!("unknown health check type \"{other}\""),
                Some("use \"http\" or \"tcp\"".into()),
            );
            None
        }
    };
    Some(HealthCheckConfig {
        kind: kind?,
        interval: interval?,
        jitter: jitter?,
        timeout: timeout?,
        healthy_threshold: healthy?,
        unhealthy_threshold: unhealthy?,
    })
}

fn http_check(c: &mut Collector<'_>, at: &str, s: &HealthCheckSection) -> Option<HealthCheckKind> {
    let path = s
        .path
        .as_ref()
        .map_or(defaults::HC_PATH.to_string(), |p| p.get_ref().clone());
    if !path.starts_with('/') {
        let span = s.path.as_ref().map_or(0..0, |p| p.span());
        c.error(
            span,
            format!("{at}.path"),
            format!("health check path \"{path}\" does not start with \"/\""),
            None,
        );
    }
    let method = s
        .method
        .as_ref()
        .map_or(defaults::HC_METHOD.to_string(), |m| m.get_ref().clone());
    if http::Method::from_bytes(method.as_bytes()).is_err()
        || method.chars().any(|ch| ch.is_ascii_lowercase())
    {
        let span = s.method.as_ref().map_or(0..0, |m| m.span());
        c.error(
            span,
            format!("{at}.method"),
            format!("\"{method}\" is not an HTTP method"),
            Some("use GET or HEAD".into()),
        );
    }
    let mut statuses = Vec::new();
    match &s.expected_statuses {
        None => statuses.push(parse_status_range(defaults::HC_EXPECTED_STATUSES)),
        Some(list) if list.get_ref().is_empty() => {
            c.error(
                list.span(),
                format!("{at}.expected_statuses"),
                "the list is empty, so every check would fail",
                Some("use for example [\"200-399\"]".into()),
            );
        }
        Some(list) => {
            for (k, r) in list.get_ref().iter().enumerate() {
                let parsed = parse_status_range(r.get_ref());
                if parsed.is_none() {
                    c.error(
                        r.span(),
                        format!("{at}.expected_statuses[{k}]"),
                        format!("\"{}\" is not a status code or range", r.get_ref()),
                        Some("write a code (\"200\") or an inclusive range (\"200-399\") within 100-599".into()),
                    );
                }
                statuses.push(parsed);
            }
        }
    }
    Some(HealthCheckKind::Http {
        method,
        path,
        host: s.host.as_ref().map(|h| h.get_ref().clone()),
        expected_statuses: statuses.into_iter().collect::<Option<_>>()?,
    })
}

fn parse_status_range(s: &str) -> Option<StatusRange> {
    let (low, high) = match s.split_once('-') {
        Some((l, h)) => (l.trim().parse().ok()?, h.trim().parse().ok()?),
        None => {
            let v = s.trim().parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&low) && (100..=599).contains(&high) && low <= high)
        .then_some(StatusRange { low, high })
}

fn threshold(
    c: &mut Collector<'_>,
    v: &Option<Spanned<i64>>,
    at: &str,
    default: u32,
) -> Option<u32> {
    match v {
        None => Some(default),
        Some(n) if (1..=1000).contains(n.get_ref()) => Some(*n.get_ref() as u32),
        Some(n) => {
            c.error(
                n.span(),
                at,
                format!("threshold {} is out of range", n.get_ref()),
                Some("use a count from 1 to 1000".into()),
            );
            None
        }
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|ch: char| !ch.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

pub(super) fn duration(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    at: &str,
    default: Duration,
) -> Option<Duration> {
    let Some(v) = v else { return Some(default) };
    let parsed = parse_duration(v.get_ref());
    if parsed.is_none() {
        c.error(
            v.span(),
            at,
            format!("\"{}\" is not a duration", v.get_ref()),
            Some("write a whole number and a unit: \"250ms\", \"5s\", \"2m\" or \"1h\"".into()),
        );
    }
    parsed
}

fn socket_addr(
    c: &mut Collector<'_>,
    v: &Spanned<String>,
    at: &str,
    resolve: bool,
) -> Option<SocketAddr> {
    let text = v.get_ref();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    // Host names are resolved once, at load (like HAProxy's `init-addr libc`).
    let resolved = if resolve && text.contains(':') {
        text.to_socket_addrs().ok().and_then(|mut a| a.next())
    } else {
        None
    };
    if resolved.is_none() {
        let help = if resolve {
            "write IP:PORT (\"10.0.0.1:8080\", \"[::1]:8080\") or a resolvable HOST:PORT"
        } else {
            "write IP:PORT, for example \"127.0.0.1:8080\" or \"[::]:8080\""
        };
        c.error(
            v.span(),
            at,
            format!("\"{text}\" is not a valid address"),
            Some(help.into()),
        );
    }
    resolved
}

fn unique_names<'s>(
    c: &mut Collector<'_>,
    names: impl Iterator<Item = &'s Spanned<String>>,
    section: &str,
    what: &str,
) -> HashMap<&'s str, usize> {
    let mut seen: HashMap<&'s str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        if name.get_ref().is_empty() {
            c.error(
                name.span(),
                format!("{section}[{i}].name"),
                format!("the {what} name is empty"),
                Some("give it a short unique name".into()),
            );
            continue;
        }
        if let Some(first) = seen.get(name.get_ref().as_str()) {
            c.error(
                name.span(),
                format!("{section}[{i}].name"),
                format!(
                    "{what} name \"{}\" is already used by {section}[{first}]",
                    name.get_ref()
                ),
                Some(format!("{what} names must be unique; rename one of them")),
            );
        } else {
            seen.insert(name.get_ref(), i);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1.5s"), None);
    }

    #[test]
    fn status_ranges() {
        assert_eq!(
            parse_status_range("200"),
            Some(StatusRange {
                low: 200,
                high: 200
            })
        );
        assert_eq!(
            parse_status_range("200-399"),
            Some(StatusRange {
                low: 200,
                high: 399
            })
        );
        assert_eq!(parse_status_range("399-200"), None);
        assert_eq!(parse_status_range("700"), None);
    }
}
