//! Message validity at the edge: the checks an RFC-conformant intermediary
//! makes before a request is routed, so that every message fulcrum forwards
//! is one request that every conformant origin reads the same way.
//!
//! hyper (and httparse and the h2 crate under it) already enforce the
//! syntax of the request line, field names and values, chunked framing,
//! Content-Length and the HTTP/2 pseudo-header rules; what they leave to the
//! application is decided here: which single authority the request is for
//! (RFC 9112 3.2, RFC 9110 7.2, RFC 9113 8.3.1), the request-target forms
//! (RFC 9112 3.2), methods that open tunnels, and transfer codings fulcrum
//! would otherwise silently drop. The full table, with the test that proves
//! each rule, is docs/http-conformance.md.

use http::header::{HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};

use super::error::ProxyError;

/// The request's authority, decided once: routing, the `Host` sent upstream
/// and `X-Forwarded-Host` all use it. `None`: the request names no authority
/// (an HTTP/1.0 request without `Host`, an empty `Host`, or an HTTP/2
/// request with neither `:authority` nor `host`).
pub type Authority = Option<HeaderValue>;

/// Checks `req` and returns its authority, or the error that refuses it.
pub fn check<B>(req: &Request<B>) -> Result<Authority, ProxyError> {
    if req.method() == Method::CONNECT && !super::websocket::is_extended_connect(req) {
        // fulcrum is not a forward proxy: a tunnel would carry bytes that
        // no route, header rule or limit ever sees. An HTTP/2 extended
        // CONNECT for a WebSocket (RFC 8441) is routed like any request.
        return Err(ProxyError::ConnectNotSupported);
    }
    check_target(req.method(), req.uri())?;
    check_field_values(req.headers())?;
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => http2_authority(req),
        _ => {
            check_transfer_coding(req.headers())?;
            http1_authority(req)
        }
    }
}

/// RFC 9112 3.2: origin-form (`/path`), absolute-form (`http://a/path`) or,
/// for `OPTIONS` only, asterisk-form (`*`). Authority-form belongs to
/// CONNECT, which is refused before this.
fn check_target(method: &Method, uri: &Uri) -> Result<(), ProxyError> {
    match (uri.scheme_str(), uri.authority()) {
        (None, None) => {}
        (Some(scheme), Some(authority)) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(malformed(
                    "absolute-form target with a scheme other than http or https",
                ));
            }
            if authority.as_str().contains('@') {
                return Err(malformed("request target authority has userinfo"));
            }
        }
        _ => {
            return Err(malformed(
                "request target is not in origin or absolute form",
            ));
        }
    }
    match uri.path_and_query().map(|p| p.as_str()) {
        None if uri.authority().is_some() => Ok(()),
        Some(path) if path.starts_with('/') => Ok(()),
        Some("*") if method == Method::OPTIONS => Ok(()),
        Some("*") => Err(malformed(
            "asterisk-form target on a method other than OPTIONS",
        )),
        _ => Err(malformed("request target path does not start with /")),
    }
}

/// HTTP/1.x: exactly one valid `Host` on HTTP/1.1 (RFC 9112 3.2: "a server
/// MUST respond with 400 ... to any HTTP/1.1 request message that lacks a
/// Host header field and to any request message that contains more than one
/// Host header field line or a Host header field with an invalid field
/// value"); an absolute-form target's authority replaces it (RFC 9112
/// 3.2.2).
fn http1_authority<B>(req: &Request<B>) -> Result<Authority, ProxyError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(malformed("more than one Host header"));
    }
    match host {
        Some(host) if !valid_authority(host.as_bytes()) => {
            return Err(malformed("Host header is not a valid authority"));
        }
        None if req.version() == Version::HTTP_11 => {
            return Err(malformed("HTTP/1.1 request without a Host header"));
        }
        _ => {}
    }
    if let Some(target) = req.uri().authority() {
        if !valid_authority(target.as_str().as_bytes()) {
            return Err(malformed("request target authority is not valid"));
        }
        return Ok(HeaderValue::from_str(target.as_str()).ok());
    }
    Ok(host.filter(|h| !h.is_empty()).cloned())
}

