//! Which part of a request the hashing balancers (ring hash, Maglev, bounded
//! load, rendezvous) hash, so the same client or session keeps reaching the
//! same endpoint. Sources are tried in order and the first one present wins,
//! as in Envoy's route `hash_policy` list; an optional generated affinity
//! cookie gives clients without a natural key a stable one.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

/// One place a hash key can come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashSource {
    /// The client's IP address (after PROXY protocol, when that arrives).
    SourceIp,
    /// A request header's value.
    #[serde(serialize_with = "header_name")]
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// A query parameter's raw (not percent-decoded) value.
    QueryParameter(String),
    /// The request path.
    Path,
}

/// A cookie fulcrum sets when no source yielded a key, so the client sticks
/// from its second request on. Its value is random: it reveals nothing about
/// endpoints, and it still maps to one through the hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AffinityCookie {
    pub name: String,
    #[serde(serialize_with = "optional_duration")]
    pub ttl: Option<Duration>,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HashPolicy {
    pub sources: Vec<HashSource>,
    pub affinity_cookie: Option<AffinityCookie>,
}

/// The outcome for one request: its hash, and a cookie to set when one was generated.
#[derive(Debug, Default)]
pub struct RequestKey {
    pub hash: Option<u64>,
    pub set_cookie: Option<HeaderValue>,
}

impl HashPolicy {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.affinity_cookie.is_none()
    }

    pub fn key(&self, req: &Parts, client_ip: IpAddr) -> RequestKey {
        for source in &self.sources {
            if let Some(hash) = source.hash(req, client_ip) {
                return RequestKey {
                    hash: Some(hash),
                    set_cookie: None,
                };
            }
        }
        let Some(cookie) = &self.affinity_cookie else {
            return RequestKey::default();
        };
        if let Some(value) = cookie_value(&req.headers, &cookie.name) {
            return RequestKey {
                hash: Some(fulcrum_balance::hash::request_hash(value.as_bytes())),
                set_cookie: None,
            };
        }
        let value = format!("{:032x}", fastrand::u128(..));
        RequestKey {
            hash: Some(fulcrum_balance::hash::request_hash(value.as_bytes())),
            set_cookie: cookie.set_cookie(&value),
        }
    }
}

impl HashSource {
    fn hash(&self, req: &Parts, client_ip: IpAddr) -> Option<u64> {
        use fulcrum_balance::hash::request_hash;
        match self {
            HashSource::SourceIp => Some(fulcrum_balance::hash::source_ip_hash(client_ip)),
            HashSource::Header(name) => req.headers.get(name).map(|v| request_hash(v.as_bytes())),
            HashSource::Cookie(name) => {
                cookie_value(&req.headers, name).map(|v| request_hash(v.as_bytes()))
            }
            HashSource::QueryParameter(name) => {
                query_value(req.uri.query()?, name).map(|v| request_hash(v.as_bytes()))
            }
            HashSource::Path => Some(request_hash(req.uri.path().as_bytes())),
        }
    }
}

impl AffinityCookie {
    fn set_cookie(&self, value: &str) -> Option<HeaderValue> {
        let mut text = format!("{}={value}; Path={}; HttpOnly", self.name, self.path);
        if let Some(ttl) = self.ttl {
            text.push_str(&format!("; Max-Age={}", ttl.as_secs()));
        }
        HeaderValue::from_str(&text).ok()
    }
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn header_name<S: serde::Serializer>(name: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_str())
}

fn optional_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&crate::config::model::format_duration(*d)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn first_present_source_wins() {
        let policy = HashPolicy {
            sources: vec![
                HashSource::Header(HeaderName::from_static("x-user")),
                HashSource::Cookie("sid".into()),
                HashSource::QueryParameter("u".into()),
                HashSource::SourceIp,
            ],
            affinity_cookie: None,
        };
        let by_header = policy
            .key(
                &parts("/?u=9", &[("x-user", "alice"), ("cookie", "sid=s1")]),
                IP,
            )
            .hash;
        let same_header = policy
            .key(&parts("/other", &[("x-user", "alice")]), IP)
            .hash;
        assert_eq!(
            by_header, same_header,
            "the header decides, not path or cookie"
        );
        let by_cookie = policy
            .key(&parts("/", &[("cookie", "a=1; sid=s1")]), IP)
            .hash;
        assert_eq!(by_cookie, Some(fulcrum_balance::hash::request_hash(b"s1")));
        let by_query = policy.key(&parts("/x?a=1&u=9", &[]), IP).hash;
        assert_eq!(by_query, Some(fulcrum_balance::hash::request_hash(b"9")));
        let by_ip = policy.key(&parts("/", &[]), IP).hash;
        assert_eq!(
            by_ip,
            Some(fulcrum_balance::hash::request_hash(&[192, 0, 2, 1]))
        );
    }

    #[test]
    fn no_source_no_hash_unless_a_cookie_is_generated() {
        let mut policy = HashPolicy {
            sources: vec![HashSource::Header(HeaderName::from_static("x-user"))],
            affinity_cookie: None,
        };
        assert!(policy.key(&parts("/", &[]), IP).hash.is_none());
        policy.affinity_cookie = Some(AffinityCookie {
            name: "lb".into(),
            ttl: Some(Duration::from_secs(3600)),
            path: "/".into(),
        });
        let first = policy.key(&parts("/", &[]), IP);
        let set = first
            .set_cookie
            .expect("a cookie is generated")
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            set.starts_with("lb=") && set.ends_with("; Path=/; HttpOnly; Max-Age=3600"),
            "{set}"
        );
        let value = set.trim_start_matches("lb=").split(';').next().unwrap();
        assert_eq!(value.len(), 32, "random, and says nothing about endpoints");
        let again = policy.key(&parts("/", &[("cookie", &format!("lb={value}"))]), IP);
        assert_eq!(
            again.hash, first.hash,
            "the cookie brings the client back to the same key"
        );
        assert!(again.set_cookie.is_none());
    }
}
