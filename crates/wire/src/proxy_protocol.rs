//! HAProxy PROXY protocol, versions 1 (text) and 2 (binary).
//!
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.
//! A proxy in front of fulcrum prepends one header to the connection to say
//! who the client really is; [`parse`] reads it from the first bytes, and the
//! `encode_*` functions write it when fulcrum is the proxy in front of
//! someone else.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The 12 bytes every v2 header starts with. Chosen by the spec so that it
/// can never start a valid request of a common protocol.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Longest v1 header, CRLF included (the spec's worst case,
/// `PROXY UNKNOWN` followed by the longest TCP6 addresses). A sender that
/// has not ended its line by then is not speaking v1.
pub const V1_MAX_LEN: usize = 107;

/// What every v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";

/// Signature, version/command, family/transport and the 2-byte length.
const V2_FIXED_LEN: usize = 16;

/// Address block sizes per v2 address family (spec section 2.2).
const V2_INET_LEN: usize = 12;
const V2_INET6_LEN: usize = 36;
const V2_UNIX_LEN: usize = 216;

/// Which version of the protocol a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Human-readable text line.
    V1,
    /// Binary header starting with [`V2_SIGNATURE`].
    V2,
}

/// Transport protocol of the proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP (`TCP4`/`TCP6` in v1, `SOCK_STREAM` in v2).
    Stream,
    /// UDP (`SOCK_DGRAM` in v2; v1 cannot say it).
    Datagram,
}

/// A parsed PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Which version the sender used.
    pub version: Version,
    /// v2 LOCAL command or v1 `UNKNOWN`: the connection is the proxy's own
    /// (health check); use the real peer address.
    pub local: bool,
    /// Transport of the proxied connection; `None` for `UNKNOWN`, `AF_UNSPEC`,
    /// `AF_UNIX` and LOCAL, where there is no IP connection to describe.
    pub transport: Option<Transport>,
    /// Client address and the address it connected to; `None` when the
    /// sender did not say (`UNKNOWN`, `AF_UNSPEC`, `AF_UNIX`, LOCAL).
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// v2 TLVs as (type, value), in order; empty for v1.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// Why the first bytes of a connection are not an acceptable PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes cannot start either signature: the peer is not sending the
    /// PROXY protocol at all (often a listener configured for it receiving
    /// direct traffic).
    NotProxyProtocol,
    /// The header started like a PROXY header but is malformed; the message
    /// says what was wrong.
    Invalid(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotProxyProtocol => f.write_str(
                "connection did not start with a PROXY protocol header \
                 (is the peer configured to send one?)",
            ),
            Error::Invalid(why) => write!(f, "malformed PROXY protocol header: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Parses a header at the start of `buf`.
///
/// * `Ok(None)`: the bytes so far are a valid prefix; read more and call
///   again with everything read.
/// * `Ok(Some((header, consumed)))`: complete; the first `consumed` bytes are
///   the header and the rest is payload.
/// * `Err(NotProxyProtocol)` as soon as the first bytes cannot start either
///   signature, so a caller can refuse quickly.
/// * `Err(Invalid(..))` for a malformed header.
///
/// Never reads past `buf` and never allocates more than the bytes present.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    if could_start_with(buf, &V2_SIGNATURE) {
        parse_v2(buf)
    } else if could_start_with(buf, V1_PREFIX) {
        parse_v1(buf)
    } else {
        Err(Error::NotProxyProtocol)
    }
}

/// True when `buf` and `signature` agree on their common length, i.e. `buf`
/// may still turn out to start with `signature`.
fn could_start_with(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf.get(..n) == signature.get(..n)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or(buf);
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() >= V1_MAX_LEN {
            Err(Error::Invalid(
                "v1 header longer than 107 bytes without CRLF",
            ))
        } else {
            Ok(None)
        };
    };
    if window.get(end) == Some(&b'\n') {
        return Err(Error::Invalid("v1 header ends with LF without CR"));
    }
    let consumed = end + 2; // end < V1_MAX_LEN: cannot overflow
    if consumed > V1_MAX_LEN {
        return Err(Error::Invalid(
            "v1 header longer than 107 bytes without CRLF",
        ));
    }
    match buf.get(end + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(Error::Invalid("v1 header has CR not followed by LF")),
    }
    let line = buf.get(..end).unwrap_or_default();
    parse_v1_line(line).map(|header| Some((header, consumed)))
}

