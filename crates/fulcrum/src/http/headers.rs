//! Header hygiene between client and upstream (RFC 9110 section 7.6.1):
//! hop-by-hop headers, and any named in `Connection`, are removed both ways;
//! `X-Forwarded-For/-Proto/-Host` are set; `X-Request-Id` is kept or generated.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// On a response that took more than one attempt: how many (Envoy has
/// `x-envoy-attempt-count`). Absent: one attempt.
pub static X_FULCRUM_ATTEMPTS: HeaderName = HeaderName::from_static("x-fulcrum-attempts");
/// RFC 8470: the request was received in TLS early data.
pub static EARLY_DATA: HeaderName = HeaderName::from_static("early-data");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// RFC 9110 7.6.1 plus the legacy `Proxy-Connection` and `Keep-Alive`, and
/// `HTTP2-Settings`, which belongs to an `Upgrade: h2c` that is never
/// passed on (RFC 7540 3.2.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Fields that must not travel in a trailer section (RFC 9110 6.5.1): they
/// control framing (`Content-Length`, `Transfer-Encoding`, `Trailer`),
/// routing (`Host`), the connection (the hop-by-hop fields), authentication
/// (`Authorization`, `Cookie`, `Set-Cookie` and the proxy fields), request
/// modifiers and response control data, or the content's own handling; and
/// the fields fulcrum itself vouches for (forwarding headers). An origin
/// that merged a trailer into the header section (RFC 9110 6.5.2 lets it
/// when it knows the field is allowed) must never find one of these there.
const FORBIDDEN_IN_TRAILERS: [&str; 38] = [
    "content-length",
    "transfer-encoding",
    "trailer",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "http2-settings",
    "authorization",
    "proxy-authorization",
    "proxy-authenticate",
    "www-authenticate",
    "cookie",
    "set-cookie",
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "content-encoding",
    "content-type",
    "content-range",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Drops from a trailer section every field in [`FORBIDDEN_IN_TRAILERS`],
/// the fields `Connection` names, and `extra` (the listener's client
/// certificate header). Trailers are rare (gRPC's are `grpc-status` and
/// `grpc-message`), so this scans by name without a faster path.
pub fn remove_forbidden_trailers(trailers: &mut HeaderMap, extra: Option<&HeaderName>) {
    for value in trailers
        .get_all(header::CONNECTION)
        .iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        for token in value.to_str().unwrap_or("").split(',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                trailers.remove(name);
            }
        }
    }
    for name in FORBIDDEN_IN_TRAILERS {
        trailers.remove(name);
    }
    if let Some(name) = extra {
        trailers.remove(name);
    }
}

/// Removes hop-by-hop headers. `TE: trailers` survives (gRPC needs it end to
/// end, and it is the one TE value HTTP/2 allows); other TE values do not.
///
/// Runs twice per request, so it scans the names once and touches the map only
/// for what it found (an origin's `Connection: keep-alive` is the common case).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut found: Vec<HeaderName> = Vec::new();
    let mut te = false;
    for name in headers.keys() {
        if HOP_BY_HOP.contains(name) {
            found.push(name.clone());
        } else if name == header::TE {
            te = true;
        }
    }
    if found.is_empty() && !te {
        return;
    }
    // Names listed in Connection are hop-by-hop too (`keep-alive` and `close` are options, not names).
    for value in headers.get_all(header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            if token.is_empty()
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("close")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                found.push(name);
            }
        }
    }
    for name in &found {
        headers.remove(name);
    }
    if te {
        let trailers = headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        headers.remove(header::TE);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// `X-Forwarded-For` value for a client: computed once per connection.
pub fn client_ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Sets the forwarding headers on a request bound upstream. `host` is the
/// client's original host (Host header or `:authority`); `tls`: the client
/// connection is TLS.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    tls: bool,
    host: Option<&HeaderValue>,
) {
    // Append to an existing chain, as Envoy and HAProxy's `option forwardfor` do.
    let ip = client_ip.as_bytes();
    let xff = match headers.get(&X_FORWARDED_FOR).map(|v| v.as_bytes()) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
            v.extend_from_slice(prev);
            v.extend_from_slice(b", ");
            v.extend_from_slice(ip);
            HeaderValue::from_bytes(&v).ok()
        }
        _ => Some(client_ip.clone()),
    };
    if let Some(xff) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), xff);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    // The client's own value never passes: with no authority there is none.
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
}

/// Returns the request's id, generating a random UUIDv4-format one when the
/// client sent none (or an empty one), and stores it in `headers`.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID)
        && !id.is_empty()
    {
        return id.clone();
    }
    let id = new_request_id();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

fn new_request_id() -> HeaderValue {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[usize::from(b >> 4)];
        out[o + 1] = HEX[usize::from(b & 0xf)];
        o += 2;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_hop_by_hop_and_connection_listed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::UPGRADE).is_none());
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert_eq!(h.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn trailers_lose_fields_that_control_the_message() {
        let mut t = HeaderMap::new();
        for name in [
            "content-length",
            "transfer-encoding",
            "host",
            "authorization",
            "cookie",
            "set-cookie",
            "te",
            "trailer",
            "x-forwarded-for",
            "x-client-cert",
        ] {
            t.insert(name, HeaderValue::from_static("1"));
        }
        t.insert(header::CONNECTION, HeaderValue::from_static("x-named"));
        t.insert("x-named", HeaderValue::from_static("1"));
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("x-checksum", HeaderValue::from_static("abc"));
        remove_forbidden_trailers(&mut t, Some(&HeaderName::from_static("x-client-cert")));
        let left: Vec<&str> = t.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["grpc-status", "x-checksum"]);
    }

    #[test]
    fn xff_appends() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        set_forwarded(
            &mut h,
            &client_ip_value("192.0.2.7".parse().unwrap()),
            false,
            Some(&HeaderValue::from_static("a.example")),
        );
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1, 192.0.2.7");
        assert_eq!(h.get(&X_FORWARDED_HOST).unwrap(), "a.example");
        assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "http");
        set_forwarded(
            &mut h,
            &client_ip_value("192.0.2.7".parse().unwrap()),
            true,
            None,
        );
        assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "https");
    }

    #[test]
    fn request_id_kept_or_generated() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut h), "abc");
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        let s = id.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_eq!(h.get(&X_REQUEST_ID).unwrap(), &id);
    }
}
