//! Raw-socket peers for conformance tests: a recording HTTP/1.1 origin that
//! parses strictly and keeps every request it received (and any bytes it
//! could not parse), and clients that write exactly the bytes a test gives
//! them, HTTP/1.1 and HTTP/2 (cleartext or over TLS), as an attacker would.
//! Blocking std sockets with read timeouts as hang guards, not timing
//! assertions.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a raw peer waits for bytes before it gives up (a hang guard).
const PATIENCE: Duration = Duration::from_secs(10);

/// One request as the recording origin parsed it.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Field names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }
}

#[derive(Default)]
struct Log {
    requests: Vec<Recorded>,
    /// Bytes that did not parse as an HTTP/1.1 request (an HTTP/2 preface,
    /// a smuggled fragment ...), one entry per connection that sent them.
    garbage: Vec<Vec<u8>>,
}

/// A real HTTP/1.1 origin on loopback that records what reached it and
/// answers every request with `response` (raw bytes, sent as they are).
pub struct RecordingOrigin {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    connections: Arc<AtomicUsize>,
}

pub const OK_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

impl RecordingOrigin {
    pub fn start() -> RecordingOrigin {
        Self::with_response(OK_RESPONSE)
    }

    pub fn with_response(response: &[u8]) -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let connections = Arc::new(AtomicUsize::new(0));
        let response = response.to_vec();
        let (log2, conns2) = (log.clone(), connections.clone());
        // Accepts until the test process ends; each connection has a thread.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                conns2.fetch_add(1, Ordering::SeqCst);
                let (log, response) = (log2.clone(), response.clone());
                std::thread::spawn(move || serve(stream, &log, &response));
            }
        });
        RecordingOrigin {
            addr,
            log,
            connections,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().requests.clone()
    }

    pub fn garbage(&self) -> Vec<Vec<u8>> {
        self.log.lock().unwrap().garbage.clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every target that reached the origin.
    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }

    /// Whether `needle` reached the origin in any form: a request target,
    /// a header value, a body, or unparsed bytes.
    pub fn saw(&self, needle: &str) -> bool {
        let log = self.log.lock().unwrap();
        let n = needle.as_bytes();
        let has = |hay: &[u8]| hay.windows(n.len()).any(|w| w == n);
        log.requests.iter().any(|r| {
            r.target.contains(needle)
                || r.headers.iter().any(|(_, v)| v.contains(needle))
                || has(&r.body)
        }) || log.garbage.iter().any(|g| has(g))
    }
}

fn serve(mut stream: TcpStream, log: &Mutex<Log>, response: &[u8]) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match parse_request(&buf) {
            Parsed::Complete(req, used) => {
                buf.drain(..used);
                log.lock().unwrap().requests.push(req);
                if stream.write_all(response).is_err() {
                    return;
                }
                continue;
            }
            Parsed::Invalid => {
                log.lock().unwrap().garbage.push(buf);
                return;
            }
            Parsed::Partial => {}
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    log.lock().unwrap().garbage.push(buf);
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

enum Parsed {
    Complete(Recorded, usize),
    Partial,
    Invalid,
}

/// Strict HTTP/1.1 request parsing: httparse's defaults (no obs-fold, no
/// spaces before colons), then Content-Length or chunked framing.
fn parse_request(buf: &[u8]) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let mut rec = Recorded {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        ..Recorded::default()
    };
    for h in req.headers.iter() {
        rec.headers.push((
            h.name.to_ascii_lowercase(),
            String::from_utf8_lossy(h.value).into_owned(),
        ));
    }
    let chunked = rec
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if rec.header_count("transfer-encoding") > 1
        || (rec.header("transfer-encoding").is_some() && !chunked)
        || (chunked && rec.header("content-length").is_some())
        || rec.header_count("content-length") > 1
    {
        // A conformant origin would refuse this framing: so does this one.
        return Parsed::Invalid;
    }
    let rest = &buf[head_len..];
    if chunked {
        return match decode_chunked(rest) {
            Some(Ok((body, trailers, used))) => {
                rec.body = body;
                rec.trailers = trailers;
                Parsed::Complete(rec, head_len + used)
            }
            Some(Err(())) => Parsed::Invalid,
            None => Parsed::Partial,
        };
    }
    let len = match rec.header("content-length").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Parsed::Invalid,
    };
    if rest.len() < len {
        return Parsed::Partial;
    }
    rec.body = rest[..len].to_vec();
    Parsed::Complete(rec, head_len + len)
}

type Fields = Vec<(String, String)>;

/// A decoded chunked body: data, trailer fields, bytes consumed.
type Dechunked = (Vec<u8>, Fields, usize);

