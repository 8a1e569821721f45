//! Downstream HTTP connections: HTTP/1.1 with keep-alive and cleartext HTTP/2
//! (prior knowledge) on the same port, told apart by the connection preface
//! (hyper-util's auto builder). Each connection closes gracefully on drain or
//! after `idle_timeout` with no request in flight.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::activity::Activity;
use super::proxy::{self, ConnContext};
use super::streams::{StreamExecutor, Streams};
use crate::l4::Refusal;
use crate::limit::Permit;
use crate::listener::proxy_protocol::{Prefixed, is_trusted, read_header};
use crate::snapshot::{ListenerHandle, ListenerState};
use crate::telemetry::metrics::{GaugeGuard, Metrics};
use crate::tls::early::HandshakeState;

/// How long a drain waits for a new connection's first request (see
/// `serve_http`).
const FIRST_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// One connection's protocol settings; HTTP/2 streams run on `streams`, the
/// connection's own executor.
fn connection_builder(
    listener: &ListenerState,
    streams: StreamExecutor,
) -> auto::Builder<StreamExecutor> {
    let limits = &listener.config.limits;
    let mut builder = auto::Builder::new(streams);
    // hyper starts this timer whenever it waits for a request head, so on
    // HTTP/1.1 it also bounds how long a keep-alive connection may sit idle.
    // A head that outgrows the read buffer, or has more fields than
    // allowed, is answered 431 by hyper (docs/limits.md).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listener.config.request_header_timeout)
        .max_buf_size(limits.max_request_header_size as usize)
        .max_headers(limits.max_request_headers as usize)
        .keep_alive(true);
    // RFC 8441: lets HTTP/2 clients open WebSockets with extended CONNECT.
    // Rapid reset, CONTINUATION, PING and SETTINGS floods are bounded by
    // the h2 crate's own limits (docs/limits.md).
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_header_list_size(limits.max_request_header_size)
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    builder
}

/// What every connection of one listener on one worker shares.
#[derive(Clone)]
pub struct Acceptor {
    pub handle: Arc<ListenerHandle>,
    pub worker: usize,
    pub metrics: Arc<Metrics>,
    /// Tracks every connection task so a drain can wait for them.
    pub connections: TaskTracker,
}

