//! TLS to a cluster's endpoints (re-encryption): the client side of rustls,
//! built once per cluster and shared by every worker, so TLS sessions one
//! worker opened are resumed by the others.
//!
//! Verification is on unless the config names `insecure_skip_verify`: the
//! endpoint's chain must reach `ca` (or the system roots) and carry the `sni`
//! name (or, without one, the endpoint's IP address). Every failure is
//! counted by reason and logged, so a broken upstream certificate is never
//! silent.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{TlsSetupError, provider};
use crate::config::{ClusterConfig, UpstreamProtocol, UpstreamTlsConfig};
use crate::telemetry::metrics::{
    ClusterLabels, ClusterReasonLabels, ClusterTlsHandshakeLabels, Metrics,
};
use crate::watch::WatchedFiles;

/// The rustls client side for one cluster: verification (`ca`, the system
/// roots, or none with `insecure_skip_verify`), the client certificate, and
/// ALPN by the cluster's protocol.
fn client_config(
    protocol: UpstreamProtocol,
    tls: &UpstreamTlsConfig,
) -> Result<ClientConfig, String> {
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(super::protocol_versions(tls.min_version))
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(NoVerification(provider.clone()))
    } else {
        let roots = match &tls.ca {
            Some(path) => Arc::new(super::client_auth::load_roots(path)?),
            None => system_roots()?,
        };
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| e.to_string())?
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.certificate {
        Some(files) => {
            let loaded = super::certificate::load(&files.cert, &files.key, &provider)
                .map_err(|e| format!("certificate: {e}"))?;
            builder.with_client_cert_resolver(Arc::new(ClientCertificate(loaded.key)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![match protocol {
        UpstreamProtocol::Http1 => b"http/1.1".to_vec(),
        UpstreamProtocol::Http2 => b"h2".to_vec(),
    }];
    Ok(config)
}

/// The files a reload re-reads.
fn watched_files(tls: &UpstreamTlsConfig) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = tls.ca.iter().cloned().collect();
    if let Some(c) = &tls.certificate {
        files.push(c.cert.clone());
        files.push(c.key.clone());
    }
    files
}

/// The system's CA bundle (Debian: `/etc/ssl/certs`), read once.
pub fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_string(), |e| e.to_string());
                return Err(format!("no system CA certificates could be loaded ({why})"));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// Originates TLS for one cluster.
pub struct Originator {
    cluster: String,
    protocol: UpstreamProtocol,
    settings: UpstreamTlsConfig,
    /// Swapped whole when `ca` or the client certificate is reloaded; a
    /// new config also starts a new session cache, so nothing verified
    /// under the old CA bundle is resumed.
    config: ArcSwap<ClientConfig>,
    /// `None`: verify (and address) each endpoint by its IP.
    sni: Option<ServerName<'static>>,
    handshakes: Family<ClusterTlsHandshakeLabels, Counter>,
    errors: Family<ClusterReasonLabels, Counter>,
    reload_failures: Counter,
    /// `ca` and the client certificate and key, to reload when one changes.
    files: WatchedFiles,
    /// At most one warning per second per cluster: a broken origin
    /// certificate under load would otherwise log every request. The
    /// metric counts every failure.
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
    suppressed: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Originator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Originator")
            .field("cluster", &self.cluster)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl Originator {
    pub fn new(
        cluster: &ClusterConfig,
        tls: &UpstreamTlsConfig,
        metrics: &Metrics,
    ) -> Result<Self, TlsSetupError> {
        let fail = |reason: String| TlsSetupError::Upstream {
            cluster: cluster.name.clone(),
            reason,
        };
        if tls.insecure_skip_verify {
            tracing::warn!(
                cluster = %cluster.name,
                "insecure_skip_verify is set: endpoint certificates are NOT verified, so anyone on the path can impersonate them"
            );
        }
        let config = client_config(cluster.protocol, tls).map_err(fail)?;
        let sni = match &tls.sni {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| fail(format!("sni \"{name}\": {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            cluster: cluster.name.clone(),
            protocol: cluster.protocol,
            settings: tls.clone(),
            config: ArcSwap::from_pointee(config),
            sni,
            handshakes: metrics.upstream_tls_handshakes.clone(),
            errors: metrics.upstream_tls_handshake_errors.clone(),
            reload_failures: metrics
                .upstream_tls_reload_failures
                .get_or_create(&ClusterLabels {
                    cluster: cluster.name.clone(),
                })
                .clone(),
            files: WatchedFiles::new(watched_files(tls)),
            last_warning: std::sync::Mutex::new(None),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Re-reads the CA bundle and the client certificate. New connections
    /// use them; open ones keep theirs. Files that do not load are refused
    /// with a log line, and what was in use stays.
    pub fn reload(&self, why: &str) {
        self.files.mark();
        match client_config(self.protocol, &self.settings) {
            Ok(config) => {
                self.config.store(Arc::new(config));
                tracing::info!(cluster = %self.cluster, why, "upstream TLS CA and client certificate reloaded");
            }
            Err(e) => {
                self.reload_failures.inc();
                tracing::error!(cluster = %self.cluster, why, error = %e, "upstream TLS files cannot be loaded; keeping the ones in use");
            }
        }
    }

    /// Reloads when the CA bundle or the client certificate or key changed
    /// on disk (polled by the control thread, like the listeners' files).
    pub fn reload_if_changed(&self) {
        if self.files.changed() {
            self.reload("a file changed on disk");
        }
    }

    /// Runs the client handshake on `tcp` (connected to `address`) until
    /// `deadline`, recording the result.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        address: SocketAddr,
        deadline: Instant,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = self
            .sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(address.ip().into()));
        let connector = TlsConnector::from(self.config.load_full());
        let (reason, error) =
            match tokio::time::timeout_at(deadline, connector.connect(name, tcp)).await {
                Ok(Ok(stream)) => {
                    let (version, kind) = super::handshake_labels(stream.get_ref().1);
                    self.handshakes
                        .get_or_create(&ClusterTlsHandshakeLabels {
                            cluster: self.cluster.clone(),
                            version,
                            kind,
                        })
                        .inc();
                    return Ok(stream);
                }
                Ok(Err(e)) => (failure_reason(&e), e),
                Err(_) => (
                    "timeout",
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
                ),
            };
        self.errors
            .get_or_create(&ClusterReasonLabels {
                cluster: self.cluster.clone(),
                reason,
            })
            .inc();
        self.warn(address, reason, &error);
        Err(error)
    }

    fn warn(&self, address: SocketAddr, reason: &'static str, error: &io::Error) {
        use std::sync::atomic::Ordering;
        let now = crate::clock::now();
        let due = {
            let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
            let due =
                last.is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1));
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(cluster = %self.cluster, endpoint = %address, reason, error = %error, suppressed, "TLS handshake with endpoint failed");
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cluster = %self.cluster, endpoint = %address, reason, error = %error, "TLS handshake with endpoint failed");
        }
    }
}

/// Whether an I/O error from a TLS stream is a TLS failure (an alert, a bad
/// record), as opposed to the connection simply closing.
pub fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// The `reason` label of a failed upstream handshake.
fn failure_reason(e: &io::Error) -> &'static str {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => "closed",
            _ => "io",
        };
    };
    use rustls::{AlertDescription as A, CertificateError as C, Error as E, PeerIncompatible as P};
    match tls {
        E::InvalidCertificate(C::UnknownIssuer) => "unknown_ca",
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "name_mismatch"
        }
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "expired",
        E::InvalidCertificate(_) | E::NoCertificatesPresented => "bad_certificate",
        // The endpoint refused fulcrum's client certificate (or its absence).
        E::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::AccessDenied,
        ) => "client_certificate_rejected",
        E::PeerIncompatible(
            P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::SupportedVersionsExtensionRequired
            | P::ServerDoesNotSupportTls12Or13,
        )
        | E::AlertReceived(A::ProtocolVersion) => "version",
        E::PeerIncompatible(_) | E::AlertReceived(A::HandshakeFailure) => "no_shared_cipher",
        // The endpoint speaks none of the ALPN protocols offered: an HTTP/2
        // cluster pointed at an HTTP/1.1-only origin, or the reverse.
        E::AlertReceived(A::NoApplicationProtocol) | E::NoApplicationProtocol => "alpn",
        E::AlertReceived(_) => "alert_received",
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => "protocol",
        _ => "other",
    }
}

/// The client certificate offered to endpoints that ask for one.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake
/// signature is still checked against it (so the session keys are at least
/// bound to the certificate that was shown).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
