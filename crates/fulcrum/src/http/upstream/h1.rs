//! The HTTP/1.1 upstream client: per-worker keep-alive pools, and requests
//! written and responses read by the request's own task.
//!
//! Why hand-written rather than hyper-util's pooled client: that client runs
//! a task per upstream connection and hands every request and response across
//! channels between it and the request's task. Profiling the h2c benchmark
//! put that hand-off (task wake-ups, channel and pool bookkeeping) at about a
//! fifth of fulcrum's CPU per request; here a bodiless request is one write
//! and one read on a pooled socket, from the task that already holds the
//! downstream stream. Message syntax lives in `codec.rs`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, Method, Response, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::io::poll_read_buf;

use super::codec::{
    self, BodyFraming, Chunk, ChunkedDecoder, CodecError, RequestFraming, ResponseHead,
};
use crate::cluster::pool::{Conn, Open};
use crate::cluster::transport::{ConnectError, Stream};
use crate::cluster::{Cluster, Endpoint};
use crate::http::body::{ClientBody, ClientBodyError};
use crate::http::headers::remove_forbidden_trailers;
use crate::telemetry::metrics::GaugeGuard;

/// First read buffer for a response: a typical head and small body fit.
const HEAD_BUFFER: usize = 8 * 1024;
/// Largest single read of a response body.
const MAX_READ: usize = 64 * 1024;

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Connect(ConnectError),
    #[error("{0}")]
    Io(io::Error),
    #[error("connection closed before the response was complete")]
    Closed,
    #[error("invalid response: {0}")]
    Protocol(#[from] CodecError),
    /// The client's body failed (stalled past `request_body_timeout`, or
    /// the client went away) before the response head arrived.
    #[error("{0}")]
    ClientBody(ClientBodyError),
    /// A new connection was needed, but a circuit breaker is at its limit
    /// (`max_connections` or `max_pending_requests`).
    #[error("circuit breaker {breaker} at its limit {limit}")]
    Overflow { breaker: &'static str, limit: u32 },
}

/// Where a response's connection goes back when its body ends: this
/// worker's list of warm connections to the endpoint it came from.
#[derive(Debug)]
struct Home {
    endpoint: Arc<Endpoint>,
    worker: usize,
    idle_timeout: Duration,
}

/// This worker's most recent warm connection to `endpoint` made with the
/// cluster's current transport, if any.
fn checkout(cluster: &Cluster, endpoint: &Endpoint, worker: usize) -> Option<Conn> {
    endpoint
        .idle
        .checkout(worker, cluster.transport.id(), cluster.config.idle_timeout)
}

/// A new connection, within the cluster's `max_connections` and
/// `max_pending_requests` circuit breakers.
async fn connect(cluster: &Cluster, endpoint: &Endpoint) -> Result<Conn, UpstreamError> {
    let limits = &cluster.config.circuit_breakers;
    if cluster.connections.active.get() >= i64::from(limits.max_connections) {
        return Err(UpstreamError::Overflow {
            breaker: "max_connections",
            limit: limits.max_connections,
        });
    }
    let pending = Pending::enter(&endpoint.cluster_load().pending);
    if pending.ahead >= u64::from(limits.max_pending_requests) {
        return Err(UpstreamError::Overflow {
            breaker: "max_pending_requests",
            limit: limits.max_pending_requests,
        });
    }
    let connected = cluster.transport.connect(endpoint.address).await;
    drop(pending);
    let stream = connected.map_err(UpstreamError::Connect)?;
    cluster.connections.opened.inc();
    Ok(Conn {
        stream,
        open: Open::new(
            GaugeGuard::new(&cluster.connections.active),
            cluster.transport.id(),
        ),
    })
}

/// One request waiting for a new connection, counted until dropped (also
/// when its future is, by a timeout).
struct Pending<'a> {
    count: &'a AtomicU64,
    /// How many were waiting before this one.
    ahead: u64,
}

