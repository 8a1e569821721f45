//! Upstream connection pools, one set per cluster per worker, so pools are
//! never shared across threads (no lock contention, like NGINX workers and
//! Envoy's per-worker pools). HTTP/1.1 clusters use fulcrum's own client
//! ([`h1`]: keep-alive pools, no task per connection); `protocol = "http2"`
//! clusters multiplex requests over h2c with hyper's client.

pub mod codec;
pub mod h1;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{ClusterConfig, UpstreamProtocol};
use crate::telemetry::metrics::{ClusterLabels, GaugeGuard, Metrics};

pub type Http2Client = Client<CountingConnector, Incoming>;

/// One cluster's upstream client on one worker.
#[derive(Debug, Clone)]
pub enum Upstream {
    Http1(Arc<h1::H1Pool>),
    Http2(Box<Http2Client>),
}

pub fn upstream_for(cluster: &ClusterConfig, metrics: &Metrics) -> Upstream {
    match cluster.protocol {
        UpstreamProtocol::Http1 => Upstream::Http1(Arc::new(h1::H1Pool::new(cluster, metrics))),
        UpstreamProtocol::Http2 => Upstream::Http2(Box::new(http2_client(cluster, metrics))),
    }
}

fn http2_client(cluster: &ClusterConfig, metrics: &Metrics) -> Http2Client {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cluster.connect_timeout));
    let labels = ClusterLabels {
        cluster: cluster.name.clone(),
    };
    let connector = CountingConnector {
        inner: http,
        active: metrics
            .upstream_active_connections
            .get_or_create(&labels)
            .clone(),
        opened: metrics.upstream_connections.get_or_create(&labels).clone(),
    };
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cluster.idle_timeout)
        .http2_only(true)
        .build(connector)
}

/// `HttpConnector` plus connection accounting: every connection it opens
/// holds a gauge guard until the pool drops it.
#[derive(Clone, Debug)]
pub struct CountingConnector {
    inner: HttpConnector,
    active: Gauge,
    opened: Counter,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for CountingConnector {
    type Response = TokioIo<CountedStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let active = self.active.clone();
        let opened = self.opened.clone();
        Box::pin(async move {
            let stream = connecting.await?.into_inner();
            opened.inc();
            Ok(TokioIo::new(CountedStream {
                stream,
                _open: GaugeGuard::new(&active),
            }))
        })
    }
}

/// A TCP stream counted in `fulcrum_upstream_active_connections` while it lives.
#[derive(Debug)]
pub struct CountedStream {
    stream: TcpStream,
    _open: GaugeGuard,
}

impl Connection for CountedStream {
    fn connected(&self) -> Connected {
        self.stream.connected()
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
