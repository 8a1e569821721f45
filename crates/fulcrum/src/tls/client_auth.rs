//! Client certificates (mTLS) on a terminating listener: verification against
//! a CA bundle, and the verified identity passed upstream in one header
//! (`x-forwarded-client-cert` by default, in Envoy's XFCC format), which is
//! always removed from what the client sent so it cannot be forged.

use std::path::Path;
use std::sync::Arc;

use http::HeaderValue;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

/// Reads a PEM bundle of CA certificates.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    roots_from_pem(path, &pem)
}

fn roots_from_pem(path: &Path, pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(roots)
}

/// The verifier for `ca`, and the bundle's bytes (the session context);
/// `required`: a client without a certificate is refused (else it is let
/// in without the header).
pub fn verifier(
    ca: &Path,
    required: bool,
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<dyn ClientCertVerifier>, Vec<u8>), String> {
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    let roots = Arc::new(roots_from_pem(ca, &pem)?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider);
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    Ok((builder.build().map_err(|e| e.to_string())?, pem))
}

/// The XFCC value for a verified client certificate:
/// `Hash=<sha256 of the DER, hex>;Subject="<RFC 4514 DN>";URI=...;DNS=...`.
pub fn forwarded_value(cert: &CertificateDer<'_>) -> Option<HeaderValue> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    let mut value = String::from("Hash=");
    for b in digest.as_ref() {
        value.push_str(&format!("{b:02x}"));
    }
    if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) {
        let subject = parsed.subject().to_string().replace('"', "\\\"");
        value.push_str(&format!(";Subject=\"{subject}\""));
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => value.push_str(&format!(";URI={uri}")),
                    GeneralName::DNSName(dns) => value.push_str(&format!(";DNS={dns}")),
                    _ => {}
                }
            }
        }
    }
    HeaderValue::from_str(&value).ok()
}