impl<'a> Pending<'a> {
    fn enter(count: &'a AtomicU64) -> Self {
        let ahead = count.fetch_add(1, Ordering::Relaxed);
        Self { count, ahead }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request ready for the wire: its head already encoded, so the async
/// part holds a few words instead of the whole `http::Request` (see
/// "Moving futures" in docs/architecture.md).
pub struct Prepared {
    method: Method,
    head: Vec<u8>,
    /// Taken when the upload starts (a connection was made): from then on
    /// the request cannot be sent again.
    body: Option<ClientBody>,
    framing: RequestFraming,
    /// Also dropped from request trailers (only set when there is a body).
    client_cert_header: Option<HeaderName>,
}

impl Prepared {
    /// `parts` must already be rewritten for the upstream (hop-by-hop
    /// headers gone, `Host` and forwarding headers set).
    pub fn new(
        parts: http::request::Parts,
        body: ClientBody,
        client_cert_header: &HeaderName,
    ) -> Self {
        let framing = if body.is_end_stream() {
            RequestFraming::Empty
        } else {
            match body.size_hint().exact() {
                Some(0) => RequestFraming::Empty,
                Some(n) => RequestFraming::Length(n),
                None => RequestFraming::Chunked,
            }
        };
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = Vec::with_capacity(512);
        codec::encode_request_head(&mut head, &parts.method, target, &parts.headers, framing);
        Self {
            method: parts.method,
            head,
            body: Some(body),
            client_cert_header: (framing != RequestFraming::Empty)
                .then(|| client_cert_header.clone()),
            framing,
        }
    }

    /// Whether it can be sent (again): a bodiless request always can; one
    /// with a body until its upload began.
    pub fn replayable(&self) -> bool {
        self.framing == RequestFraming::Empty || self.body.is_some()
    }
}

impl Prepared {
    /// An opening handshake (`parts` rewritten for the upstream, with
    /// `Connection: upgrade` and `Upgrade`): never a body, whatever the
    /// client's framing said, since what follows the head is the new
    /// protocol's.
    pub fn upgrade(parts: http::request::Parts, body: ClientBody) -> Self {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = Vec::with_capacity(512);
        codec::encode_request_head(
            &mut head,
            &parts.method,
            target,
            &parts.headers,
            RequestFraming::Empty,
        );
        Self {
            method: parts.method,
            head,
            body: Some(body),
            framing: RequestFraming::Empty,
            client_cert_header: None,
        }
    }
}

/// Sends `req` to `endpoint` and returns once the response head has
/// arrived; the body streams from the returned response. `req` is left as
/// it was when no connection could be made (see `Prepared::replayable`).
pub async fn send(
    cluster: &Cluster,
    endpoint: &Arc<Endpoint>,
    worker: usize,
    req: &mut Prepared,
) -> Result<Response<H1Body>, UpstreamError> {
    let Prepared {
        method,
        head,
        body,
        framing,
        client_cert_header,
    } = req;
    let (method, framing) = (&*method, *framing);
    if framing == RequestFraming::Empty {
        // A pooled connection may have been closed by the upstream a moment
        // ago (the race every keep-alive pool has): when it fails before a
        // single response byte, the bodiless request is sent once more on a
        // new connection, as hyper and Envoy do.
        let reused = match checkout(cluster, endpoint, worker) {
            Some(conn) => match exchange(conn, head, method).await {
                Ok(done) => Some(done),
                Err(Failure::BeforeResponse(_)) => None,
                Err(Failure::After(e)) => return Err(e),
            },
            None => None,
        };
        let (conn, response, buf) = match reused {
            Some(done) => done,
            None => {
                let conn = connect(cluster, endpoint).await?;
                exchange(conn, head, method)
                    .await
                    .map_err(Failure::into_error)?
            }
        };
        return Ok(respond(
            home(cluster, endpoint, worker),
            Reader::Whole(conn),
            response,
            buf,
        ));
    }

    // With a body: a separate task uploads it while this one reads the
    // response, so an upstream that answers (or echoes) before the upload
    // ends never deadlocks against it.
    let conn = match checkout(cluster, endpoint, worker) {
        Some(conn) => conn,
        None => connect(cluster, endpoint).await?,
    };
    let Some(body) = body.take() else {
        return Err(UpstreamError::Closed);
    };
    let Conn { stream, open } = conn;
    let (mut read, write) = tokio::io::split(stream);
    let (client_failed, failed) = tokio::sync::oneshot::channel();
    let upload = Upload(tokio::spawn(upload(
        write,
        // The request cannot be sent again from here on (its body is gone).
        std::mem::take(head),
        body,
        framing,
        client_cert_header.take(),
        client_failed,
    )));
    let mut buf = BytesMut::with_capacity(HEAD_BUFFER);
    // The origin may wait for the whole body before it answers, so a body
    // the client stopped sending ends the exchange here, blamed on the
    // client; a failed write to the origin does not (its answer, a 413
    // say, may be on the way).
    let response = tokio::select! {
        head = read_head(&mut read, &mut buf, method, false) => {
            head.map_err(Failure::into_error)?
        }
        Ok(e) = failed => return Err(UpstreamError::ClientBody(e)),
    };
    Ok(respond(
        home(cluster, endpoint, worker),
        Reader::Split { read, upload, open },
        response,
        buf,
    ))
}

/// The origin's answer to a request that asked to switch protocols.
pub enum Upgrade {
    /// 101: the connection now carries the new protocol.
    Switched(Upgraded),
    /// Any other response: the origin refused, and this is an ordinary
    /// response (its connection is pooled afterwards if it may be).
    Refused(Response<H1Body>),
}

/// A connection the origin switched to another protocol (101). `read_ahead`
/// holds what it sent right after the 101 head (a first frame).
pub struct Upgraded {
    pub head: Response<()>,
    pub stream: Stream,
    pub read_ahead: BytesMut,
    /// Keeps the connection counted as open while the tunnel lives.
    pub open: Open,
}

/// Sends an upgrade request (`Connection: upgrade` and `Upgrade` already
/// in its head) on a new connection: a switched connection never returns
/// to the pool, so it is not taken from it either.
pub async fn upgrade(
    cluster: &Cluster,
    endpoint: &Arc<Endpoint>,
    worker: usize,
    req: &Prepared,
) -> Result<Upgrade, UpstreamError> {
    let Conn { mut stream, open } = connect(cluster, endpoint).await?;
    stream
        .write_all(&req.head)
        .await
        .map_err(UpstreamError::Io)?;
    stream.flush().await.map_err(UpstreamError::Io)?;
    let mut buf = BytesMut::with_capacity(HEAD_BUFFER);
    let head = read_head(&mut stream, &mut buf, &req.method, true)
        .await
        .map_err(Failure::into_error)?;
    if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
        let mut resp = Response::new(());
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        return Ok(Upgrade::Switched(Upgraded {
            head: resp,
            stream,
            read_ahead: buf,
            open,
        }));
    }
    let conn = Conn { stream, open };
    Ok(Upgrade::Refused(respond(
        home(cluster, endpoint, worker),
        Reader::Whole(conn),
        head,
        buf,
    )))
}

/// Whether a failed exchange may be retried: nothing of the response came.
enum Failure {
    BeforeResponse(UpstreamError),
    After(UpstreamError),
}

impl Failure {
    fn into_error(self) -> UpstreamError {
        match self {
            Failure::BeforeResponse(e) | Failure::After(e) => e,
        }
    }
}

async fn exchange(
    mut conn: Conn,
    head: &[u8],
    method: &Method,
) -> Result<(Conn, ResponseHead, BytesMut), Failure> {
    // Flushed: over TLS the bytes may still sit in the session's buffer.
    let written = match conn.stream.write_all(head).await {
        Ok(()) => conn.stream.flush().await,
        Err(e) => Err(e),
    };
    written.map_err(|e| Failure::BeforeResponse(UpstreamError::Io(e)))?;
    let mut buf = BytesMut::with_capacity(HEAD_BUFFER);
    let response = read_head(&mut conn.stream, &mut buf, method, false).await?;
    Ok((conn, response, buf))
}

/// Reads until a final (non-1xx) response head is parsed, or a 101 when
/// the request asked to `upgrade`; `buf` keeps what followed it.
async fn read_head<R: AsyncRead + Unpin>(
    read: &mut R,
    buf: &mut BytesMut,
    method: &Method,
    upgrade: bool,
) -> Result<ResponseHead, Failure> {
    use tokio::io::AsyncReadExt;
    let mut received = false;
    loop {
        while let Some(head) = codec::parse_response_head(buf, method)
            .map_err(|e| Failure::After(UpstreamError::Protocol(e)))?
        {
            if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
                if upgrade {
                    return Ok(head);
                }
                return Err(Failure::After(UpstreamError::Protocol(CodecError::Head(
                    "101 Switching Protocols to a request that asked for no upgrade".into(),
                ))));
            }
            if !head.status.is_informational() {
                return Ok(head);
            }
            // 100 Continue, 103 Early Hints: not forwarded (yet); wait for the final response.
        }
        let before = received;
        match read.read_buf(buf).await {
            Ok(0) if before || !buf.is_empty() => {
                return Err(Failure::After(UpstreamError::Closed));
            }
            Ok(0) => return Err(Failure::BeforeResponse(UpstreamError::Closed)),
            Ok(_) => received = true,
            Err(e) if before => return Err(Failure::After(UpstreamError::Io(e))),
            Err(e) => return Err(Failure::BeforeResponse(UpstreamError::Io(e))),
        }
    }
}