/// HTTP/2: `:authority` and `host` must name the same authority (RFC 9113
/// 8.3.1: a request whose `host` differs from `:authority` is treated as
/// malformed), and `:authority` has no userinfo.
fn http2_authority<B>(req: &Request<B>) -> Result<Authority, ProxyError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(malformed("more than one host header"));
    }
    if let Some(host) = host
        && !valid_authority(host.as_bytes())
    {
        return Err(malformed("host header is not a valid authority"));
    }
    let Some(authority) = req.uri().authority() else {
        return Ok(host.filter(|h| !h.is_empty()).cloned());
    };
    let authority = authority.as_str();
    if !valid_authority(authority.as_bytes()) {
        return Err(malformed(":authority is not a valid authority"));
    }
    if let Some(host) = host
        && !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes())
    {
        return Err(malformed("host header differs from :authority"));
    }
    Ok(HeaderValue::from_str(authority).ok())
}

/// RFC 9112 6.1 and 7: fulcrum decodes `chunked` and nothing else. A
/// request with another transfer coding (`gzip, chunked`) would reach the
/// origin re-framed as plain chunked, its coding lost; such a request gets
/// 501, as the RFC asks for a coding the server does not implement. (hyper
/// already answers 400 when the final coding is not chunked.)
fn check_transfer_coding(headers: &HeaderMap) -> Result<(), ProxyError> {
    for value in headers.get_all(TRANSFER_ENCODING) {
        let text = value.to_str().unwrap_or("");
        let only_chunked = text
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .all(|c| c.eq_ignore_ascii_case("chunked"));
        if !only_chunked {
            return Err(ProxyError::UnsupportedTransferCoding);
        }
    }
    Ok(())
}

/// RFC 9110 5.5 and RFC 9113 8.2.1: a field value has no leading or trailing
/// whitespace. HTTP/1.1 parsing trims it; HPACK carries it verbatim, and an
/// origin that trims and one that does not would read different values.
/// (CR, LF and NUL cannot reach here: `HeaderValue` refuses them.)
fn check_field_values(headers: &HeaderMap) -> Result<(), ProxyError> {
    let padded = headers.values().any(|v| {
        let b = v.as_bytes();
        matches!(b.first(), Some(b' ' | b'\t')) || matches!(b.last(), Some(b' ' | b'\t'))
    });
    if padded {
        return Err(malformed("field value with leading or trailing whitespace"));
    }
    Ok(())
}

fn malformed(rule: &'static str) -> ProxyError {
    ProxyError::Malformed(rule)
}

/// `uri-host [ ":" port ]` (RFC 9110 4.2.4 and 7.2, RFC 3986 3.2.2): a
/// reg-name, an IPv4 address or a bracketed IP-literal, then an optional
/// port of digits. No userinfo, whitespace or other characters. An empty
/// value is valid (RFC 9112 3.2: a target without authority sends an empty
/// `Host`).
pub fn valid_authority(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let Ok(literal) = std::str::from_utf8(&value[1..end]) else {
            return false;
        };
        if literal.parse::<std::net::Ipv6Addr>().is_err() && !ip_future(literal.as_bytes()) {
            return false;
        }
        match &value[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], port),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &[][..]),
        }
    };
    reg_name(host) && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// reg-name = *( unreserved / pct-encoded / sub-delims ); an IPv4 address is
