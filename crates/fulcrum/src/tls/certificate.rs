//! Loading a certificate chain and its private key from PEM files, with the
//! facts the resolver and the metrics need: the names it serves and when it
//! expires. One function used by `fulcrum check` and at start, so a config
//! that checks clean also starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A usable certificate: chain, key, and what it is for.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    pub key: Arc<CertifiedKey>,
    /// DNS names from the subjectAltName extension, lowercased (may start
    /// with `*.`); the subject CN when there is no DNS SAN, as HAProxy does.
    pub names: Vec<String>,
    /// The end-entity certificate's notAfter, Unix seconds.
    pub not_after: i64,
    pub cert_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (expected PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the key in {key} is not usable: {reason}")]
    BadKey { key: String, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("cannot parse the certificate in {path}: {reason}")]
    Parse { path: String, reason: String },
}

pub fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<LoadedCertificate, CertificateError> {
    let cert_name = cert_path.display().to_string();
    let key_name = key_path.display().to_string();
    let cert_pem = std::fs::read(cert_path).map_err(|e| CertificateError::Read {
        path: cert_name.clone(),
        reason: e.to_string(),
    })?;
    let key_pem = std::fs::read(key_path).map_err(|e| CertificateError::Read {
        path: key_name.clone(),
        reason: e.to_string(),
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::Parse {
            path: cert_name.clone(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(CertificateError::NoCertificate { path: cert_name });
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => CertificateError::NoKey {
            path: key_name.clone(),
        },
        other => CertificateError::BadKey {
            key: key_name.clone(),
            reason: other.to_string(),
        },
    })?;
    let (names, not_after) = describe(leaf).map_err(|reason| CertificateError::Parse {
        path: cert_name.clone(),
        reason,
    })?;
    let signing =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertificateError::BadKey {
                key: key_name.clone(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(CertificateError::KeyMismatch {
                cert: cert_name,
                key: key_name,
            });
        }
    }
    Ok(LoadedCertificate {
        key: Arc::new(certified),
        names,
        not_after,
        cert_path: cert_path.to_path_buf(),
    })
}

/// The names a certificate serves and its expiry.
fn describe(der: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    Ok((names, cert.validity().not_after.timestamp()))
}
