//! TLS ClientHello inspection, for routing TLS passthrough connections by
//! SNI (RFC 6066) and ALPN (RFC 7301) without terminating TLS.
//!
//! Record and handshake framing follow RFC 8446 section 5 and 4, which are
//! compatible with TLS 1.2 (RFC 5246) for the ClientHello. [`parse`] only
//! looks: the caller forwards the same bytes to the backend untouched.

use std::borrow::Cow;
use std::fmt;

/// Largest handshake message accepted; a real ClientHello (even with a
/// post-quantum key share) is a few KiB.
pub const MAX_CLIENT_HELLO_LEN: usize = 64 * 1024;

/// Largest TLS record length accepted: 2^14 plus the 256 bytes RFC 8446
/// allows for ciphertext expansion. Anything longer is not TLS.
pub const MAX_RECORD_LEN: usize = 16384 + 256;

const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const HANDSHAKE_TYPE_CLIENT_HELLO: u8 = 1;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// What a router needs from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// host_name from server_name (SNI), lowercased ASCII; None when absent.
    pub server_name: Option<String>,
    /// ALPN protocol names in client order.
    pub alpn: Vec<Vec<u8>>,
    /// legacy_version from the hello body (0x0303 for TLS 1.2/1.3).
    pub legacy_version: u16,
    /// supported_versions extension entries, if present.
    pub supported_versions: Vec<u16>,
}

/// Why the first bytes of a connection are not an acceptable ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The first record is not a TLS handshake record (plain HTTP, SSLv2, ...).
    NotTls,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// A record or the ClientHello announces a length beyond the limits;
    /// refused before waiting for (or buffering) those bytes.
    TooLarge,
    /// Malformed; the message says what was wrong.
    Invalid(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotTls => f.write_str("connection did not start with a TLS handshake record"),
            Error::NotClientHello => {
                f.write_str("first TLS handshake message is not a ClientHello")
            }
            Error::TooLarge => write!(
                f,
                "TLS record or ClientHello too large (limits: record {MAX_RECORD_LEN} bytes, \
                 ClientHello {MAX_CLIENT_HELLO_LEN} bytes)"
            ),
            Error::Invalid(why) => write!(f, "malformed TLS ClientHello: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Inspects TLS records at the start of `buf` without consuming anything
/// (the caller forwards the bytes untouched).
///
/// * `Ok(None)`: a valid prefix; read more and call again with everything
///   read.
/// * `Err(NotTls)` as soon as byte 0 is not 0x16 (handshake) or the record
///   version major is not 3.
/// * The ClientHello may be fragmented across several handshake records and
///   the buffer may end anywhere.
/// * Absurd lengths (handshake length > [`MAX_CLIENT_HELLO_LEN`], record
///   length > [`MAX_RECORD_LEN`]) give `Err(TooLarge)` immediately, without
///   waiting for or allocating those bytes.
pub fn parse(buf: &[u8]) -> Result<Option<ClientHello>, Error> {
    // Handshake bytes reassembled from the records present so far. Borrowed
    // while everything is in the first record (the usual case), copied only
    // when fragments have to be joined; either way bounded by `buf`.
    let mut handshake: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut pos = 0usize;
    loop {
        let first = pos == 0;
        let Some(&content_type) = buf.get(pos) else {
            return Ok(None);
        };
        if content_type != CONTENT_TYPE_HANDSHAKE {
            return Err(if first {
                Error::NotTls
            } else {
                Error::Invalid("non-handshake record before the ClientHello ended")
            });
        }
        let Some(&major) = buf.get(pos + 1) else {
            return Ok(None);
        };
        if major != 3 {
            return Err(if first {
                Error::NotTls
            } else {
                Error::Invalid("record version is not TLS")
            });
        }
        let Some(&[_, _, _, len_hi, len_lo]) = buf.get(pos..pos + RECORD_HEADER_LEN) else {
            return Ok(None);
        };
        let record_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if record_len > MAX_RECORD_LEN {
            return Err(Error::TooLarge);
        }
        if record_len == 0 {
            // RFC 8446 5.1: zero-length handshake fragments are forbidden.
            return Err(Error::Invalid("empty handshake record"));
        }
        let start = pos + RECORD_HEADER_LEN;
        let end = start + record_len;
        let fragment = buf.get(start..end.min(buf.len())).unwrap_or_default();
        if handshake.is_empty() {
            handshake = Cow::Borrowed(fragment);
        } else {
            handshake.to_mut().extend_from_slice(fragment);
        }

        if let Some(&msg_type) = handshake.first()
            && msg_type != HANDSHAKE_TYPE_CLIENT_HELLO
        {
            return Err(Error::NotClientHello);
        }
        if let Some(&[_, a, b, c]) = handshake.get(..HANDSHAKE_HEADER_LEN) {
            let body_len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if body_len > MAX_CLIENT_HELLO_LEN {
                return Err(Error::TooLarge);
            }
            if let Some(body) = handshake.get(HANDSHAKE_HEADER_LEN..HANDSHAKE_HEADER_LEN + body_len)
            {
                return parse_body(body).map(Some);
            }
        }
        if end > buf.len() {
            return Ok(None);
        }
        pos = end;
    }
}

/// Bounds-checked big-endian reader over a byte slice; every read that runs
/// past the end becomes `Invalid(what)`.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let (Some(head), Some(tail)) = (self.rest.get(..n), self.rest.get(n..)) else {
            return Err(Error::Invalid(what));
        };
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        match self.take(1, what)? {
            &[b] => Ok(b),
            _ => Err(Error::Invalid(what)),
        }
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        match self.take(2, what)? {
            &[hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(Error::Invalid(what)),
        }
    }

    /// A vector with a 1-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let len = self.u8(what)?;
        self.take(usize::from(len), what)
    }

    /// A vector with a 2-byte length prefix.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }
}

