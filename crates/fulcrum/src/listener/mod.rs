//! Listening sockets. Each worker gets its own socket on the same address
//! (SO_REUSEPORT), so the kernel spreads new connections across workers with
//! no shared accept lock, as NGINX's `reuseport` and Envoy's workers do.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

pub mod proxy_protocol;

use socket2::{Domain, Protocol, Socket, Type};

/// NGINX's default backlog is 511, HAProxy's follows maxconn; the kernel caps
/// it at `net.core.somaxconn` anyway.
const BACKLOG: i32 = 1024;

/// Binds `count` sockets to `address`. When the port is 0, the first bind
/// picks a free port and the others join it.
pub fn bind_reuseport(address: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut sockets = Vec::with_capacity(count);
    let mut addr = address;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener: TcpListener = socket.into();
        addr = listener.local_addr()?;
        sockets.push(listener);
    }
    Ok(sockets)
}

/// A plain listener (admin server): one socket, no SO_REUSEPORT, so a second
/// process cannot silently share the admin port.
pub fn bind_single(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// A listening socket of either kind, one per worker per listener.
#[derive(Debug)]
pub enum BoundSocket {
    Stream(TcpListener),
    Datagram(UdpSocket),
}

impl BoundSocket {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            BoundSocket::Stream(s) => s.local_addr(),
            BoundSocket::Datagram(s) => s.local_addr(),
        }
    }

    /// Another descriptor for the same socket (dup): the socket stays open
    /// while either is, which is what lets a successor process take it over.
    pub fn try_clone(&self) -> io::Result<BoundSocket> {
        Ok(match self {
            BoundSocket::Stream(s) => BoundSocket::Stream(s.try_clone()?),
            BoundSocket::Datagram(s) => BoundSocket::Datagram(s.try_clone()?),
        })
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            BoundSocket::Stream(s) => s.as_fd(),
            BoundSocket::Datagram(s) => s.as_fd(),
        }
    }

    pub fn is_datagram(&self) -> bool {
        matches!(self, BoundSocket::Datagram(_))
    }
}

/// Binds `count` UDP sockets to `address` with SO_REUSEPORT: the kernel
/// hashes each client's datagrams to one of them, so a client's session
/// stays on one worker.
pub fn bind_reuseport_udp(address: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count);
    let mut addr = address;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let udp: UdpSocket = socket.into();
        addr = udp.local_addr()?;
        sockets.push(udp);
    }
    Ok(sockets)
}
