//! Copying an L4 flow both ways until both sides are done.
//!
//! Each direction runs until its source reaches EOF, then half-closes the
//! other side (`shutdown(SHUT_WR)`), so a client that sends a request and its
//! FIN still gets the whole response. An error on either side (a reset) ends
//! both directions and resets the other side too, so neither peer waits on a
//! flow that is gone. A flow with no byte either way for `idle_timeout` is
//! closed.
//!
//! On Linux bytes move with `splice(2)` through a pipe per direction; a
//! buffered copy is the fallback (other systems, or no descriptors left for
//! pipes).

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Counters one direction adds its bytes to (the listener's and the endpoint's).
pub type ByteCounters<'a> = [&'a Counter; 2];

/// How a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides sent FIN.
    Closed,
    /// A read or write failed (usually a reset); both sides were closed.
    Error,
    /// No byte moved for `idle_timeout`.
    IdleTimeout,
}

/// Bytes moved each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    pub to_upstream: u64,
    pub to_client: u64,
}

/// Copies `client` <-> `upstream` until both directions end, one errors, or
/// the flow idles out.
pub async fn bidirectional(
    client: &TcpStream,
    upstream: &TcpStream,
    idle_timeout: Duration,
    to_upstream: ByteCounters<'_>,
    to_client: ByteCounters<'_>,
) -> (Outcome, Transferred) {
    let last_activity = AtomicU64::new(crate::clock::now_ns());
    let up_bytes = AtomicU64::new(0);
    let down_bytes = AtomicU64::new(0);
    let both = async {
        tokio::try_join!(
            one_way(client, upstream, to_upstream, &last_activity, &up_bytes),
            one_way(upstream, client, to_client, &last_activity, &down_bytes),
        )
    };
    let outcome = until_done(both, &last_activity, idle_timeout, || {
        reset(client);
        reset(upstream);
    })
    .await;
    (outcome, Transferred::from(&up_bytes, &down_bytes))
}

/// Runs both directions of a flow until both end, one fails (then
/// `on_error` runs), or nothing moves for `idle_timeout`.
async fn until_done<F: Future<Output = io::Result<((), ())>>>(
    both: F,
    last_activity: &AtomicU64,
    idle_timeout: Duration,
    on_error: impl FnOnce(),
) -> Outcome {
    tokio::select! {
        result = both => match result {
            Ok(_) => Outcome::Closed,
            Err(e) => {
                tracing::debug!(error = %e, "flow ended with an error; closing both sides");
                on_error();
                Outcome::Error
            }
        },
        () = super::idle(last_activity, idle_timeout) => Outcome::IdleTimeout,
    }
}

impl Transferred {
    fn from(to_upstream: &AtomicU64, to_client: &AtomicU64) -> Self {
        Self {
            to_upstream: to_upstream.load(Ordering::Relaxed),
            to_client: to_client.load(Ordering::Relaxed),
        }
    }
}

/// Per direction of a [`tunnel`]: WebSocket messages are small, and TLS
/// records carry at most 16 KiB, so a bigger buffer would mostly sit empty.
const TUNNEL_BUFFER: usize = 16 * 1024;

/// Copies between two byte streams of any kind (an upgraded HTTP
/// connection, TLS on either side) by the rules of [`bidirectional`]: each
/// direction half-closes the other side at EOF, an error ends both, and no
/// byte either way for `idle_timeout` ends the tunnel. Buffered, because
/// splice needs plain sockets on both ends.
pub async fn tunnel<A, B>(client: A, upstream: B, idle_timeout: Duration) -> (Outcome, Transferred)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last_activity = AtomicU64::new(crate::clock::now_ns());
    let up_bytes = AtomicU64::new(0);
    let down_bytes = AtomicU64::new(0);
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let both = async {
        tokio::try_join!(
            stream_one_way(client_read, upstream_write, &last_activity, &up_bytes),
            stream_one_way(upstream_read, client_write, &last_activity, &down_bytes),
        )
    };
    // On an error both streams close when this returns and drops them.
    let outcome = until_done(both, &last_activity, idle_timeout, || {}).await;
    (outcome, Transferred::from(&up_bytes, &down_bytes))
}

async fn stream_one_way<R, W>(
    mut src: R,
    mut dst: W,
    last_activity: &AtomicU64,
    total: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; TUNNEL_BUFFER];
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            // Half-close; the peer may already be gone, which is no error.
            let _ = dst.shutdown().await;
            return Ok(());
        }
        dst.write_all(buf.get(..n).unwrap_or_default()).await?;
        dst.flush().await?;
        count(n, [], last_activity, total);
    }
}