/// Parses the ClientHello body (after the 4-byte handshake header).
fn parse_body(body: &[u8]) -> Result<ClientHello, Error> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16("truncated before legacy_version")?;
    r.take(32, "truncated inside random")?;
    let session_id = r.vec8("truncated inside legacy_session_id")?;
    if session_id.len() > 32 {
        return Err(Error::Invalid("legacy_session_id longer than 32 bytes"));
    }
    let cipher_suites = r.vec16("truncated inside cipher_suites")?;
    if cipher_suites.is_empty() || !cipher_suites.len().is_multiple_of(2) {
        return Err(Error::Invalid("cipher_suites empty or of odd length"));
    }
    let compression = r.vec8("truncated inside legacy_compression_methods")?;
    if compression.is_empty() {
        return Err(Error::Invalid("no compression methods"));
    }

    let mut hello = ClientHello {
        server_name: None,
        alpn: Vec::new(),
        legacy_version,
        supported_versions: Vec::new(),
    };
    // A ClientHello may end here (TLS 1.2 and earlier allow no extensions).
    if r.is_empty() {
        return Ok(hello);
    }
    let mut extensions = Reader::new(r.vec16("extensions block longer than the ClientHello")?);
    if !r.is_empty() {
        return Err(Error::Invalid("bytes after the extensions block"));
    }

    // Duplicates are forbidden (RFC 8446 4.2); refusing them for the
    // extensions we route on means we cannot disagree with the backend about
    // which one counts.
    let (mut seen_sni, mut seen_alpn, mut seen_versions) = (false, false, false);
    while !extensions.is_empty() {
        let kind = extensions.u16("truncated extension header")?;
        let data = extensions.vec16("extension longer than the extensions block")?;
        match kind {
            EXT_SERVER_NAME => {
                if std::mem::replace(&mut seen_sni, true) {
                    return Err(Error::Invalid("duplicate server_name extension"));
                }
                hello.server_name = parse_server_name(data)?;
            }
            EXT_ALPN => {
                if std::mem::replace(&mut seen_alpn, true) {
                    return Err(Error::Invalid("duplicate ALPN extension"));
                }
                hello.alpn = parse_alpn(data)?;
            }
            EXT_SUPPORTED_VERSIONS => {
                if std::mem::replace(&mut seen_versions, true) {
                    return Err(Error::Invalid("duplicate supported_versions extension"));
                }
                hello.supported_versions = parse_supported_versions(data)?;
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// RFC 6066 section 3: a list of (name_type, name); the first host_name
/// (type 0) counts.
fn parse_server_name(data: &[u8]) -> Result<Option<String>, Error> {
    let mut outer = Reader::new(data);
    let list = outer.vec16("server_name list longer than its extension")?;
    if !outer.is_empty() {
        return Err(Error::Invalid("bytes after the server_name list"));
    }
    if list.is_empty() {
        return Err(Error::Invalid("empty server_name list"));
    }
    let mut entries = Reader::new(list);
    let mut host_name = None;
    while !entries.is_empty() {
        let name_type = entries.u8("truncated server_name entry")?;
        let name = entries.vec16("server_name entry longer than its list")?;
        if name_type != 0 || host_name.is_some() {
            continue;
        }
        if name.is_empty() {
            return Err(Error::Invalid("empty SNI host_name"));
        }
        if !name.iter().all(|&b| b.is_ascii() && b != 0) {
            return Err(Error::Invalid("SNI host_name is not ASCII or contains NUL"));
        }
        // Host names compare case-insensitively; lowercase once here so
        // routing tables can compare bytes.
        host_name = Some(
            name.iter()
                .map(|&b| char::from(b.to_ascii_lowercase()))
                .collect(),
        );
    }
    Ok(host_name)
}

/// RFC 7301 section 3.1: a non-empty list of non-empty protocol names.
fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut outer = Reader::new(data);
    let list = outer.vec16("ALPN list longer than its extension")?;
    if !outer.is_empty() {
        return Err(Error::Invalid("bytes after the ALPN list"));
    }
    if list.is_empty() {
        return Err(Error::Invalid("empty ALPN list"));
    }
    let mut names = Reader::new(list);
    let mut alpn = Vec::new();
    while !names.is_empty() {
        let name = names.vec8("ALPN name longer than its list")?;
        if name.is_empty() {
            return Err(Error::Invalid("empty ALPN protocol name"));
        }
        alpn.push(name.to_vec());
    }
    Ok(alpn)
}

/// RFC 8446 section 4.2.1: a 1-byte-length list of 2-byte versions.
fn parse_supported_versions(data: &[u8]) -> Result<Vec<u16>, Error> {
    let mut outer = Reader::new(data);
    let list = outer.vec8("supported_versions list longer than its extension")?;
    if !outer.is_empty() {
        return Err(Error::Invalid("bytes after the supported_versions list"));
    }
    if list.is_empty() || !list.len().is_multiple_of(2) {
        return Err(Error::Invalid(
            "supported_versions list empty or of odd length",
        ));
    }
    Ok(list
        .chunks_exact(2)
        .map(|pair| match pair {
            &[hi, lo] => u16::from_be_bytes([hi, lo]),
            _ => 0,
        })
        .collect())
}