/// Accepts connections until the listener stops (removed by a reload, or
/// shutdown). Each connection takes the listener's settings as they are
/// when it is accepted.
pub async fn accept_loop(listener: TcpListener, acceptor: Acceptor) {
    loop {
        tokio::select! {
            _ = acceptor.handle.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, acceptor.handle.state(), &acceptor),
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = %acceptor.handle.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Admission (listener `max_connections`, PROXY protocol trust), then serve.
fn admit(stream: TcpStream, peer: SocketAddr, state: Arc<ListenerState>, acceptor: &Acceptor) {
    let Some(permit) = state.connections.try_acquire() else {
        state.metrics.refused(Refusal::MaxConnections.reason());
        tracing::debug!(listener = %state.config.name, %peer, "refused: max_connections reached");
        return;
    };
    let trusted = &state.config.accept_proxy_protocol_from;
    if trusted.is_empty() {
        return serve(stream, peer, Vec::new(), permit, state, acceptor);
    }
    if !is_trusted(trusted, peer) {
        state.metrics.refused(Refusal::UntrustedSource.reason());
        tracing::debug!(listener = %state.config.name, %peer, "refused: not in accept_proxy_protocol_from");
        return;
    }
    // The header is read in the connection's own task, never in the accept loop.
    let acceptor = acceptor.clone();
    let tasks = acceptor.connections.clone();
    tasks.spawn(async move {
        let mut stream = stream;
        let Ok(local) = stream.local_addr() else { return };
        let read = tokio::time::timeout(
            state.config.inspect_timeout,
            read_header(&mut stream, peer, local),
        )
        .await;
        match read {
            Ok(Ok((addrs, rest))) => serve(stream, addrs.source, rest, permit, state, &acceptor),
            Ok(Err(e)) => {
                state.metrics.refused(Refusal::BadProxyHeader.reason());
                tracing::debug!(listener = %state.config.name, %peer, error = %e, "PROXY header refused");
            }
            Err(_) => {
                state.metrics.refused(Refusal::InspectTimeout.reason());
                tracing::debug!(listener = %state.config.name, %peer, "no PROXY header within inspect_timeout");
            }
        }
    });
}

/// Serves HTTP on `stream` (after the TLS handshake on a TLS listener);
/// `client` is the peer, or the client a trusted PROXY header named, and
/// `read_ahead` the bytes that came with that header.
fn serve(
    stream: TcpStream,
    client: SocketAddr,
    read_ahead: Vec<u8>,
    permit: Permit,
    state: Arc<ListenerState>,
    acceptor: &Acceptor,
) {
    let _ = stream.set_nodelay(true);
    let metrics = &state.metrics;
    metrics.connections.inc();
    let open = GaugeGuard::new(&metrics.active_connections);
    let acceptor = acceptor.clone();
    let tasks = acceptor.connections.clone();
    tasks.spawn(async move {
        let _permit = permit;
        let io = Prefixed::new(read_ahead, stream);
        match &state.tls {
            None => serve_http(io, client, None, &state, &acceptor).await,
            Some(tls) => match tls.accept(io).await {
                Ok(mut tls_stream) => {
                    let client_cert = tls_stream
                        .connection()
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(crate::tls::client_auth::forwarded_value);
                    let early_data = tls_stream.early_data();
                    let info = TlsInfo {
                        client_cert,
                        early_data,
                    };
                    serve_http(tls_stream, client, Some(info), &state, &acceptor).await
                }
                Err(reason) => {
                    tracing::debug!(listener = %state.config.name, peer = %client, reason, "TLS handshake failed");
                }
            },
        }
        drop(open);
    });
}

/// What a TLS handshake established for a connection.
struct TlsInfo {
    /// The verified client certificate as an XFCC value (mTLS listeners).
    client_cert: Option<http::HeaderValue>,
    /// Set when the client's 0-RTT data was accepted.
    early_data: Option<Arc<HandshakeState>>,
}

/// One HTTP connection until it ends, drains or idles out.
async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    state: &Arc<ListenerState>,
    acceptor: &Acceptor,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let (mut streams, executor) = Streams::new();
    let cx = Arc::new(ConnContext {
        listener: state.clone(),
        handle: acceptor.handle.clone(),
        worker: acceptor.worker,
        metrics: acceptor.metrics.clone(),
        peer,
        client_ip: crate::http::headers::client_ip_value(peer.ip()),
        tls: tls.is_some(),
        early_data: tls.as_ref().and_then(|t| t.early_data.clone()),
        client_cert: tls.and_then(|t| t.client_cert),
        client_cert_header: state.tls.as_ref().map_or_else(
            || http::HeaderName::from_static(crate::config::defaults::CLIENT_CERT_HEADER),
            |t| t.client_cert_header().clone(),
        ),
        hsts: state.tls.as_ref().and_then(|t| t.hsts().cloned()),
        activity: activity.clone(),
        streams: executor.clone(),
    });
    let idle_timeout = state.config.idle_timeout;
    // `handle` returns its future boxed: hyper moves the service future
    // several times on its way into the stream it drives, and a 16-byte box
    // moves instead (memmove was 10 % of CPU on h2c before; 20.8 -> 17.3 us
    // per request).
    let service = service_fn(move |req| proxy::handle(cx.clone(), req));
    let builder = connection_builder(state, executor);
    // Boxed (not pinned on the stack) so it can be dropped before the
    // remaining streams are finished. With upgrades: an HTTP/1.1 connection
    // whose request got a 101 is handed to its WebSocket tunnel, which then
    // runs among `streams`.
    let mut conn = Box::pin(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    let idle = activity.idle(idle_timeout);
    let drain = acceptor.handle.stop.cancelled();
    tokio::pin!(idle, drain);
    // A drain that finds the connection before its first request waits a
    // little for it: the client may have sent it already (a connection
    // accepted as a drain or an upgrade begins), and closing with it unread
    // would reset the connection instead of answering.
    let mut first_request_grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut closing = false;
    let result = std::future::poll_fn(|cx| {
        // Streams first, so the frames they queue go out in this same poll
        // of the connection; again when that poll started new streams, so a
        // request that can be answered at once does not wait for a wake-up.
        for _ in 0..4 {
            streams.poll_progress(cx);
            if !closing {
                if first_request_grace.is_none() && drain.as_mut().poll(cx).is_ready() {
                    first_request_grace = Some(Box::pin(tokio::time::sleep(FIRST_REQUEST_GRACE)));
                }
                let drain_now = match first_request_grace.as_mut() {
                    Some(grace) => activity.started_any() || grace.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                let why = if drain_now {
                    Some("drain")
                } else if idle.as_mut().poll(cx).is_ready() {
                    Some("idle timeout")
                } else {
                    None
                };
                if let Some(why) = why {
                    tracing::debug!(%peer, why, "closing downstream connection gracefully");
                    // HTTP/1.1: finish the request in flight, then close;
                    // HTTP/2: GOAWAY, finish open streams.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            // Again if that poll started the first request a drain waits for.
            let drain_waits = !closing && first_request_grace.is_some() && activity.started_any();
            if !streams.has_new() && !drain_waits {
                break;
            }
        }
        Poll::Pending
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "downstream connection ended with an error");
    }
    // Dropping the connection tells its remaining streams it is gone.
    drop(conn);
    streams.finish().await;
}
