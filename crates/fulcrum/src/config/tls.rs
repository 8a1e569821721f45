//! Validation of a listener's `tls` table. Certificates are loaded here with
//! the same function the listener uses at start, so `fulcrum check` catches a
//! missing file, a key that does not match, or an unparsable PEM.

use std::path::Path;

use toml::Spanned;

use super::defaults;
use super::diagnostic::{Collector, did_you_mean};
use super::model::{CertificateFiles, TlsConfig, TlsVersion, UpstreamTlsConfig};
use super::schema::{CertificateSection, TlsSection, UpstreamTlsSection};

const ALPN_PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];

pub(super) fn tls(
    c: &mut Collector<'_>,
    at: &str,
    section: &Spanned<TlsSection>,
    base: &Path,
) -> Option<TlsConfig> {
    let s = section.get_ref();
    let at = format!("{at}.tls");
    let mut ok = true;
    if s.certificates.is_empty() {
        c.error(
            section.span(),
            format!("{at}.certificates"),
            "a TLS listener needs at least one certificate".to_string(),
            Some("add `certificates = [{ cert = \"site.pem\", key = \"site.key\" }]` (PEM files; the first is the default)".into()),
        );
        ok = false;
    }
    let mut certificates = Vec::with_capacity(s.certificates.len());
    for (i, entry) in s.certificates.iter().enumerate() {
        match certificate_files(c, &format!("{at}.certificates[{i}]"), entry, base) {
            Some(files) => certificates.push(files),
            None => ok = false,
        }
    }
    let min_version = min_version(c, &at, &s.min_version);
    let mut alpn = Vec::new();
    match &s.alpn {
        None => alpn.extend(defaults::TLS_ALPN.iter().map(|p| p.to_string())),
        Some(list) => {
            for (i, p) in list.iter().enumerate() {
                let name = p.get_ref();
                if ALPN_PROTOCOLS.contains(&name.as_str()) {
                    alpn.push(name.clone());
                } else {
                    c.error(
                        p.span(),
                        format!("{at}.alpn[{i}]"),
                        format!("unknown ALPN protocol \"{name}\""),
                        Some(match did_you_mean(name, ALPN_PROTOCOLS) {
                            Some(m) => format!("did you mean \"{m}\"?"),
                            None => "fulcrum serves \"h2\" and \"http/1.1\" over TLS".into(),
                        }),
                    );
                    ok = false;
                }
            }
        }
    }
    let mut cipher_suites = Vec::new();
    if let Some(list) = &s.cipher_suites {
        let known = crate::tls::cipher_suite_names();
        for (i, name) in list.iter().enumerate() {
            let text = name.get_ref();
            if known.contains(&text.as_str()) {
                cipher_suites.push(text.clone());
            } else {
                c.error(
                    name.span(),
                    format!("{at}.cipher_suites[{i}]"),
                    format!("unknown cipher suite \"{text}\""),
                    Some(match did_you_mean(text, known.iter().copied()) {
                        Some(m) => format!("did you mean \"{m}\"?"),
                        None => format!("use IANA names: {}", known.join(", ")),
                    }),
                );
                ok = false;
            }
        }
        let tls13 = cipher_suites.iter().any(|s| s.starts_with("TLS13_"));
        let tls12 = cipher_suites.iter().any(|s| !s.starts_with("TLS13_"));
        if ok && !tls13 {
            c.error(
                section.span(),
                format!("{at}.cipher_suites"),
                "no TLS 1.3 cipher suite is allowed, so TLS 1.3 clients could not connect"
                    .to_string(),
                Some("keep at least one TLS13_* suite (e.g. \"TLS13_AES_128_GCM_SHA256\")".into()),
            );
            ok = false;
        }
        if ok && !tls12 && min_version == Some(TlsVersion::Tls12) {
            c.error(
                section.span(),
                format!("{at}.cipher_suites"),
                "min_version is 1.2 but no TLS 1.2 cipher suite is allowed".to_string(),
                Some("add a TLS_ECDHE_* suite, or set `min_version = \"1.3\"`".into()),
            );
            ok = false;
        }
    }
    let handshake_timeout = match &s.handshake_timeout {
        None => Some(defaults::TLS_HANDSHAKE_TIMEOUT),
        Some(v) => {
            let parsed = super::parse_duration(v.get_ref()).filter(|d| !d.is_zero());
            if parsed.is_none() {
                c.error(
                    v.span(),
                    format!("{at}.handshake_timeout"),
                    format!("\"{}\" is not a positive duration", v.get_ref()),
                    Some("write a whole number and a unit: \"500ms\", \"10s\"".into()),
                );
            }
            parsed
        }
    };
    let session_ticket_keys = s
        .session_ticket_keys
        .as_ref()
        .map(|v| base.join(v.get_ref()));
    if let (Some(v), Some(path)) = (&s.session_ticket_keys, &session_ticket_keys)
        && let Err(e) = crate::tls::tickets::KeyFileTicketer::load(path)
    {
        c.error(
            v.span(),
            format!("{at}.session_ticket_keys"),
            e,
            Some("one key per line, each made with `openssl rand -base64 48`; the first encrypts, all decrypt".into()),
        );
        ok = false;
    }
    let client_ca = s.client_ca.as_ref().map(|v| base.join(v.get_ref()));
    if let (Some(v), Some(path)) = (&s.client_ca, &client_ca)
        && let Err(e) = crate::tls::client_auth::load_roots(path)
    {
        c.error(
            v.span(),
            format!("{at}.client_ca"),
            e,
            Some("a PEM file with the CA certificate(s) that sign client certificates".into()),
        );
        ok = false;
    }
    let required = match &s.client_certificate {
        None => true,
        Some(v) => match v.get_ref().as_str() {
            "required" => true,
            "optional" => false,
            other => {
                c.error(
                    v.span(),
                    format!("{at}.client_certificate"),
                    format!("unknown client_certificate mode \"{other}\""),
                    Some("use \"required\" (refuse clients without a valid certificate) or \"optional\" (verify one if sent)".into()),
                );
                ok = false;
                true
            }
        },
    };
    if s.client_ca.is_none()
        && let Some(v) = &s.client_certificate
    {
        c.error(
            v.span(),
            format!("{at}.client_certificate"),
            "client_certificate needs client_ca to verify against".to_string(),
            Some("add `client_ca = \"clients-ca.pem\"`, or remove client_certificate".into()),
        );
        ok = false;
    }
    let header = match &s.client_certificate_header {
        None => defaults::CLIENT_CERT_HEADER.to_string(),
        Some(v) => {
            let name = v.get_ref().to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                c.error(
                    v.span(),
                    format!("{at}.client_certificate_header"),
                    format!("\"{}\" is not a valid header name", v.get_ref()),
                    Some(format!(
                        "use letters, digits and dashes, e.g. \"{}\"",
                        defaults::CLIENT_CERT_HEADER
                    )),
                );
                ok = false;
            }
            name
        }
    };
    let hsts = match &s.hsts {
        None => None,
        Some(v) => {
            let text = v.get_ref();
            let valid = text.to_ascii_lowercase().contains("max-age=")
                && http::HeaderValue::from_str(text).is_ok();
            if !valid {
                c.error(
                    v.span(),
                    format!("{at}.hsts"),
                    format!("\"{text}\" is not a Strict-Transport-Security value"),
                    Some("write the header value, e.g. \"max-age=31536000; includeSubDomains\" (RFC 6797)".into()),
                );
                ok = false;
            }
            Some(text.clone())
        }
    };
    let early_data = s.early_data.as_ref().is_some_and(|v| *v.get_ref());
    if let Some(v) = &s.early_data
        && *v.get_ref()
    {
        // rustls accepts 0-RTT only on sessions resumed from this process's
        // own single-use cache: a stateless ticket could be replayed to any
        // instance holding the key.
        if s.session_ticket_keys.is_some() {
            c.error(
                v.span(),
                format!("{at}.early_data"),
                "early_data cannot be combined with session_ticket_keys: 0-RTT is accepted only for sessions resumed from this instance's single-use session cache, never from a shared stateless ticket (any instance holding the key would accept a replay)".to_string(),
                Some("remove session_ticket_keys (sessions then resume on the instance that issued them) or set `early_data = false`".into()),
            );
            ok = false;
        }
        if s.client_ca.is_some() {
            c.error(
                v.span(),
                format!("{at}.early_data"),
                "early_data cannot be combined with client_ca: a request sent as early data arrives before the client certificate is verified".to_string(),
                Some("set `early_data = false` on listeners that verify client certificates".into()),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(TlsConfig {
        certificates,
        min_version: min_version?,
        alpn,
        cipher_suites,
        handshake_timeout: handshake_timeout?,
        strict_sni: s.strict_sni.unwrap_or(false),
        session_ticket_keys,
        client_ca,
        client_certificate_required: required,
        client_certificate_header: header,
        hsts,
        early_data,
    })
}

fn min_version(c: &mut Collector<'_>, at: &str, v: &Option<Spanned<String>>) -> Option<TlsVersion> {
    match v.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None => Some(TlsVersion::Tls12),
        Some((_, "1.2" | "TLSv1.2")) => Some(TlsVersion::Tls12),
        Some((_, "1.3" | "TLSv1.3")) => Some(TlsVersion::Tls13),
        Some((v, other)) => {
            c.error(
                v.span(),
                format!("{at}.min_version"),
                format!("unsupported TLS version \"{other}\""),
                Some(format!(
                    "use \"1.2\" (default: {}) or \"1.3\"; TLS 1.0 and 1.1 are deprecated (RFC 8996)",
                    defaults::TLS_MIN_VERSION
                )),
            );
            None
        }
    }
}

/// Validates a cluster's `tls` table (TLS to its endpoints). The CA bundle,
/// the system roots and the client certificate are loaded here with the
/// functions used at start, so `fulcrum check` catches what would fail.
pub(super) fn upstream_tls(
    c: &mut Collector<'_>,
    at: &str,
    section: &Spanned<UpstreamTlsSection>,
    base: &Path,
) -> Option<UpstreamTlsConfig> {
    let s = section.get_ref();
    let at = format!("{at}.tls");
    let mut ok = true;
    let insecure = s
        .insecure_skip_verify
        .as_ref()
        .is_some_and(|v| *v.get_ref());
    let ca = s.ca.as_ref().map(|v| base.join(v.get_ref()));
    match (&s.ca, &ca) {
        (Some(v), Some(path)) => {
            if insecure {
                c.error(
                    v.span(),
                    format!("{at}.ca"),
                    "`ca` and `insecure_skip_verify = true` contradict each other".to_string(),
                    Some("keep `ca` to verify endpoint certificates (recommended), or remove it to skip verification".into()),
                );
                ok = false;
            } else if let Err(e) = crate::tls::client_auth::load_roots(path) {
                c.error(
                    v.span(),
                    format!("{at}.ca"),
                    e,
                    Some("a PEM file with the CA certificate(s) that sign the endpoints' certificates".into()),
                );
                ok = false;
            }
        }
        _ if !insecure => {
            if let Err(e) = crate::tls::upstream::system_roots() {
                c.error(
                    section.span(),
                    format!("{at}.ca"),
                    e,
                    Some("install the system CA bundle (Debian: `apt-get install ca-certificates`), or set `ca = \"endpoints-ca.pem\"`".into()),
                );
                ok = false;
            }
        }
        _ => {}
    }
    let sni = match &s.sni {
        None => None,
        Some(v) => {
            let name = v.get_ref();
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                c.error(
                    v.span(),
                    format!("{at}.sni"),
                    format!("\"{name}\" is not a DNS name or IP address"),
                    Some("write the name the endpoints' certificates carry, e.g. \"api.internal.example\"".into()),
                );
                ok = false;
            }
            Some(name.clone())
        }
    };
    let certificate = s
        .certificate
        .as_ref()
        .map(|v| certificate_files(c, &format!("{at}.certificate"), v, base));
    let certificate = match certificate {
        None => None,
        Some(None) => {
            ok = false;
            None
        }
        Some(files) => files,
    };
    let min_version = min_version(c, &at, &s.min_version);
    if !ok {
        return None;
    }
    Some(UpstreamTlsConfig {
        ca,
        sni,
        certificate,
        min_version: min_version?,
        insecure_skip_verify: insecure,
    })
}

/// One `{ cert, key }` pair, loaded to prove it is usable.
fn certificate_files(
    c: &mut Collector<'_>,
    at: &str,
    entry: &Spanned<CertificateSection>,
    base: &Path,
) -> Option<CertificateFiles> {
    let e = entry.get_ref();
    let files = CertificateFiles {
        cert: base.join(e.cert.get_ref()),
        key: base.join(e.key.get_ref()),
    };
    match crate::tls::certificate::load(&files.cert, &files.key, &crate::tls::provider()) {
        Ok(_) => Some(files),
        Err(err) => {
            c.error(
                e.cert.span(),
                at.to_string(),
                err.to_string(),
                Some(format!(
                    "`cert` is a PEM file with the certificate first, then its chain; `key` the matching PEM private key (relative paths start at {})",
                    base.display()
                )),
            );
            None
        }
    }
}