/// `None`: incomplete; `Some(Err)`: malformed.
fn decode_chunked(mut buf: &[u8]) -> Option<Result<Dechunked, ()>> {
    let start = buf.len();
    let mut body = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => return Some(Err(())),
        };
        buf = &buf[used..];
        if size == 0 {
            let mut slots = [httparse::EMPTY_HEADER; 32];
            return match httparse::parse_headers(buf, &mut slots) {
                Ok(httparse::Status::Complete((used, fields))) => {
                    let trailers = fields
                        .iter()
                        .map(|f| {
                            (
                                f.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(f.value).into_owned(),
                            )
                        })
                        .collect();
                    Some(Ok((body, trailers, start - buf.len() + used)))
                }
                Ok(httparse::Status::Partial) => None,
                Err(_) => Some(Err(())),
            };
        }
        let size = usize::try_from(size).ok()?;
        if buf.len() < size + 2 {
            return None;
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Some(Err(()));
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

/// What a raw HTTP/1.1 client got back.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// The proxy closed the connection (rather than the hang guard firing).
    pub closed: bool,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status codes of every response, in order.
    pub fn statuses(&self) -> Vec<u16> {
        let text = self.text();
        text.match_indices("HTTP/1.")
            .filter(|(i, _)| *i == 0 || text[..*i].ends_with('\n'))
            .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }

    /// The first response's status.
    pub fn status(&self) -> u16 {
        self.statuses().first().copied().unwrap_or(0)
    }
}

/// Writes `request` on a new connection, half-closes nothing, and reads
/// until the proxy closes or `settle` passes with no new byte (for cases
/// where the connection stays open).
pub fn h1_exchange(addr: SocketAddr, request: &[u8], settle: Duration) -> RawReply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(settle)).unwrap();
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    RawReply { bytes, closed }
}

/// A byte stream an HTTP/2 client can run over: TCP or TLS.
pub trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

/// What happened to one HTTP/2 stream.
#[derive(Debug, Default)]
pub struct H2Outcome {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// RST_STREAM error code, if the stream was reset.
    pub reset: Option<u32>,
    /// GOAWAY error code, if the connection was closed.
    pub goaway: Option<u32>,
}

pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 7;
pub const CANCEL: u32 = 8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A raw HTTP/2 client: header blocks are HPACK-encoded as literals
/// without indexing or Huffman, so any name or value (including invalid
/// ones) goes on the wire exactly as given.
pub struct H2Client {
    io: Box<dyn Duplex>,
    decoder: hpack::Decoder<'static>,
    /// The socket under a cleartext client, for timeouts.
    tcp: Option<TcpStream>,
    /// A write failed or a read hit EOF.
    closed: bool,
}

pub const HEADERS: u8 = 0x1;
pub const DATA: u8 = 0x0;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

impl H2Client {
    /// Sends the preface and an empty SETTINGS frame over `io`.
    pub fn new(mut io: Box<dyn Duplex>) -> H2Client {
        io.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        let mut client = H2Client {
            io,
            decoder: hpack::Decoder::new(),
            tcp: None,
            closed: false,
        };
        client.frame(0x4, 0, 0, &[]);
        client
    }