/// Writes all of `buf` to `stream` (bytes read ahead of the flow: the
/// ClientHello, payload after a PROXY header, a PROXY header of our own).
pub async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes with RST instead of FIN: the peer learns the flow broke.
fn reset(stream: &TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let _ = socket.set_linger(Some(Duration::ZERO));
    let _ = socket.shutdown(Shutdown::Both);
}

fn half_close(stream: &TcpStream) {
    // ENOTCONN when the peer already reset: nothing left to tell it.
    let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Write);
}

fn count<const N: usize>(
    n: usize,
    counters: [&Counter; N],
    last_activity: &AtomicU64,
    total: &AtomicU64,
) {
    let n = n as u64;
    for c in counters {
        c.inc_by(n);
    }
    total.fetch_add(n, Ordering::Relaxed);
    last_activity.store(crate::clock::now_ns(), Ordering::Relaxed);
}

async fn one_way(
    src: &TcpStream,
    dst: &TcpStream,
    counters: ByteCounters<'_>,
    last_activity: &AtomicU64,
    total: &AtomicU64,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    match super::splice::Pipe::take() {
        Ok(pipe) => {
            let result = splice_one_way(&pipe, src, dst, counters, last_activity, total).await;
            // A clean EOF leaves the pipe empty; after an error it may hold
            // bytes, so it is closed instead (dropping the future midway,
            // when the other direction fails, closes it too).
            if result.is_ok() {
                pipe.recycle();
            }
            return result;
        }
        Err(e) => tracing::debug!(error = %e, "no pipe for splice; copying through a buffer"),
    }
    buffered_one_way(src, dst, counters, last_activity, total).await
}

#[cfg(target_os = "linux")]
async fn splice_one_way(
    pipe: &super::splice::Pipe,
    src: &TcpStream,
    dst: &TcpStream,
    counters: ByteCounters<'_>,
    last_activity: &AtomicU64,
    total: &AtomicU64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // The pipe is empty here, so EAGAIN can only mean "no data on src".
        let n = loop {
            src.readable().await?;
            match src.try_io(Interest::READABLE, || pipe.fill_from(src.as_raw_fd())) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            half_close(dst);
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || pipe.drain_to(dst.as_raw_fd(), left)) {
                Ok(m) => left = left.saturating_sub(m),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        count(n, counters, last_activity, total);
    }
}

/// 64 KiB: DESIGN.md measured 8 KiB buffers at 1.41x HAProxy's CPU per GB
/// and 64 KiB at about half that.
const BUFFER: usize = 64 * 1024;

async fn buffered_one_way(
    src: &TcpStream,
    dst: &TcpStream,
    counters: ByteCounters<'_>,
    last_activity: &AtomicU64,
    total: &AtomicU64,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        src.readable().await?;
        let n = match src.try_read(&mut buf) {
            Ok(0) => {
                half_close(dst);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        write_all(dst, buf.get(..n).unwrap_or_default()).await?;
        count(n, counters, last_activity, total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// client <-> [proxy_client | proxy_upstream] <-> server, through `bidirectional`.
    #[tokio::test]
    async fn half_close_carries_the_response_back() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_upstream, mut server) = pair().await;
        let c = [&Counter::default(), &Counter::default()];
        let d = [&Counter::default(), &Counter::default()];
        let proxy = async {
            bidirectional(
                &proxy_client,
                &proxy_upstream,
                Duration::from_secs(30),
                c,
                d,
            )
            .await
        };
        let peers = async {
            client.write_all(b"request").await.unwrap();
            client.shutdown().await.unwrap(); // FIN
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap(); // sees the FIN
            assert_eq!(got, b"request");
            server
                .write_all(b"response after the client's FIN")
                .await
                .unwrap();
            drop(server);
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"response after the client's FIN");
        };
        let ((outcome, moved), ()) = tokio::join!(proxy, peers);
        assert_eq!(outcome, Outcome::Closed);
        assert_eq!(moved.to_upstream, 7);
        assert_eq!(moved.to_client, 31);
        assert_eq!(c[0].get(), 7);
    }

    #[tokio::test]
    async fn buffered_fallback_copies_and_half_closes() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_upstream, mut server) = pair().await;
        let counter = Counter::default();
        let last = AtomicU64::new(0);
        let total = AtomicU64::new(0);
        let copy = buffered_one_way(
            &proxy_client,
            &proxy_upstream,
            [&counter, &counter],
            &last,
            &total,
        );
        let peers = async {
            let payload = vec![7u8; 300_000];
            client.write_all(&payload).await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, payload);
        };
        let (result, ()) = tokio::join!(copy, peers);
        result.unwrap();
        assert_eq!(total.load(Ordering::Relaxed), 300_000);
        assert_eq!(counter.get(), 600_000);
    }
}
