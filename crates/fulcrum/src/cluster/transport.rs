//! How fulcrum reaches a cluster's endpoints: a TCP connection, and TLS over
//! it when the cluster has a `tls` table. One connect path for proxied
//! requests (HTTP/1.1 pools and the HTTP/2 client) and health checks, so a
//! health check fails exactly when a request would.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::ClusterConfig;
use crate::telemetry::metrics::Metrics;
use crate::tls::TlsSetupError;
use crate::tls::upstream::Originator;

/// Connects to one cluster's endpoints.
#[derive(Debug)]
pub struct Transport {
    /// Unique per transport built: a pooled connection is reused only by
    /// the transport that made it (a reload may change TLS settings).
    id: u64,
    /// Bounds TCP connect and TLS handshake together (as Envoy's
    /// `connect_timeout` does with a TLS transport socket).
    connect_timeout: Duration,
    tls: Option<Originator>,
}

/// Why an endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Tcp(io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
}

impl Transport {
    pub fn new(cluster: &ClusterConfig, metrics: &Metrics) -> Result<Self, TlsSetupError> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            connect_timeout: cluster.connect_timeout,
            tls: match &cluster.tls {
                Some(tls) => Some(Originator::new(cluster, tls, metrics)?),
                None => None,
            },
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS side, for reloading its files.
    pub fn originator(&self) -> Option<&Originator> {
        self.tls.as_ref()
    }

    /// A connected (and, with TLS, handshaken) stream to `address`.
    pub async fn connect(&self, address: SocketAddr) -> Result<Stream, ConnectError> {
        let deadline = crate::clock::deadline(self.connect_timeout);
        let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(ConnectError::Tcp(e)),
            Err(_) => {
                return Err(ConnectError::Tcp(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connect timed out after {} ms",
                        self.connect_timeout.as_millis()
                    ),
                )));
            }
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            // Boxed: the handshake future holds a whole rustls connection
            // (~1.3 KB), and every request future that may connect would
            // otherwise carry (and move) that much, TLS or not.
            Some(tls) => Box::pin(tls.handshake(tcp, address, deadline))
                .await
                .map(|s| Stream::Tls(Box::new(s)))
                .map_err(ConnectError::Tls),
        }
    }
}

/// A connection to an endpoint, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether TLS negotiated HTTP/2 by ALPN.
    pub fn is_h2(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }

    /// Whether an idle connection can still carry a request. An upstream
    /// that closed it (or wrote to it, which it must not) makes it readable;
    /// asking the reactor costs no system call in the common case.
    pub fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_mut().0,
        };
        match tcp.poll_read_ready(&mut cx) {
            Poll::Pending => return true,
            Poll::Ready(Err(_)) => return false,
            Poll::Ready(Ok(())) => {}
        }
        match self {
            Stream::Plain(tcp) => {
                let mut byte = [0u8; 1];
                matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            // A TLS 1.3 server sends session tickets after the handshake, so
            // readable is normal here: reading consumes them and stays
            // pending. Data, close_notify or EOF means the connection is done.
            Stream::Tls(tls) => {
                let mut byte = [0u8; 1];
                let mut buf = ReadBuf::new(&mut byte);
                matches!(
                    Pin::new(&mut **tls).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