/// Writes the request head and streams the body with the chosen framing.
/// Returns the write half so the connection can be reused afterwards. A
/// failure of the client's body is also reported on `client_failed`.
async fn upload(
    mut write: WriteHalf<Stream>,
    head: Vec<u8>,
    mut body: ClientBody,
    framing: RequestFraming,
    client_cert_header: Option<HeaderName>,
    client_failed: tokio::sync::oneshot::Sender<ClientBodyError>,
) -> io::Result<WriteHalf<Stream>> {
    write.write_all(&head).await?;
    write.flush().await?;
    let chunked = framing == RequestFraming::Chunked;
    let mut scratch = Vec::new();
    let mut trailers: Option<HeaderMap> = None;
    let mut client_failed = Some(client_failed);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let error = io::Error::other(e.to_string());
                if let Some(tx) = client_failed.take() {
                    let _ = tx.send(e);
                }
                return Err(error);
            }
        };
        match frame.into_data() {
            Ok(data) if chunked => {
                scratch.clear();
                codec::encode_chunk(&mut scratch, &data);
                write.write_all(&scratch).await?;
                write.flush().await?;
            }
            Ok(data) => {
                write.write_all(&data).await?;
                write.flush().await?;
            }
            Err(frame) => {
                if let Ok(mut t) = frame.into_trailers() {
                    remove_forbidden_trailers(&mut t, client_cert_header.as_ref());
                    trailers = Some(t);
                }
            }
        }
    }
    if chunked {
        scratch.clear();
        codec::encode_last_chunk(&mut scratch, trailers.as_ref());
        write.write_all(&scratch).await?;
    }
    write.flush().await?;
    Ok(write)
}

