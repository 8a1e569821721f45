//! Reading the ClientHello of a `tls_passthrough` flow without consuming it:
//! the bytes read are kept and forwarded untouched, first thing, to the
//! endpoint. The parser (`fulcrum_wire::client_hello`) is pure; this is the
//! read loop around it. The caller bounds it with `inspect_timeout`.

use fulcrum_wire::client_hello::{self, ClientHello};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::Refusal;

/// Reads until `buf` (which may already hold bytes read after a PROXY
/// header) contains a whole ClientHello.
pub async fn read_client_hello(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<ClientHello, Refusal> {
    loop {
        match client_hello::parse(buf) {
            Ok(Some(hello)) => return Ok(hello),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "not a usable TLS ClientHello");
                return Err(Refusal::NotTls);
            }
        }
        // The parser refuses anything over its limits before the buffer
        // grows past them, so this stays bounded.
        buf.reserve(4096);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(Refusal::ClientClosed),
            Ok(_) => {}
        }
    }
}
