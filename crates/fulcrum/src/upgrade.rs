//! Seamless binary upgrade: a new fulcrum process takes over the listening
//! sockets of the running one, starts serving on them, then tells the old
//! one to drain and exit. The sockets are never closed, so a connection
//! that arrives during the hand-over waits in the same accept queue and is
//! accepted by one process or the other: none is refused. This is
//! HAProxy's seamless reload (`expose-fd listeners`, `-x`) and the idea of
//! Envoy's hot restart, over a Unix socket at `runtime.upgrade_socket`.
//!
//! The exchange, on one connection:
//!
//! 1. successor -> running: `TAKEOVER\n`
//! 2. running -> successor: a 4-byte big-endian length and that much JSON
//!    describing the sockets (listener name, configured address, protocol),
//!    with the sockets themselves attached in the same order (SCM_RIGHTS)
//! 3. the successor serves, then sends `READY\n`
//! 4. the running process drains (no `shutdown_delay`: the successor is
//!    already accepting on the same sockets) and exits.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use serde::{Deserialize, Serialize};

use crate::listener::BoundSocket;

/// The most file descriptors one message may carry (Linux's SCM_MAX_FD).
const MAX_SOCKETS: usize = 253;
/// Bounds each step of the exchange, so a stuck peer cannot hang a process.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A listening socket handed from one process to the next.
pub struct Inherited {
    pub listener: String,
    /// The address as the config names it (the port may be 0).
    pub configured: SocketAddr,
    pub socket: BoundSocket,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    listener: String,
    configured: SocketAddr,
    udp: bool,
}

/// The running process's side, after the sockets went over: tell it to go.
pub struct Predecessor {
    stream: UnixStream,
}

impl Predecessor {
    /// We serve: the predecessor may stop accepting and drain.
    pub fn ready(mut self) -> std::io::Result<()> {
        self.stream.write_all(b"READY\n")
    }
}

/// Successor side: asks the process listening at `path` for its sockets.
pub fn take_over(path: &Path) -> anyhow::Result<(Vec<Inherited>, Predecessor)> {
    let mut stream = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach a running fulcrum at {} (runtime.upgrade_socket); is it running with this config?",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.write_all(b"TAKEOVER\n")?;
    let mut head = [0u8; 4];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut head)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if received.bytes < head.len() {
        stream.read_exact(&mut head[received.bytes..])?;
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let mut json = vec![0u8; u32::from_be_bytes(head) as usize];
    stream.read_exact(&mut json)?;
    let entries: Vec<Entry> = serde_json::from_slice(&json)
        .context("the running fulcrum sent an unreadable socket list")?;
    if entries.len() != fds.len() {
        bail!(
            "the running fulcrum described {} sockets but sent {}",
            entries.len(),
            fds.len()
        );
    }
    let inherited = entries
        .into_iter()
        .zip(fds)
        .map(|(e, fd)| Inherited {
            listener: e.listener,
            configured: e.configured,
            socket: if e.udp {
                BoundSocket::Datagram(std::net::UdpSocket::from(fd))
            } else {
                BoundSocket::Stream(std::net::TcpListener::from(fd))
            },
        })
        .collect();
    Ok((inherited, Predecessor { stream }))
}

/// One socket the running process can hand over.
pub struct Offered {
    pub listener: String,
    pub configured: SocketAddr,
    pub socket: BoundSocket,
}

/// Running side: listens at `path` (replacing what is there: a predecessor's
/// socket file) for a successor. `offer` lists the sockets to hand over when
/// one asks; `on_ready` runs when it says it serves. Runs on its own thread.
pub fn listen(
    path: &Path,
    offer: impl Fn() -> Vec<Offered> + Send + 'static,
    on_ready: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on runtime.upgrade_socket {}", path.display()))?;
    std::thread::Builder::new()
        .name("fulcrum-upgrade".into())
        .spawn(move || {
            let mut on_ready = Some(on_ready);
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match hand_over(stream, &offer) {
                    Ok(()) => {
                        tracing::info!("binary upgrade: the successor serves on our sockets; draining");
                        if let Some(f) = on_ready.take() {
                            f();
                        }
                        return;
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "binary upgrade: hand-over failed; still serving"),
                }
            }
        })?;
    Ok(())
}

fn hand_over(stream: UnixStream, offer: &dyn Fn() -> Vec<Offered>) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line != "TAKEOVER\n" {
        bail!("unexpected request {line:?}");
    }
    let offered = offer();
    if offered.len() > MAX_SOCKETS {
        bail!(
            "{} listening sockets is more than one message can carry ({MAX_SOCKETS})",
            offered.len()
        );
    }
    let entries: Vec<Entry> = offered
        .iter()
        .map(|o| Entry {
            listener: o.listener.clone(),
            configured: o.configured,
            udp: o.socket.is_datagram(),
        })
        .collect();
    let json = serde_json::to_vec(&entries)?;
    let len = u32::try_from(json.len())?.to_be_bytes();
    let fds: Vec<_> = offered.iter().map(|o| o.socket.as_fd()).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        bail!("cannot attach {} sockets to the message", fds.len());
    }
    let sent = sendmsg(
        &stream,
        &[IoSlice::new(&len)],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent < len.len() {
        (&stream).write_all(&len[sent..])?;
    }
    (&stream).write_all(&json)?;
    line.clear();
    reader.read_line(&mut line)?;
    if line != "READY\n" {
        bail!("the successor did not get ready ({line:?})");
    }
    Ok(())
}
