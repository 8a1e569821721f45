//! Upstream connection pools, per worker, so pools are never shared across
//! threads (no lock contention, like NGINX workers and Envoy's per-worker
//! pools). HTTP/1.1 clusters use fulcrum's own client ([`h1`]: keep-alive
//! connections kept by their endpoint, no task per connection);
//! `protocol = "http2"` clusters multiplex requests with hyper's client (h2c,
//! or h2 over TLS), one per cluster per worker.
//! Both connect through the cluster's [`Transport`] (TCP, or TLS over it).

pub mod codec;
pub mod h1;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::RequestBody;
use crate::cluster::transport::{ConnectError, Stream, Transport};
use crate::config::ClusterConfig;
use crate::telemetry::metrics::{ConnectionMetrics, GaugeGuard};

pub type Http2Client = Client<CountingConnector, RequestBody>;

/// One worker's pooled HTTP/2 client for a `protocol = "http2"` cluster.
pub fn http2_client(
    cluster: &ClusterConfig,
    transport: &Arc<Transport>,
    connections: &ConnectionMetrics,
) -> Http2Client {
    let connector = CountingConnector {
        transport: transport.clone(),
        active: connections.active.clone(),
        opened: connections.opened.clone(),
    };
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cluster.idle_timeout)
        .http2_only(true)
        .build(connector)
}

/// The cluster's [`Transport`] as a hyper connector, plus connection
/// accounting: every connection it opens holds a gauge guard until the pool
/// drops it. Request URIs carry the endpoint's `ip:port` as authority.
#[derive(Clone, Debug)]
pub struct CountingConnector {
    transport: Arc<Transport>,
    active: Gauge,
    opened: Counter,
}

impl tower_service::Service<Uri> for CountingConnector {
    type Response = TokioIo<CountedStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let transport = self.transport.clone();
        let active = self.active.clone();
        let opened = self.opened.clone();
        Box::pin(async move {
            let address: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| {
                    ConnectError::Tcp(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{uri} does not name an endpoint address"),
                    ))
                })?;
            let stream = transport.connect(address).await?;
            opened.inc();
            Ok(TokioIo::new(CountedStream {
                stream,
                _open: GaugeGuard::new(&active),
            }))
        })
    }
}

/// A connection counted in `fulcrum_upstream_active_connections` while it lives.
#[derive(Debug)]
pub struct CountedStream {
    stream: Stream,
    _open: GaugeGuard,
}

impl Connection for CountedStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.stream.is_h2() {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
