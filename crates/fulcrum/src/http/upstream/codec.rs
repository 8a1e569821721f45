//! HTTP/1.1 message syntax for the upstream fast path (RFC 9112): the request
//! head fulcrum writes, the response head it reads, and the response body's
//! framing. Pure — bytes in, values out — so every rule is unit-tested
//! without a socket; `h1.rs` does the I/O.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// Largest response head accepted (hyper's default buffer limit is ~400 KiB;
/// NGINX's `proxy_buffer_size` is 4–8 KiB; 64 KiB is generous for real origins).
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Most header fields in one response head (hyper's default is 100).
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// A response the upstream sent that is not valid HTTP/1.1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("response head larger than {MAX_HEAD_LEN} bytes")]
    HeadTooLarge,
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
}

/// How the request body is framed on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body. `content-length: 0` is still sent for methods that normally
    /// carry one, as RFC 9110 8.6 suggests and many origins require.
    Empty,
    Length(u64),
    /// The length is not known up front (an HTTP/2 client without
    /// content-length, or a chunked HTTP/1.1 upload).
    Chunked,
}

/// Writes the request line and header section. `headers` must already be
/// cleaned of hop-by-hop fields; framing headers come from `framing` only,
/// so a client cannot smuggle a second framing past the proxy.
pub fn encode_request_head(
    buf: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: RequestFraming,
) {
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    match framing {
        RequestFraming::Empty => {
            if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                buf.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        RequestFraming::Length(n) => {
            buf.extend_from_slice(b"content-length: ");
            buf.extend_from_slice(n.to_string().as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked request body.
pub fn encode_chunk(buf: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return; // a zero-size chunk would end the body
    }
    buf.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section of a chunked request body.
pub fn encode_last_chunk(buf: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    buf.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
}

/// How the response body is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection (no length, no chunking).
    UntilClose,
}

#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses a response head from the start of `buf`. `Ok(None)`: incomplete,
/// read more. On success the head's bytes are removed from `buf`, which then
/// starts with the body. Header values share the head's one allocation.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, CodecError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_LEN => {
            return Err(CodecError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(CodecError::Head(e.to_string())),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| CodecError::Head(format!("invalid status code {code}")))?;
    let minor = parsed.version.unwrap_or(1);
    // Offsets into `buf`, so the values can be sliced from the frozen head
    // below instead of copied one by one.
    let base = buf.as_ptr() as usize;
    let mut fields: Vec<(HeaderName, usize, usize)> = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| CodecError::Head(format!("invalid header name {:?}", h.name)))?;
        let start = h.value.as_ptr() as usize - base;
        fields.push((name, start, start + h.value.len()));
    }
    let head: Bytes = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, start, end) in fields {
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| CodecError::Head(format!("invalid value in header {name}")))?;
        headers.append(name, value);
    }
    let mut keep_alive = connection_persists(&headers, minor);
    let coding = transfer_encoding_chunked(&headers);
    // A length next to Transfer-Encoding is removed before the response
    // goes on, whatever the framing (a HEAD or 304 response too), and the
    // connection is not reused (RFC 9112 6.3 item 3: a possible smuggling
    // attempt, and an intermediary MUST remove the length).
    if coding.is_some() && headers.remove(header::CONTENT_LENGTH).is_some() {
        keep_alive = false;
    }
    let framing = if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        BodyFraming::None
    } else if let Some(chunked) = coding {
        if chunked {
            BodyFraming::Chunked
        } else {
            keep_alive = false;
            BodyFraming::UntilClose
        }
    } else if let Some(length) = content_length(&headers)? {
        BodyFraming::Length(length)
    } else {
        keep_alive = false;
        BodyFraming::UntilClose
    };
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`.
fn connection_persists(headers: &HeaderMap, minor: u8) -> bool {
    let mut close = minor == 0;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("close") {
                return false;
            }
            if token.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        }
    }
    !close
}

/// `Some(true)` when the final transfer coding is chunked, `Some(false)` for
/// any other coding, `None` without Transfer-Encoding.
fn transfer_encoding_chunked(headers: &HeaderMap) -> Option<bool> {
    let last = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()?;
    let coding = last.to_str().unwrap_or("").rsplit(',').next().unwrap_or("");
    Some(coding.trim().eq_ignore_ascii_case("chunked"))
}

/// Every Content-Length value (and list member) must be the same number.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, CodecError> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| CodecError::ContentLength)?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CodecError::ContentLength);
            }
            let n: u64 = part.parse().map_err(|_| CodecError::ContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(CodecError::ContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// What the chunked decoder produced from the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Bytes),
    /// The body ended with a trailer section (gRPC-Web and others use it).
    Trailers(HeaderMap),
    /// The body ended without trailers.
    End,
    /// The buffer holds no complete unit: read more.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Incremental decoder for `Transfer-Encoding: chunked` (RFC 9112 7.1).
/// Data is handed out as it arrives, never gathered into whole chunks.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size,
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, CodecError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line_end) = find_crlf(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Chunk::NeedMore);
                    };
                    let size = parse_chunk_size(&buf[..line_end])?;
                    let _ = buf.split_to(line_end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    let take = remaining.min(buf.len() as u64) as usize;
                    let data = buf.split_to(take).freeze();
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Chunk::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(CodecError::Chunked("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if buf.len() < 2 {
                        return Ok(Chunk::NeedMore);
                    }
                    if &buf[..2] == b"\r\n" {
                        let _ = buf.split_to(2);
                        self.state = ChunkState::Done;
                        return Ok(Chunk::End);
                    }
                    return self.trailers(buf);
                }
                ChunkState::Done => return Ok(Chunk::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Chunk, CodecError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete((len, fields))) => {
                let mut trailers = HeaderMap::with_capacity(fields.len());
                for f in fields {
                    let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(f.name.as_bytes()),
                        HeaderValue::from_bytes(f.value),
                    ) else {
                        return Err(CodecError::Chunked("invalid trailer field"));
                    };
                    trailers.append(name, value);
                }
                let _ = buf.split_to(len);
                self.state = ChunkState::Done;
                Ok(Chunk::Trailers(trailers))
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_LEN => {
                Err(CodecError::Chunked("trailer section too large"))
            }
            Ok(httparse::Status::Partial) => Ok(Chunk::NeedMore),
            Err(_) => Err(CodecError::Chunked("malformed trailer section")),
        }
    }
}

/// Index of the first CRLF, if within `limit` bytes.
fn find_crlf(buf: &[u8], limit: usize) -> Result<Option<usize>, CodecError> {
    let window = &buf[..buf.len().min(limit + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(i)),
        None if buf.len() > limit => Err(CodecError::Chunked("chunk-size line too long")),
        None => Ok(None),
    }
}

/// `1a;ext=1` -> 26. Extensions are ignored, as every proxy does.
fn parse_chunk_size(line: &[u8]) -> Result<u64, CodecError> {
    let digits = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .map_or(line, |end| &line[..end]);
    if digits.is_empty() || digits.len() > 15 {
        return Err(CodecError::Chunked("invalid chunk size"));
    }
    let mut size: u64 = 0;
    for &b in digits {
        let d = (b as char)
            .to_digit(16)
            .ok_or(CodecError::Chunked("invalid chunk size"))?;
        size = size * 16 + u64::from(d);
    }
    Ok(size)
}

/// Promises the parsers keep for any input, checked by the fuzz targets
/// (`fuzz/fuzz_targets/h1_response.rs`, `chunked.rs`) and on stable by the
/// seeded loop in `tests/codec_robustness.rs`. Each panics on a broken
/// promise; an input that is merely invalid is fine.
pub mod properties {
    use super::*;

    /// `parse_response_head` never panics; a head it accepts is exactly the
    /// bytes it consumed (the rest is left as it was, and no strict prefix
    /// of the head parses); it never asks for more once the limit is
    /// reached; and a response with both framings keeps neither
    /// `Content-Length` nor connection reuse.
    pub fn response_head(data: &[u8]) {
        for method in [Method::GET, Method::HEAD] {
            let mut buf = BytesMut::from(data);
            match parse_response_head(&mut buf, &method) {
                Ok(Some(head)) => {
                    let consumed = data.len() - buf.len();
                    assert!(consumed > 0 && consumed <= data.len());
                    assert_eq!(&buf[..], &data[consumed..], "bytes after the head changed");
                    for cut in [consumed - 1, consumed / 2] {
                        let mut prefix = BytesMut::from(&data[..cut]);
                        assert!(
                            !matches!(parse_response_head(&mut prefix, &method), Ok(Some(_))),
                            "a {cut}-byte prefix of a {consumed}-byte head parsed"
                        );
                    }
                    if head.headers.contains_key(header::TRANSFER_ENCODING) {
                        assert!(!head.headers.contains_key(header::CONTENT_LENGTH));
                    }
                    if method == Method::HEAD {
                        assert_eq!(head.framing, BodyFraming::None);
                    }
                }
                Ok(None) => assert!(data.len() < MAX_HEAD_LEN, "asked for more past the limit"),
                Err(_) => {}
            }
        }
    }

    /// What decoding a chunked body produced: the data, in order, and how
    /// it ended.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Decoded {
        pub data: Vec<u8>,
        pub end: End,
    }

    #[derive(Debug, PartialEq, Eq)]
    pub enum End {
        NeedMore,
        Done(Option<HeaderMap>),
        Error,
    }

    /// Decodes `pieces` as they would arrive from the network, one read each.
    pub fn decode_chunked(pieces: &[&[u8]]) -> Decoded {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Chunk::Data(d)) => {
                        assert!(!d.is_empty(), "an empty data chunk");
                        data.extend_from_slice(&d);
                    }
                    Ok(Chunk::NeedMore) => break,
                    Ok(Chunk::End) => {
                        return Decoded {
                            data,
                            end: End::Done(None),
                        };
                    }
                    Ok(Chunk::Trailers(t)) => {
                        return Decoded {
                            data,
                            end: End::Done(Some(t)),
                        };
                    }
                    Err(_) => {
                        return Decoded {
                            data,
                            end: End::Error,
                        };
                    }
                }
            }
        }
        Decoded {
            data,
            end: End::NeedMore,
        }
    }

    /// The chunked decoder never panics, never yields more data than it
    /// was given, and gives the same data and the same ending however the
    /// bytes are split into reads.
    pub fn chunked(data: &[u8], split: usize) {
        let whole = decode_chunked(&[data]);
        assert!(whole.data.len() <= data.len());
        let at = split.min(data.len());
        let (a, b) = data.split_at(at);
        assert_eq!(decode_chunked(&[a, b]), whole, "split at {at}");
        // Byte by byte is the most adversarial split; bounded to keep it cheap.
        if data.len() <= 512 {
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(decode_chunked(&bytes), whole, "byte by byte");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: Method) -> Result<Option<ResponseHead>, CodecError> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_response_head(&mut buf, &method)
    }

    #[test]
    fn request_head_carries_framing_from_the_body_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a.example"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        let mut buf = Vec::new();
        encode_request_head(
            &mut buf,
            &Method::POST,
            "/x?y=1",
            &headers,
            RequestFraming::Length(5),
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "POST /x?y=1 HTTP/1.1\r\nhost: a.example\r\ncontent-length: 5\r\n\r\n"
        );
        let mut buf = Vec::new();
        encode_request_head(
            &mut buf,
            &Method::PUT,
            "/",
            &HeaderMap::new(),
            RequestFraming::Empty,
        );
        assert!(
            String::from_utf8(buf)
                .unwrap()
                .contains("content-length: 0\r\n")
        );
        let mut buf = Vec::new();
        encode_request_head(
            &mut buf,
            &Method::GET,
            "/",
            &HeaderMap::new(),
            RequestFraming::Empty,
        );
        assert_eq!(buf, b"GET / HTTP/1.1\r\n\r\n");
        let mut buf = Vec::new();
        encode_request_head(
            &mut buf,
            &Method::GET,
            "/",
            &headers,
            RequestFraming::Chunked,
        );
        assert!(
            String::from_utf8(buf)
                .unwrap()
                .ends_with("transfer-encoding: chunked\r\n\r\n")
        );
    }

    #[test]
    fn chunks_encode_and_decode_back() {
        let mut wire = Vec::new();
        encode_chunk(&mut wire, b"hello ");
        encode_chunk(&mut wire, b"");
        encode_chunk(&mut wire, &[b'x'; 300]);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        encode_last_chunk(&mut wire, Some(&trailers));
        // Feed it one byte at a time: every split point must work.
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut got_trailers = None;
        for &b in &wire {
            buf.extend_from_slice(&[b]);
            loop {
                match decoder.decode(&mut buf).unwrap() {
                    Chunk::Data(d) => body.extend_from_slice(&d),
                    Chunk::Trailers(t) => got_trailers = Some(t),
                    Chunk::End | Chunk::NeedMore => break,
                }
            }
        }
        assert_eq!(body.len(), 306);
        assert!(body.starts_with(b"hello x"));
        assert_eq!(got_trailers, Some(trailers));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_length_beside_transfer_encoding_goes_even_without_a_body() {
        // Found by the codec_robustness loop: a HEAD (or 304) response kept
        // both, and Content-Length went on to the client.
        for (method, status) in [(Method::HEAD, "200 OK"), (Method::GET, "304 Not Modified")] {
            let text = format!(
                "HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n"
            );
            let h = head(&text, method).unwrap().unwrap();
            assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
            assert!(!h.keep_alive);
            assert_eq!(h.framing, BodyFraming::None);
        }
    }

    #[test]
    fn chunked_without_trailers_ends_and_keeps_what_follows() {
        let mut buf = BytesMut::from(&b"3;name=v\r\nabc\r\n0\r\n\r\nHTTP/1.1"[..]);
        let mut d = ChunkedDecoder::new();
        assert_eq!(
            d.decode(&mut buf),
            Ok(Chunk::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Chunk::End));
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"3\r\nabcXY",
            b"1234567890123456\r\n",
            b"\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let mut d = ChunkedDecoder::new();
            let mut result = d.decode(&mut buf);
            if let Ok(Chunk::Data(_)) = result {
                result = d.decode(&mut buf);
            }
            assert!(result.is_err(), "{bad:?} gave {result:?}");
        }
        let mut long = BytesMut::from(vec![b'1'; MAX_CHUNK_LINE + 10].as_slice());
        assert!(ChunkedDecoder::new().decode(&mut long).is_err());
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Length(5), true));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, BodyFraming::None);
        let h = head(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::None);
        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(h.keep_alive);
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::Length(7));
    }

    #[test]
    fn bad_response_heads_are_errors_and_partial_ones_wait() {
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5", Method::GET)
                .unwrap()
                .is_none()
        );
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 999x OK\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ] {
            assert!(head(bad, Method::GET).is_err(), "{bad:?}");
        }
        let mut big = String::from("HTTP/1.1 200 OK\r\n");
        let filler = format!("x-filler: {}\r\n", "a".repeat(1000));
        while big.len() < MAX_HEAD_LEN {
            big.push_str(&filler);
        }
        assert_eq!(
            head(&big, Method::GET).unwrap_err(),
            CodecError::HeadTooLarge
        );
    }

    #[test]
    fn parsed_head_leaves_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 201 Created\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody"[..]);
        let h = parse_response_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(&buf[..], b"body");
    }
}
