//! TLS termination on HTTP listeners (rustls with the aws-lc-rs provider):
//! certificates chosen by SNI, ALPN `h2`/`http/1.1` on one port, a minimum
//! version and cipher-suite policy, and a handshake timeout. The accepted
//! stream is wrapped here and handed to `http/server.rs` like a plain one.

pub mod certificate;
pub mod client_auth;
pub mod early;
pub mod resolver;
pub mod session;
pub mod tickets;
pub mod upstream;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{ListenerConfig, TlsConfig, TlsVersion};
use crate::telemetry::histogram::LatencyHistogram;
use crate::telemetry::metrics::{
    CertificateLabels, ListenerLabels, ListenerReasonLabels, Metrics, TlsHandshakeLabels,
};
use crate::watch::WatchedFiles;
use certificate::{CertificateError, LoadedCertificate};
use resolver::SniResolver;
use session::{BoundCache, BoundTickets, SessionContext};
use tickets::KeyFileTicketer;

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

/// The versions rustls may negotiate from `min` up (1.3 preferred).
fn protocol_versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static FROM_12: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        TlsVersion::Tls12 => &FROM_12,
        TlsVersion::Tls13 => &ONLY_13,
    }
}

/// The `version` and `kind` labels of a completed handshake, either side.
fn handshake_labels(conn: &rustls::CommonState) -> (&'static str, &'static str) {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    };
    let kind = match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => "resumed",
        _ => "full",
    };
    (version, kind)
}

/// Everything one TLS listener needs to accept connections, and to reload
/// its certificates, ticket keys and client CA while it runs.
pub struct Terminator {
    listener: String,
    /// Swapped whole when the client CA is reloaded (rustls keeps the
    /// verifier private); certificates and ticket keys reload underneath it.
    server_config: ArcSwap<ServerConfig>,
    timeout: Duration,
    metrics: TlsMetrics,
    config: TlsConfig,
    resolver: Arc<ReloadingResolver>,
    tickets: Option<Arc<KeyFileTicketer>>,
    /// With a client CA: what resumed sessions are bound to (see `session`).
    session_context: Option<Arc<SessionContext>>,
    /// Every file above, to reload when one changes.
    files: WatchedFiles,
    /// The header carrying a verified client certificate upstream.
    client_cert_header: http::HeaderName,
    /// `Strict-Transport-Security` for responses (validated with the config).
    hsts: Option<http::HeaderValue>,
}

