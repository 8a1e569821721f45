//! Accepting the PROXY protocol (v1 and v2) from a trusted L4 tier in front,
//! so fulcrum sees the real client address, as HAProxy's `accept-proxy` does.
//! Only peers in the listener's `accept_proxy_protocol_from` may connect, and
//! they must send a header: anyone else could forge a client address.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use fulcrum_wire::proxy_protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Addresses of the flow as the PROXY header tells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowAddrs {
    /// The real client.
    pub source: SocketAddr,
    /// The address the client connected to (the VIP).
    pub destination: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("peer {0} is not in accept_proxy_protocol_from")]
    Untrusted(SocketAddr),
    #[error("bad PROXY protocol header: {0}")]
    Invalid(proxy_protocol::Error),
    #[error("connection closed before a complete PROXY header")]
    Closed,
}

/// Whether `peer` may send a PROXY header.
pub fn is_trusted(trusted: &[ipnet::IpNet], peer: SocketAddr) -> bool {
    let ip = peer.ip().to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// Reads the PROXY header at the start of `stream`. Returns the addresses it
/// names (the connection's own for LOCAL/UNKNOWN: a health check from the
/// L4 tier) and the payload bytes that arrived with it, which belong to the
/// flow. The caller bounds this with `inspect_timeout`.
pub async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<(FlowAddrs, Vec<u8>), ProxyHeaderError> {
    let mut buf = Vec::with_capacity(256);
    loop {
        match proxy_protocol::parse(&buf) {
            Ok(Some((header, consumed))) => {
                let addrs = match header.addresses {
                    Some((source, destination)) if !header.local => FlowAddrs {
                        source,
                        destination,
                    },
                    _ => FlowAddrs {
                        source: peer,
                        destination: local,
                    },
                };
                let rest = buf.get(consumed..).unwrap_or_default().to_vec();
                return Ok((addrs, rest));
            }
            Ok(None) => {}
            Err(e) => return Err(ProxyHeaderError::Invalid(e)),
        }
        // A v2 header announces its length in its first 16 bytes and the
        // parser rejects more than that, so the buffer stays bounded.
        buf.reserve(512);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(ProxyHeaderError::Closed),
            Ok(_) => {}
        }
    }
}

/// A stream with bytes already read from it put back in front: hands an HTTP
/// server the request bytes that arrived in the same segment as the PROXY
/// header.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.offset..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.offset += n;
            if this.offset == this.prefix.len() {
                this.prefix = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_is_by_network_and_sees_through_mapped_addresses() {
        let nets: Vec<ipnet::IpNet> =
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(is_trusted(&nets, "10.1.2.3:5".parse().unwrap()));
        assert!(is_trusted(&nets, "[::ffff:10.1.2.3]:5".parse().unwrap()));
        assert!(is_trusted(&nets, "[::1]:5".parse().unwrap()));
        assert!(!is_trusted(&nets, "11.0.0.1:5".parse().unwrap()));
        assert!(!is_trusted(&[], "10.0.0.1:5".parse().unwrap()));
    }

    #[tokio::test]
    async fn header_then_payload_over_a_real_socket() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut server, peer) = l.accept().await.unwrap();
        let local = server.local_addr().unwrap();
        let src: SocketAddr = "192.0.2.1:1234".parse().unwrap();
        let dst: SocketAddr = "198.51.100.2:443".parse().unwrap();
        let mut bytes = proxy_protocol::encode_v2(src, dst, proxy_protocol::Transport::Stream);
        bytes.extend_from_slice(b"hello");
        // Split mid-header: the reader must wait for the rest.
        client.write_all(&bytes[..10]).await.unwrap();
        let writer = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            client.write_all(&bytes[10..]).await.unwrap();
            client
        };
        let (result, _client) = tokio::join!(read_header(&mut server, peer, local), writer);
        let (addrs, rest) = result.unwrap();
        assert_eq!(
            addrs,
            FlowAddrs {
                source: src,
                destination: dst
            }
        );
        assert_eq!(rest, b"hello");
    }
}