/// Parses one v1 line without its CRLF.
fn parse_v1_line(line: &[u8]) -> Result<Header, Error> {
    let Some(rest) = line.strip_prefix(V1_PREFIX) else {
        return Err(Error::Invalid("v1 header does not start with \"PROXY \""));
    };
    // "PROXY UNKNOWN" may be followed by anything, which the spec says the
    // receiver must ignore.
    if let Some(after) = rest.strip_prefix(b"UNKNOWN")
        && (after.is_empty() || after.first() == Some(&b' '))
    {
        return Ok(Header {
            version: Version::V1,
            local: true,
            transport: None,
            addresses: None,
            tlvs: Vec::new(),
        });
    }
    let mut fields = rest.split(|&b| b == b' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Error::Invalid(
            "v1 header must be \"PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\" with single spaces",
        ));
    };
    let (src_ip, dst_ip) = match proto {
        b"TCP4" => (
            IpAddr::V4(parse_text::<Ipv4Addr>(
                src,
                "v1 TCP4 source is not an IPv4 address",
            )?),
            IpAddr::V4(parse_text::<Ipv4Addr>(
                dst,
                "v1 TCP4 destination is not an IPv4 address",
            )?),
        ),
        b"TCP6" => (
            IpAddr::V6(parse_text::<Ipv6Addr>(
                src,
                "v1 TCP6 source is not an IPv6 address",
            )?),
            IpAddr::V6(parse_text::<Ipv6Addr>(
                dst,
                "v1 TCP6 destination is not an IPv6 address",
            )?),
        ),
        _ => return Err(Error::Invalid("v1 protocol must be TCP4, TCP6 or UNKNOWN")),
    };
    let src_port = parse_port(sport, "v1 source port is not a number in 0..=65535")?;
    let dst_port = parse_port(dport, "v1 destination port is not a number in 0..=65535")?;
    Ok(Header {
        version: Version::V1,
        local: false,
        transport: Some(Transport::Stream),
        addresses: Some((
            SocketAddr::new(src_ip, src_port),
            SocketAddr::new(dst_ip, dst_port),
        )),
        tlvs: Vec::new(),
    })
}

fn parse_text<T: std::str::FromStr>(field: &[u8], why: &'static str) -> Result<T, Error> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Error::Invalid(why))
}

/// Decimal digits only, no leading zero (the spec forbids them to avoid
/// octal confusion): `u16::from_str` would accept `+80` and `080`.
fn parse_port(field: &[u8], why: &'static str) -> Result<u16, Error> {
    let leading_zero = field.len() > 1 && field.first() == Some(&b'0');
    if field.is_empty() || field.len() > 5 || leading_zero || !field.iter().all(u8::is_ascii_digit)
    {
        return Err(Error::Invalid(why));
    }
    let value = field
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    u16::try_from(value).map_err(|_| Error::Invalid(why))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    // Check the version and command bytes as soon as they arrive, so a
    // wrong sender is refused before it sends a whole header.
    let local = match buf.get(12) {
        None => return Ok(None),
        Some(&ver_cmd) => {
            if ver_cmd >> 4 != 2 {
                return Err(Error::Invalid("v2 header has a version other than 2"));
            }
            match ver_cmd & 0x0f {
                0 => true,
                1 => false,
                _ => return Err(Error::Invalid("v2 command is neither LOCAL nor PROXY")),
            }
        }
    };
    // The spec says receivers ignore the family of a LOCAL header, but must
    // reject unknown families with PROXY.
    if let Some(&fam) = buf.get(13)
        && !local
        && !matches!(fam, 0x00 | 0x11 | 0x12 | 0x21 | 0x22 | 0x31 | 0x32)
    {
        return Err(Error::Invalid("v2 address family or transport is unknown"));
    }
    let Some(&[fam, len_hi, len_lo]) = buf.get(13..V2_FIXED_LEN) else {
        return Ok(None);
    };
    let total = V2_FIXED_LEN + usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let Some(block) = buf.get(V2_FIXED_LEN..total) else {
        return Ok(None);
    };
    let address_len = match fam >> 4 {
        0 => Some(0),
        1 => Some(V2_INET_LEN),
        2 => Some(V2_INET6_LEN),
        3 => Some(V2_UNIX_LEN),
        _ => None,
    };

    if local {
        // Addresses are discarded. TLVs follow the family's address block
        // when the family is known and the block fits; otherwise the block
        // is opaque and skipped whole, as the spec allows.
        let tlvs = match address_len.and_then(|n| block.get(n..)) {
            Some(tlv_bytes) => parse_tlvs(tlv_bytes)?,
            None => Vec::new(),
        };
        let header = Header {
            version: Version::V2,
            local: true,
            transport: None,
            addresses: None,
            tlvs,
        };
        return Ok(Some((header, total)));
    }

    let address_len = address_len.unwrap_or(0);
    let (Some(addr), Some(tlv_bytes)) = (block.get(..address_len), block.get(address_len..)) else {
        return Err(Error::Invalid(
            "v2 address block is shorter than its address family needs",
        ));
    };
    let transport = match fam {
        0x11 | 0x21 => Some(Transport::Stream),
        0x12 | 0x22 => Some(Transport::Datagram),
        _ => None,
    };
    let addresses = match fam >> 4 {
        1 => v2_inet(addr),
        2 => v2_inet6(addr),
        _ => None,
    };
    let header = Header {
        version: Version::V2,
        local: false,
        transport,
        addresses,
        tlvs: parse_tlvs(tlv_bytes)?,
    };
    Ok(Some((header, total)))
}