/// The SNI resolver behind an `ArcSwap`: a reload swaps it whole, so a
/// handshake sees the old certificates or the new ones, never a mix, and
/// established connections keep what they negotiated.
#[derive(Debug)]
struct ReloadingResolver(ArcSwap<SniResolver>);

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().resolve(hello)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("listener {listener}: certificates[{index}]: {source}")]
    Certificate {
        listener: String,
        index: usize,
        source: CertificateError,
    },
    #[error("listener {listener}: client_ca: {reason}")]
    ClientCa { listener: String, reason: String },
    #[error("listener {listener}: session_ticket_keys: {reason}")]
    TicketKeys { listener: String, reason: String },
    #[error("cluster {cluster}: tls: {reason}")]
    Upstream { cluster: String, reason: String },
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
    /// Loads the certificates and ticket keys and builds the rustls configuration.
    pub fn new(
        listener: &ListenerConfig,
        tls: &TlsConfig,
        metrics: &Metrics,
    ) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let loaded = load_certificates(tls, &provider).map_err(|(index, source)| {
            TlsSetupError::Certificate {
                listener: listener.name.clone(),
                index,
                source,
            }
        })?;
        let tickets = match &tls.session_ticket_keys {
            Some(path) => Some(Arc::new(KeyFileTicketer::load(path).map_err(|reason| {
                TlsSetupError::TicketKeys {
                    listener: listener.name.clone(),
                    reason,
                }
            })?)),
            None => None,
        };
        let resolver = Arc::new(ReloadingResolver(ArcSwap::from_pointee(SniResolver::new(
            &loaded,
            tls.strict_sni,
        ))));
        let provider = Arc::new(provider);
        let (client_verifier, session_context) = match &tls.client_ca {
            Some(ca) => {
                let (verifier, pem) =
                    client_auth::verifier(ca, tls.client_certificate_required, provider.clone())
                        .map_err(|reason| TlsSetupError::ClientCa {
                            listener: listener.name.clone(),
                            reason,
                        })?;
                (Some(verifier), Some(Arc::new(SessionContext::new(&pem))))
            }
            None => (None, None),
        };
        let rustls_error = |source| TlsSetupError::Rustls {
            listener: listener.name.clone(),
            source,
        };
        let mut config = server_config(tls, provider, client_verifier, resolver.clone())
            .map_err(rustls_error)?;
        // Shared keys when configured (resumption across instances), else a
        // per-process key that rustls rotates.
        let ticketer: Arc<dyn ProducesTickets> = match &tickets {
            Some(t) => t.clone(),
            None => rustls::crypto::aws_lc_rs::Ticketer::new().map_err(rustls_error)?,
        };
        let cache: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        if tls.early_data {
            // rustls accepts 0-RTT only for sessions resumed from its own
            // single-use cache, so this listener issues no stateless tickets
            // (the config check refuses session_ticket_keys with it).
            config.max_early_data_size = early::MAX_EARLY_DATA;
            config.send_half_rtt_data = true;
            config.session_storage = cache.clone();
        } else {
            (config.ticketer, config.session_storage) = match &session_context {
                Some(context) => (
                    Arc::new(BoundTickets {
                        inner: ticketer,
                        context: context.clone(),
                    }) as Arc<dyn ProducesTickets>,
                    Arc::new(BoundCache {
                        inner: cache,
                        context: context.clone(),
                    }) as Arc<dyn StoresServerSessions>,
                ),
                None => (ticketer, cache),
            };
        }
        let metrics = TlsMetrics::new(metrics, &listener.name);
        metrics.certificates(&loaded);
        Ok(Self {
            listener: listener.name.clone(),
            server_config: ArcSwap::from_pointee(config),
            timeout: tls.handshake_timeout,
            metrics,
            files: WatchedFiles::new(watched_files(tls)),
            config: tls.clone(),
            session_context,
            resolver,
            tickets,
            hsts: tls
                .hsts
                .as_deref()
                .and_then(|v| http::HeaderValue::from_str(v).ok()),
            client_cert_header: http::HeaderName::from_bytes(
                tls.client_certificate_header.as_bytes(),
            )
            .unwrap_or_else(|_| {
                http::HeaderName::from_static(crate::config::defaults::CLIENT_CERT_HEADER)
            }),
        })
    }

    /// Re-reads the certificates, the ticket-key file and the client CA. New handshakes use
    /// what was read; a file that does not load is refused with a log line
    /// and what was in use keeps serving.
    pub fn reload(&self, why: &str) {
        self.files.mark();
        match load_certificates(&self.config, &provider()) {
            Ok(loaded) => {
                self.resolver
                    .0
                    .store(Arc::new(SniResolver::new(&loaded, self.config.strict_sni)));
                self.metrics.certificates(&loaded);
                tracing::info!(listener = %self.listener, why, certificates = loaded.len(), "TLS certificates reloaded");
            }
            Err((index, e)) => {
                self.metrics.reload_failures.inc();
                tracing::error!(listener = %self.listener, why, error = %e, "TLS certificates[{index}] cannot be loaded; keeping the certificates in use");
            }
        }
        if let (Some(tickets), Some(path)) = (&self.tickets, &self.config.session_ticket_keys) {
            match tickets.reload(path) {
                Ok(n) => {
                    tracing::info!(listener = %self.listener, why, keys = n, "TLS session ticket keys reloaded");
                }
                Err(e) => {
                    self.metrics.reload_failures.inc();
                    tracing::error!(listener = %self.listener, why, error = %e, "session ticket keys cannot be loaded; keeping the keys in use");
                }
            }
        }
        if let Some(ca) = &self.config.client_ca {
            match self.reload_client_ca(ca) {
                Ok(()) => {
                    tracing::info!(listener = %self.listener, why, client_ca = %ca.display(), "client CA reloaded");
                }
                Err(e) => {
                    self.metrics.reload_failures.inc();
                    tracing::error!(listener = %self.listener, why, error = %e, "client_ca cannot be loaded; keeping the CA in use");
                }
            }
        }
    }

    /// A new server config with the re-read client CA. The session cache
    /// and ticketer carry over, but under a new context: sessions verified
    /// against the old bundle no longer resume.
    fn reload_client_ca(&self, ca: &std::path::Path) -> Result<(), String> {
        let provider = Arc::new(provider());
        let (verifier, pem) = client_auth::verifier(
            ca,
            self.config.client_certificate_required,
            provider.clone(),
        )?;
        let mut config = server_config(
            &self.config,
            provider,
            Some(verifier),
            self.resolver.clone(),
        )
        .map_err(|e| e.to_string())?;
        let current = self.server_config.load();
        config.session_storage = current.session_storage.clone();
        config.ticketer = current.ticketer.clone();
        if let Some(context) = &self.session_context {
            context.set(&pem);
        }
        self.server_config.store(Arc::new(config));
        Ok(())
    }

    /// Reloads when a certificate, key, ticket-key or client CA file changed on disk
    /// (polled by the control thread: no inotify dependency, and it also
    /// sees files replaced by rename, as Kubernetes secrets are).
    pub fn reload_if_changed(&self) {
        if self.files.changed() {
            self.reload("a file changed on disk");
        }
    }

    /// The header that carries a verified client certificate upstream (and
    /// is removed from client requests).
    pub fn client_cert_header(&self) -> &http::HeaderName {
        &self.client_cert_header
    }

    /// The `Strict-Transport-Security` value, if the listener sends one.
    pub fn hsts(&self) -> Option<&http::HeaderValue> {
        self.hsts.as_ref()
    }

    /// Runs the handshake (bounded by `handshake_timeout`) and records it.
    /// With `early_data`, the stream comes back as soon as the server's
    /// flight is out and the client's early data is accepted.
    pub async fn accept<IO>(&self, io: IO) -> Result<ServerStream<IO>, &'static str>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = crate::clock::now();
        let config = self.server_config.load_full();
        let accepted = if self.config.early_data {
            tokio::time::timeout(self.timeout, early::accept(config, io))
                .await
                .map(|r| r.map(ServerStream::Early))
        } else {
            tokio::time::timeout(self.timeout, TlsAcceptor::from(config).accept(io))
                .await
                .map(|r| r.map(ServerStream::Full))
        };
        let reason = match accepted {
            Ok(Ok(stream)) => {
                self.metrics
                    .duration
                    .observe(crate::clock::elapsed(started));
                let (version, kind) = handshake_labels(stream.connection());
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

/// An accepted TLS connection: tokio-rustls's stream, or fulcrum's own on
/// listeners that accept 0-RTT data (see `early.rs`).
pub enum ServerStream<IO> {
    Full(TlsStream<IO>),
    Early(early::EarlyDataStream<IO>),
}

impl<IO> ServerStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    pub fn connection(&self) -> &rustls::ServerConnection {
        match self {
            ServerStream::Full(s) => s.get_ref().1,
            ServerStream::Early(s) => s.connection(),
        }
    }

    /// On a connection that accepted early data: whether its handshake is
    /// still incomplete, for the requests served on it.
    pub fn early_data(&mut self) -> Option<Arc<early::HandshakeState>> {
        match self {
            ServerStream::Early(s) => s.early_data_accepted().then(|| s.handshake_state()),
            ServerStream::Full(_) => None,
        }
    }
}

impl<IO> AsyncRead for ServerStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Full(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Early(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<IO> AsyncWrite for ServerStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Full(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Early(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Full(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerStream::Early(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Full(s) => s.is_write_vectored(),
            ServerStream::Early(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Full(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Early(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ServerStream::Full(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Early(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// All certificates of a listener, or the index of the first that fails.
fn load_certificates(
    tls: &TlsConfig,
    provider: &CryptoProvider,
) -> Result<Vec<LoadedCertificate>, (usize, CertificateError)> {
    tls.certificates
        .iter()
        .enumerate()
        .map(|(i, files)| certificate::load(&files.cert, &files.key, provider).map_err(|e| (i, e)))
        .collect()
}

fn watched_files(tls: &TlsConfig) -> Vec<PathBuf> {
    tls.certificates
        .iter()
        .flat_map(|c| [c.cert.clone(), c.key.clone()])
        .chain(tls.session_ticket_keys.clone())
        .chain(tls.client_ca.clone())
        .collect()
}

fn server_config(
    tls: &TlsConfig,
    provider: Arc<CryptoProvider>,
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    resolver: Arc<ReloadingResolver>,
) -> Result<ServerConfig, rustls::Error> {
    let mut provider = Arc::unwrap_or_clone(provider);
    if !tls.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|s| {
            s.suite()
                .as_str()
                .is_some_and(|n| tls.cipher_suites.iter().any(|c| c == n))
        });
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(protocol_versions(tls.min_version))?;
    let builder = match client_verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
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
    handshakes: Family<TlsHandshakeLabels, Counter>,
    errors: Family<ListenerReasonLabels, Counter>,
    expiry: Family<CertificateLabels, Gauge>,
    duration: LatencyHistogram,
    reload_failures: Counter,
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
            reload_failures: m
                .tls_reload_failures
                .get_or_create(&ListenerLabels {
                    listener: listener.to_string(),
                })
                .clone(),
        }
    }

    fn certificates(&self, loaded: &[LoadedCertificate]) {
        for cert in loaded {
            self.expiry(cert.cert_path.display().to_string(), cert.not_after);
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
