//! TLS termination on HTTP listeners (rustls with the aws-lc-rs provider):
//! certificates chosen by SNI, ALPN `h2`/`http/1.1` on one port, a minimum
//! version and cipher-suite policy, and a handshake timeout. The accepted
//! stream is wrapped here and handed to `http/server.rs` like a plain one.

pub mod certificate;
pub mod resolver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::{ProtocolVersion, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{ListenerConfig, TlsConfig, TlsVersion};
use crate::telemetry::histogram::LatencyHistogram;
use crate::telemetry::metrics::{
    CertificateLabels, ListenerLabels, ListenerReasonLabels, Metrics, TlsHandshakeLabels,
};
use certificate::{CertificateError, LoadedCertificate};
use resolver::SniResolver;

/// Resumable sessions kept per worker process for session-ID resumption
/// (TLS 1.2 clients without tickets). NGINX's `ssl_session_cache
/// shared:SSL:10m` holds about 40 000; 20 000 costs a few MB at most.
const SESSION_CACHE_SIZE: usize = 20_000;

/// The crypto provider every TLS object in fulcrum uses (see DESIGN.md:
/// aws-lc-rs measured fastest against OpenSSL here).
pub fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Cipher suite names fulcrum accepts in `cipher_suites` (IANA names, as
/// rustls spells them).
pub fn cipher_suite_names() -> Vec<&'static str> {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect()
}

/// Everything one TLS listener needs to accept connections.
pub struct Terminator {
    acceptor: TlsAcceptor,
    timeout: Duration,
    metrics: TlsMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("listener {listener}: certificates[{index}]: {source}")]
    Certificate {
        listener: String,
        index: usize,
        source: CertificateError,
    },
    #[error("listener {listener}: {source}")]
    Rustls {
        listener: String,
        source: rustls::Error,
    },
}

impl std::fmt::Debug for Terminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminator")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Terminator {
    /// Loads the certificates and builds the rustls configuration.
    pub fn new(
        listener: &ListenerConfig,
        tls: &TlsConfig,
        metrics: &Metrics,
    ) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let mut loaded: Vec<LoadedCertificate> = Vec::with_capacity(tls.certificates.len());
        for (index, files) in tls.certificates.iter().enumerate() {
            let cert = certificate::load(&files.cert, &files.key, &provider).map_err(|source| {
                TlsSetupError::Certificate {
                    listener: listener.name.clone(),
                    index,
                    source,
                }
            })?;
            loaded.push(cert);
        }
        let config =
            server_config(tls, provider, &loaded).map_err(|source| TlsSetupError::Rustls {
                listener: listener.name.clone(),
                source,
            })?;
        let metrics = TlsMetrics::new(metrics, &listener.name);
        for cert in &loaded {
            metrics.expiry(metrics_label(cert), cert.not_after);
        }
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            timeout: tls.handshake_timeout,
            metrics,
        })
    }

    /// Runs the handshake (bounded by `handshake_timeout`) and records it.
    pub async fn accept<IO>(&self, io: IO) -> Result<TlsStream<IO>, &'static str>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let accepted = tokio::time::timeout(self.timeout, self.acceptor.accept(io)).await;
        let reason = match accepted {
            Ok(Ok(stream)) => {
                self.metrics.duration.observe(started.elapsed());
                let (_, conn) = stream.get_ref();
                let version = match conn.protocol_version() {
                    Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                    Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                    _ => "other",
                };
                let kind = match conn.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => "resumed",
                    _ => "full",
                };
                self.metrics.handshake(version, kind);
                return Ok(stream);
            }
            Ok(Err(e)) => failure_reason(&e),
            Err(_) => "timeout",
        };
        self.metrics.failed(reason);
        Err(reason)
    }
}

fn metrics_label(cert: &LoadedCertificate) -> String {
    cert.cert_path.display().to_string()
}

fn server_config(
    tls: &TlsConfig,
    mut provider: CryptoProvider,
    certificates: &[LoadedCertificate],
) -> Result<ServerConfig, rustls::Error> {
    if !tls.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|s| {
            s.suite()
                .as_str()
                .is_some_and(|n| tls.cipher_suites.iter().any(|c| c == n))
        });
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(certificates, tls.strict_sni)));
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(config)
}

/// The `reason` label of a failed handshake: what an operator can act on.
fn failure_reason(e: &std::io::Error) -> &'static str {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => "client_closed",
            _ => "io",
        };
    };
    use rustls::{AlertDescription as A, Error as E, PeerIncompatible as P};
    match tls {
        E::PeerIncompatible(P::NoCipherSuitesInCommon) => "no_shared_cipher",
        E::PeerIncompatible(
            P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::Tls13RequiredForQuic
            | P::SupportedVersionsExtensionRequired,
        ) => "version",
        E::PeerIncompatible(P::NoKxGroupsInCommon | P::NoSignatureSchemesInCommon) => {
            "no_shared_cipher"
        }
        E::PeerIncompatible(_) => "incompatible",
        // The resolver found no certificate: only under strict_sni.
        E::General(msg) if msg.contains("no server certificate") => "unknown_sni",
        E::NoCertificatesPresented | E::InvalidCertificate(_) => "bad_certificate",
        E::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::DecryptError,
        ) => "bad_certificate",
        E::AlertReceived(A::ProtocolVersion) => "version",
        E::AlertReceived(_) => "alert_received",
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => "protocol",
        _ => "other",
    }
}

/// Per-listener TLS metric handles.
#[derive(Debug, Clone)]
struct TlsMetrics {
    listener: String,
    handshakes: prometheus_client::metrics::family::Family<
        TlsHandshakeLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    errors: prometheus_client::metrics::family::Family<
        ListenerReasonLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    expiry: prometheus_client::metrics::family::Family<
        CertificateLabels,
        prometheus_client::metrics::gauge::Gauge,
    >,
    duration: LatencyHistogram,
}

impl TlsMetrics {
    fn new(m: &Metrics, listener: &str) -> Self {
        Self {
            listener: listener.to_string(),
            handshakes: m.tls_handshakes.clone(),
            errors: m.tls_handshake_errors.clone(),
            expiry: m.tls_certificate_expiry.clone(),
            duration: m
                .tls_handshake_duration
                .get_or_create(&ListenerLabels {
                    listener: listener.to_string(),
                })
                .clone(),
        }
    }

    fn handshake(&self, version: &'static str, kind: &'static str) {
        self.handshakes
            .get_or_create(&TlsHandshakeLabels {
                listener: self.listener.clone(),
                version,
                kind,
            })
            .inc();
    }

    fn failed(&self, reason: &'static str) {
        self.errors
            .get_or_create(&ListenerReasonLabels {
                listener: self.listener.clone(),
                reason,
            })
            .inc();
    }

    fn expiry(&self, certificate: String, not_after: i64) {
        self.expiry
            .get_or_create(&CertificateLabels {
                listener: self.listener.clone(),
                certificate,
            })
            .set(not_after);
    }
}
