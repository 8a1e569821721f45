//! Certificate selection by SNI: exact names first, then a wildcard for the
//! parent domain (`*.example.com` covers `a.example.com`, not
//! `a.b.example.com`, as RFC 6125 says), then the listener's first
//! certificate — unless `strict_sni` asks to refuse instead, as HAProxy's
//! `strict-sni` does. Several certificates may serve one name (RSA and ECDSA):
//! the first whose key can sign with a scheme the client offers wins, so
//! modern clients get ECDSA and old ones RSA.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certificate::LoadedCertificate;

#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// All certificates in config order; the default is the first that suits
    /// the client. Empty under `strict_sni`.
    default: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    pub fn new(certificates: &[LoadedCertificate], strict_sni: bool) -> Self {
        let mut resolver = SniResolver::default();
        for cert in certificates {
            for name in &cert.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut resolver.wildcard, parent.to_string()),
                    None => (&mut resolver.exact, name.clone()),
                };
                map.entry(key).or_default().push(cert.key.clone());
            }
            if !strict_sni {
                resolver.default.push(cert.key.clone());
            }
        }
        resolver
    }

    /// The certificate for `server_name` (already lowercase or not), or `None`.
    pub fn select(
        &self,
        server_name: Option<&str>,
        schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = server_name {
            let name = name.to_ascii_lowercase();
            let name = name.trim_end_matches('.');
            if let Some(found) = self.exact.get(name).and_then(|c| suitable(c, schemes)) {
                return Some(found);
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(found) = self.wildcard.get(parent).and_then(|c| suitable(c, schemes))
            {
                return Some(found);
            }
        }
        suitable(&self.default, schemes)
    }
}

fn suitable(
    candidates: &[Arc<CertifiedKey>],
    schemes: &[SignatureScheme],
) -> Option<Arc<CertifiedKey>> {
    candidates
        .iter()
        .find(|c| c.key.choose_scheme(schemes).is_some())
        .or_else(|| candidates.first())
        .cloned()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name(), hello.signature_schemes())
    }
}