/// The upload task; aborted if the exchange ends first (or is abandoned).
#[derive(Debug)]
struct Upload(JoinHandle<io::Result<WriteHalf<Stream>>>);

impl Drop for Upload {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Upload {
    /// The write half, if the upload has finished cleanly.
    fn finished(&mut self) -> Option<WriteHalf<Stream>> {
        if !self.0.is_finished() {
            return None;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut self.0).poll(&mut cx) {
            Poll::Ready(Ok(Ok(write))) => Some(write),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Reader {
    Whole(Conn),
    Split {
        read: ReadHalf<Stream>,
        upload: Upload,
        open: Open,
    },
}

impl Reader {
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        buf.reserve(want);
        match self {
            Reader::Whole(conn) => poll_read_buf(Pin::new(&mut conn.stream), cx, buf),
            Reader::Split { read, .. } => poll_read_buf(Pin::new(read), cx, buf),
        }
    }

    /// The whole connection back, if it can carry another request.
    fn into_reusable(self) -> Option<Conn> {
        match self {
            Reader::Whole(conn) => Some(conn),
            Reader::Split {
                read,
                mut upload,
                open,
            } => {
                let write = upload.finished()?;
                if !read.is_pair_of(&write) {
                    return None;
                }
                Some(Conn {
                    stream: read.unsplit(write),
                    open,
                })
            }
        }
    }
}

fn home(cluster: &Cluster, endpoint: &Arc<Endpoint>, worker: usize) -> Home {
    Home {
        endpoint: endpoint.clone(),
        worker,
        idle_timeout: cluster.config.idle_timeout,
    }
}

fn respond(home: Home, reader: Reader, head: ResponseHead, buf: BytesMut) -> Response<H1Body> {
    let framing = match head.framing {
        BodyFraming::None | BodyFraming::Length(0) => Framing::Done,
        BodyFraming::Length(n) => Framing::Length(n),
        BodyFraming::Chunked => Framing::Chunked(ChunkedDecoder::new()),
        BodyFraming::UntilClose => Framing::UntilClose,
    };
    let mut body = H1Body {
        reader: Some(reader),
        buf,
        framing,
        keep_alive: head.keep_alive,
        home,
    };
    if matches!(body.framing, Framing::Done) {
        body.release();
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = head.status;
    *resp.version_mut() = Version::HTTP_11;
    *resp.headers_mut() = head.headers;
    resp
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// A response body read straight from the upstream socket. When it ends
/// cleanly the connection goes back to the pool at once — before the
/// downstream has even seen the last frame — so the next request can use it.
#[derive(Debug)]
pub struct H1Body {
    reader: Option<Reader>,
    buf: BytesMut,
    framing: Framing,
    keep_alive: bool,
    home: Home,
}

impl H1Body {
    /// The body is complete: reuse the connection if nothing forbids it.
    fn release(&mut self) {
        self.framing = Framing::Done;
        let Some(reader) = self.reader.take() else {
            return;
        };
        // Bytes after the response mean the upstream does not follow the
        // protocol; such a connection is not reused.
        if self.keep_alive
            && self.buf.is_empty()
            && let Some(conn) = reader.into_reusable()
        {
            let home = &self.home;
            home.endpoint
                .idle
                .checkin(home.worker, conn, home.idle_timeout);
        }
    }

    /// Reads more into `buf`; `Ok(false)` at end of stream.
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<bool, UpstreamError>> {
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        match reader.poll_read_buf(cx, &mut self.buf, want) {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(UpstreamError::Io(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = &mut *self;
        loop {
            match &mut this.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(remaining) => {
                    if !this.buf.is_empty() {
                        let take = (*remaining).min(this.buf.len() as u64);
                        let data = this.buf.split_to(take as usize).freeze();
                        *remaining -= take;
                        if *remaining == 0 {
                            this.release();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let want = (*remaining).min(MAX_READ as u64) as usize;
                    match std::task::ready!(this.poll_fill(cx, want)) {
                        Ok(true) => {}
                        Ok(false) => {
                            return Poll::Ready(Some(Err(this.fail(UpstreamError::Closed))));
                        }
                        Err(e) => return Poll::Ready(Some(Err(this.fail(e)))),
                    }
                }
                Framing::Chunked(decoder) => match decoder.decode(&mut this.buf) {
                    Ok(Chunk::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Chunk::Trailers(trailers)) => {
                        this.release();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Chunk::End) => {
                        this.release();
                        return Poll::Ready(None);
                    }
                    Ok(Chunk::NeedMore) => match std::task::ready!(this.poll_fill(cx, MAX_READ)) {
                        Ok(true) => {}
                        Ok(false) => {
                            return Poll::Ready(Some(Err(this.fail(UpstreamError::Closed))));
                        }
                        Err(e) => return Poll::Ready(Some(Err(this.fail(e)))),
                    },
                    Err(e) => return Poll::Ready(Some(Err(this.fail(e.into())))),
                },
                Framing::UntilClose => {
                    if !this.buf.is_empty() {
                        let data = this.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match std::task::ready!(this.poll_fill(cx, MAX_READ)) {
                        Ok(true) => {}
                        Ok(false) => {
                            // The end of this body is the end of the connection.
                            this.framing = Framing::Done;
                            this.reader = None;
                            return Poll::Ready(None);
                        }
                        Err(e) => return Poll::Ready(Some(Err(this.fail(e)))),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl H1Body {
    /// A broken body: the connection is closed, never reused.
    fn fail(&mut self, e: UpstreamError) -> UpstreamError {
        self.framing = Framing::Done;
        self.reader = None;
        e
    }
}