/// a reg-name too.
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if unreserved(b) || sub_delim(b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
fn ip_future(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(b"v").or_else(|| text.strip_prefix(b"V")) else {
        return false;
    };
    let Some(dot) = rest.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
    !version.is_empty()
        && version.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&b| unreserved(b) || sub_delim(b) || b == b':')
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut r = Request::builder()
            .method(Method::GET)
            .uri(target)
            .version(version)
            .body(())
            .unwrap();
        for h in hosts {
            r.headers_mut()
                .append(HOST, HeaderValue::from_bytes(h.as_bytes()).unwrap());
        }
        r
    }

    fn reason(r: Result<Authority, ProxyError>) -> &'static str {
        match r {
            Err(ProxyError::Malformed(rule)) => rule,
            other => panic!("expected a malformed request, got {other:?}"),
        }
    }

    #[test]
    fn authority_grammar() {
        for ok in [
            "a.example",
            "a.example:8080",
            "A-b_c~.example:",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%2Eexample",
            "",
        ] {
            assert!(valid_authority(ok.as_bytes()), "{ok:?} should be valid");
        }
        for bad in [
            "user@a.example",
            "a.example:80:80",
            "a example",
            "a.example/",
            "a.example:8o",
            "a.example:123456",
            "[::1",
            "[::1]x",
            "[zz]",
            "a%2",
            "a\"b",
            "a.example\\",
            "a.example?",
            "a.example#",
        ] {
            assert!(
                !valid_authority(bad.as_bytes()),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn http1_needs_exactly_one_valid_host() {
        assert_eq!(
            check(&req(Version::HTTP_11, "/", &["a.example"])).unwrap(),
            Some(HeaderValue::from_static("a.example"))
        );
        assert!(reason(check(&req(Version::HTTP_11, "/", &[]))).contains("without a Host"));
        assert!(reason(check(&req(Version::HTTP_11, "/", &["a", "b"]))).contains("more than one"));
        assert!(reason(check(&req(Version::HTTP_11, "/", &["a@b"]))).contains("not a valid"));
        // HTTP/1.0 may omit it.
        assert_eq!(check(&req(Version::HTTP_10, "/", &[])).unwrap(), None);
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let a = check(&req(Version::HTTP_11, "http://b.example/x", &["a.example"])).unwrap();
        assert_eq!(a, Some(HeaderValue::from_static("b.example")));
        assert!(
            reason(check(&req(
                Version::HTTP_11,
                "http://u@b.example/",
                &["b.example"]
            )))
            .contains("userinfo")
        );
        assert!(
            reason(check(&req(
                Version::HTTP_11,
                "ftp://b.example/",
                &["b.example"]
            )))
            .contains("scheme")
        );
    }

    #[test]
    fn asterisk_form_only_for_options() {
        let mut r = req(Version::HTTP_11, "*", &["a"]);
        assert!(reason(check(&r)).contains("asterisk"));
        *r.method_mut() = Method::OPTIONS;
        assert!(check(&r).is_ok());
    }

    #[test]
    fn http2_authority_and_host_must_agree() {
        let a = check(&req(Version::HTTP_2, "http://a.example/", &["A.example"])).unwrap();
        assert_eq!(a, Some(HeaderValue::from_static("a.example")));
        assert!(
            reason(check(&req(
                Version::HTTP_2,
                "http://a.example/",
                &["b.example"]
            )))
            .contains("differs")
        );
        let a = check(&req(Version::HTTP_2, "/", &["h.example"])).unwrap();
        assert_eq!(a, Some(HeaderValue::from_static("h.example")));
        assert_eq!(check(&req(Version::HTTP_2, "/", &[])).unwrap(), None);
    }

    #[test]
    fn connect_and_foreign_transfer_codings_are_refused() {
        let mut r = req(Version::HTTP_11, "/", &["a"]);
        *r.method_mut() = Method::CONNECT;
        assert!(matches!(check(&r), Err(ProxyError::ConnectNotSupported)));
        let mut r = req(Version::HTTP_11, "/", &["a"]);
        r.headers_mut()
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("gzip, chunked"));
        assert!(matches!(
            check(&r),
            Err(ProxyError::UnsupportedTransferCoding)
        ));
        r.headers_mut()
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("Chunked"));
        assert!(check(&r).is_ok());
    }

    #[test]
    fn padded_values_are_malformed() {
        let mut r = req(Version::HTTP_2, "/", &["a"]);
        r.headers_mut()
            .insert("x-a", HeaderValue::from_static("v "));
        assert!(reason(check(&r)).contains("whitespace"));
    }
}