fn v2_inet(addr: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let src: [u8; 4] = addr.get(0..4)?.try_into().ok()?;
    let dst: [u8; 4] = addr.get(4..8)?.try_into().ok()?;
    let sport = u16::from_be_bytes(addr.get(8..10)?.try_into().ok()?);
    let dport = u16::from_be_bytes(addr.get(10..12)?.try_into().ok()?);
    Some((
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(src), sport)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(dst), dport)),
    ))
}

fn v2_inet6(addr: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let src: [u8; 16] = addr.get(0..16)?.try_into().ok()?;
    let dst: [u8; 16] = addr.get(16..32)?.try_into().ok()?;
    let sport = u16::from_be_bytes(addr.get(32..34)?.try_into().ok()?);
    let dport = u16::from_be_bytes(addr.get(34..36)?.try_into().ok()?);
    Some((
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(src), sport, 0, 0)),
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(dst), dport, 0, 0)),
    ))
}

/// Splits the bytes after the address block into type(1) length(2) value
/// entries. Sub-TLVs (such as inside `PP2_TYPE_SSL`) are left to the caller.
fn parse_tlvs(mut rest: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, Error> {
    let mut tlvs = Vec::new();
    while !rest.is_empty() {
        let Some(&[kind, len_hi, len_lo]) = rest.get(..3) else {
            return Err(Error::Invalid("v2 TLV header is truncated"));
        };
        let end = 3 + usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let (Some(value), Some(next)) = (rest.get(3..end), rest.get(end..)) else {
            return Err(Error::Invalid("v2 TLV value runs past the header length"));
        };
        tlvs.push((kind, value.to_vec()));
        rest = next;
    }
    Ok(tlvs)
}

/// Both addresses in one family: IPv4 stays IPv4 only when both are, since
/// a header has a single family; otherwise IPv4 becomes v4-mapped IPv6.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    fn to_v6(addr: SocketAddr) -> SocketAddr {
        match addr {
            SocketAddr::V4(v4) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            v6 @ SocketAddr::V6(_) => v6,
        }
    }
    match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => (source, destination),
        _ => (to_v6(source), to_v6(destination)),
    }
}

/// A v1 `PROXY TCP4 ...` or `PROXY TCP6 ...` line, CRLF included.
/// Mixed families are sent as TCP6 with the IPv4 side v4-mapped.
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A v2 PROXY-command header without TLVs. Mixed families are sent as
/// `AF_INET6` with the IPv4 side v4-mapped.
pub fn encode_v2(source: SocketAddr, destination: SocketAddr, transport: Transport) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    let transport_bits = match transport {
        Transport::Stream => 0x01,
        Transport::Datagram => 0x02,
    };
    let mut out = Vec::with_capacity(V2_FIXED_LEN + V2_INET6_LEN);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x10 | transport_bits);
            out.extend_from_slice(&(V2_INET_LEN as u16).to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
        }
        _ => {
            out.push(0x20 | transport_bits);
            out.extend_from_slice(&(V2_INET6_LEN as u16).to_be_bytes());
            for addr in [source, destination] {
                let ip = match addr.ip() {
                    IpAddr::V6(ip) => ip,
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                };
                out.extend_from_slice(&ip.octets());
            }
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// A v2 LOCAL header (`AF_UNSPEC`, no addresses): what a proxy sends on its
/// own connections, such as health checks.
pub fn encode_v2_local() -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_FIXED_LEN);
    out.extend_from_slice(&V2_SIGNATURE);
    out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    out
}
