//! Routing: picks the route (and so the cluster) for a request by host and
//! path prefix. Routes are tried in config order and the first match wins, as
//! in HAProxy's `use_backend` and Envoy's route list; prefixes are plain string
//! prefixes (Envoy's `prefix`), so "/api" also matches "/apix".

pub mod hash_policy;

use crate::config::{HostMatch, RouteConfig};

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

impl Router {
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Self { routes }
    }

    /// `host` is the `Host` header or `:authority`, possibly with a port.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&RouteConfig> {
        let host = host.map(strip_port);
        self.routes
            .iter()
            .find(|r| host_matches(&r.host, host) && path.starts_with(r.path_prefix.as_str()))
    }
}

fn host_matches(m: &HostMatch, host: Option<&str>) -> bool {
    match (m, host) {
        (HostMatch::Any, _) => true,
        (_, None) => false,
        (HostMatch::Exact(want), Some(h)) => h.eq_ignore_ascii_case(want),
        (HostMatch::Suffix(suffix), Some(h)) => {
            h.len() > suffix.len()
                && h.get(h.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:8080` -> `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: HostMatch, prefix: &str, cluster: usize) -> RouteConfig {
        RouteConfig {
            host,
            path_prefix: prefix.into(),
            cluster: format!("c{cluster}"),
            cluster_index: cluster,
            hash_policy: Default::default(),
            retry_policy: None,
        }
    }

    #[test]
    fn first_match_wins_by_host_then_prefix() {
        let r = Router::new(vec![
            route(HostMatch::Exact("api.example.com".into()), "/v2", 0),
            route(HostMatch::Exact("api.example.com".into()), "/", 1),
            route(HostMatch::Suffix(".example.com".into()), "/", 2),
            route(HostMatch::Any, "/static", 3),
        ]);
        let pick = |h: Option<&str>, p: &str| r.route(h, p).map(|r| r.cluster_index);
        assert_eq!(pick(Some("api.example.com"), "/v2/users"), Some(0));
        assert_eq!(pick(Some("API.example.com:8080"), "/v1"), Some(1));
        assert_eq!(pick(Some("www.example.com"), "/"), Some(2));
        assert_eq!(
            pick(Some("example.com"), "/"),
            None,
            "a wildcard needs at least one label"
        );
        assert_eq!(pick(None, "/static/app.js"), Some(3));
        assert_eq!(pick(Some("other.org"), "/"), None);
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
