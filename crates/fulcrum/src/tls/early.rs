//! TLS 1.3 early data (0-RTT) for listeners that opt in (`early_data = true`).
//!
//! tokio-rustls hands out a server stream only once the whole handshake is
//! done, i.e. after the client's `Finished`, one round trip after its early
//! data: 0-RTT would save nothing. [`EarlyDataStream`] is handed to HTTP as
//! soon as the server's flight is out; reads serve the early data first while
//! the handshake completes underneath, and the server answers right away
//! (rustls "half-RTT" data).
//!
//! Until the client's `Finished` arrives, what came may be a replay of
//! another connection's first flight (RFC 8446 section 8). [`HandshakeState`]
//! tells the proxy, which forwards only safe methods, marked `Early-Data: 1`,
//! and answers 425 Too Early to the rest (RFC 8470). Once the handshake is
//! complete the connection is proven live, and requests on it are ordinary.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use rustls::{ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest early data accepted per connection: the usual 16 KiB (OpenSSL's
/// and NGINX's default), enough for request heads, not for uploads.
pub const MAX_EARLY_DATA: u32 = 16 * 1024;

/// Whether a connection's handshake is still waiting for the client's
/// `Finished`; shared with the requests served on it.
#[derive(Debug, Default)]
pub struct HandshakeState(AtomicBool);

impl HandshakeState {
    /// A request started now may have been replayed.
    pub fn incomplete(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A server-side TLS stream that serves 0-RTT data before the handshake ends.
pub struct EarlyDataStream<IO> {
    io: IO,
    conn: ServerConnection,
    state: Arc<HandshakeState>,
    /// The transport reached end of file.
    eof: bool,
    close_notify_sent: bool,
}

/// Runs the handshake until it is complete, or until the server's flight is
/// out with early data accepted.
pub async fn accept<IO>(config: Arc<ServerConfig>, io: IO) -> io::Result<EarlyDataStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = EarlyDataStream {
        io,
        conn,
        state: Arc::new(HandshakeState(AtomicBool::new(true))),
        eof: false,
        close_notify_sent: false,
    };
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

impl<IO> EarlyDataStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    pub fn handshake_state(&self) -> Arc<HandshakeState> {
        self.state.clone()
    }

    /// Whether the client's early data was accepted on this connection.
    pub fn early_data_accepted(&mut self) -> bool {
        self.conn.early_data().is_some()
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_write_tls(cx))?;
            // (`poll_read_tls` marks the state when the handshake completes.)
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            // Accepted while processing the ClientHello, whose answer was
            // just flushed: the rest of the handshake runs under the reads.
            if self.conn.early_data().is_some() {
                return Poll::Ready(Ok(()));
            }
            if ready!(self.poll_read_tls(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Writes out the TLS records rustls has queued.
    fn poll_write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut io = SyncIo {
                io: &mut self.io,
                cx,
            };
            match self.conn.write_tls(&mut io) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads TLS records from the transport and processes them; 0 at end of file.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut self.io,
            cx,
        };
        let n = match self.conn.read_tls(&mut io) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if n == 0 {
            self.eof = true;
        }
        if let Err(e) = self.conn.process_new_packets() {
            // Best effort: tell the peer why (the alert is queued).
            let _ = self.poll_write_tls(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        if !self.conn.is_handshaking() {
            self.state.0.store(false, Ordering::Release);
        }
        Poll::Ready(Ok(n))
    }
}

impl<IO> AsyncRead for EarlyDataStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Early data precedes everything the client sends after the handshake.
            if let Some(mut early) = this.conn.early_data() {
                let n = early.read(buf.initialize_unfilled())?;
                if n > 0 {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
            }
            match this.conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    // 0: the client sent close_notify.
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.eof {
                // Closed without close_notify after all data was read.
                return Poll::Ready(Ok(()));
            }
            // Handshake records (and alerts) must go out for the client to go on.
            if let Poll::Ready(Err(e)) = this.poll_write_tls(cx) {
                return Poll::Ready(Err(e));
            }
            ready!(this.poll_read_tls(cx))?;
        }
    }
}

impl<IO> AsyncWrite for EarlyDataStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Twice at most: a full buffer is flushed once, then takes the data.
        for _ in 0..2 {
            let n = this.conn.writer().write(buf)?;
            let flushed = this.poll_write_tls(cx);
            if n > 0 || buf.is_empty() {
                if let Poll::Ready(Err(e)) = flushed {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(n));
            }
            ready!(flushed)?;
        }
        Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.writer().flush()?;
        ready!(this.poll_write_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_sent {
            this.conn.send_close_notify();
            this.close_notify_sent = true;
        }
        ready!(this.poll_write_tls(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// The transport seen through `std::io`, as rustls wants it: not ready is
/// `WouldBlock`, and the task is woken when it becomes ready.
struct SyncIo<'a, 'b, IO> {
    io: &'a mut IO,
    cx: &'a mut Context<'b>,
}

impl<IO: AsyncRead + Unpin> Read for SyncIo<'_, '_, IO> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<IO: AsyncWrite + Unpin> Write for SyncIo<'_, '_, IO> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}