    pub fn cleartext(addr: SocketAddr) -> H2Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let tcp = stream.try_clone().unwrap();
        let mut client = H2Client::new(Box::new(stream));
        client.tcp = Some(tcp);
        client
    }

    /// Writes that block this long fail (a flood stops when the server
    /// stops reading). Cleartext clients only.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        if let Some(tcp) = &self.tcp {
            tcp.set_write_timeout(Some(timeout)).unwrap();
        }
    }

    /// Writes one frame; false once writing fails (the server stopped
    /// reading or closed the connection).
    pub fn try_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        if self.closed {
            return false;
        }
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.push(kind);
        frame.push(flags);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        if self
            .io
            .write_all(&frame)
            .and_then(|()| self.io.flush())
            .is_err()
        {
            self.closed = true;
        }
        !self.closed
    }

    /// Whether a write failed or a read reached the end of the connection.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// One frame from the server: (type, flags, stream, payload); `None` at
    /// EOF or after the read timeout.
    pub fn read_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        if self.io.read_exact(&mut head).is_err() {
            self.closed = true;
            return None;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if self.io.read_exact(&mut payload).is_err() {
            self.closed = true;
            return None;
        }
        Some((head[3], head[4], id, payload))
    }

    /// The server's first SETTINGS frame, as (identifier, value) pairs.
    pub fn server_settings(&mut self) -> Vec<(u16, u32)> {
        while let Some((kind, flags, _, payload)) = self.read_frame() {
            if kind == SETTINGS && flags & 0x1 == 0 {
                self.frame(SETTINGS, 0x1, 0, &[]);
                return payload
                    .chunks_exact(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect();
            }
        }
        panic!("no SETTINGS from the server");
    }

    /// Reads (and drops) frames until GOAWAY, returning its error code, or
    /// `None` if the connection ended without one.
    pub fn until_goaway(&mut self) -> Option<u32> {
        while let Some((kind, _, _, payload)) = self.read_frame() {
            if kind == GOAWAY {
                return payload
                    .get(4..8)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        None
    }

    /// HTTP/2 over TLS with this client config (its ALPN should offer h2).
    pub fn tls(addr: SocketAddr, config: rustls::ClientConfig, sni: &str) -> H2Client {
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        H2Client::new(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    /// Writes one frame.
    pub fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut head = [0u8; 9];
        head[..3].copy_from_slice(&len.to_be_bytes()[1..]);
        head[3] = kind;
        head[4] = flags;
        head[5..].copy_from_slice(&stream.to_be_bytes());
        let _ = self.io.write_all(&head);
        let _ = self.io.write_all(payload);
        let _ = self.io.flush();
    }

    /// Sends a HEADERS frame (END_HEADERS set) with these fields, in order.
    pub fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = encode_block(fields);
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream, &block);
    }

    pub fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) {
        self.frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, data);
    }

    /// Reads frames until `stream` ends (END_STREAM, RST_STREAM) or the
    /// connection does (GOAWAY, EOF).
    pub fn outcome(&mut self, stream: u32) -> H2Outcome {
        let mut out = H2Outcome::default();
        let mut block: Vec<u8> = Vec::new();
        loop {
            let mut head = [0u8; 9];
            if self.io.read_exact(&mut head).is_err() {
                return out;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            if self.io.read_exact(&mut payload).is_err() {
                return out;
            }
            match kind {
                // SETTINGS: acknowledge the server's.
                0x4 if flags & 0x1 == 0 => self.frame(0x4, 0x1, 0, &[]),
                // PING: answer it.
                0x6 if flags & 0x1 == 0 => self.frame(0x6, 0x1, 0, &payload),
                0x7 => {
                    out.goaway = payload
                        .get(4..8)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return out;
                }
                0x3 if id == stream => {
                    out.reset = payload
                        .get(..4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return out;
                }
                // HEADERS and CONTINUATION.
                0x1 | 0x9 if id == stream => {
                    let mut fragment = &payload[..];
                    if kind == 0x1 && flags & 0x8 != 0 {
                        let pad = usize::from(fragment[0]);
                        fragment = &fragment[1..fragment.len() - pad];
                    }
                    if kind == 0x1 && flags & 0x20 != 0 {
                        fragment = &fragment[5..];
                    }
                    block.extend_from_slice(fragment);
                    if flags & END_HEADERS != 0 {
                        let fields = self.decoder.decode(&block).expect("HPACK from fulcrum");
                        block.clear();
                        let fields: Vec<(String, String)> = fields
                            .into_iter()
                            .map(|(n, v)| {
                                (
                                    String::from_utf8_lossy(&n).into_owned(),
                                    String::from_utf8_lossy(&v).into_owned(),
                                )
                            })
                            .collect();
                        if out.status.is_none() {
                            out.status = fields
                                .iter()
                                .find(|(n, _)| n == ":status")
                                .and_then(|(_, v)| v.parse().ok());
                            out.headers = fields;
                        } else {
                            out.trailers = fields;
                        }
                    }
                    if kind == 0x1 && flags & END_STREAM != 0 {
                        return out;
                    }
                }
                0x0 if id == stream => {
                    let mut data = &payload[..];
                    if flags & 0x8 != 0 {
                        let pad = usize::from(data[0]);
                        data = &data[1..data.len() - pad];
                    }
                    out.body.extend_from_slice(data);
                    // Keep the windows open for large bodies.
                    if !payload.is_empty() {
                        let inc = (payload.len() as u32).to_be_bytes();
                        self.frame(0x8, 0, 0, &inc);
                        self.frame(0x8, 0, stream, &inc);
                    }
                    if flags & END_STREAM != 0 {
                        return out;
                    }
                }
                _ => {}
            }
        }
    }
}

/// HPACK literal header fields without indexing, new name, no Huffman
/// (RFC 7541 6.2.2): every byte of name and value is sent as given.
pub fn encode_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        encode_string(&mut out, name.as_bytes());
        encode_string(&mut out, value.as_bytes());
    }
    out
}

/// An HPACK string literal (length prefix, no Huffman), for hand-made blocks.
pub fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    encode_string(out, s);
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    // 7-bit prefix integer (RFC 7541 5.1), Huffman bit clear.
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}
