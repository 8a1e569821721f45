//! PROXY protocol: the spec's examples, hand-built v2 headers, round trips,
//! incremental parsing and rejections.

use std::net::SocketAddr;

use fulcrum_wire::proxy_protocol::{
    Error, Header, Transport, V1_MAX_LEN, V2_SIGNATURE, Version, encode_v1, encode_v2,
    encode_v2_local, parse,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn complete(buf: &[u8]) -> (Header, usize) {
    match parse(buf) {
        Ok(Some(done)) => done,
        other => panic!("expected a complete header for {buf:?}, got {other:?}"),
    }
}

fn invalid(buf: &[u8]) {
    match parse(buf) {
        Err(Error::Invalid(_)) => {}
        other => panic!("expected Invalid for {buf:?}, got {other:?}"),
    }
}

/// Every strict prefix is "read more", the whole parses, and payload after
/// it is not consumed.
fn check_incremental(header: &[u8]) -> Header {
    for i in 0..header.len() {
        assert_eq!(
            parse(&header[..i]),
            Ok(None),
            "prefix of {i} bytes of {header:?}"
        );
    }
    let (parsed, consumed) = complete(header);
    assert_eq!(consumed, header.len());
    let mut with_payload = header.to_vec();
    with_payload.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (again, consumed) = complete(&with_payload);
    assert_eq!(consumed, header.len());
    assert_eq!(again, parsed);
    parsed
}

fn v2(ver_cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

#[test]
fn signature_is_the_specs() {
    assert_eq!(
        V2_SIGNATURE,
        [
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
        ]
    );
}

#[test]
fn v1_spec_examples() {
    let h = check_incremental(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    assert_eq!(h.version, Version::V1);
    assert!(!h.local);
    assert_eq!(h.transport, Some(Transport::Stream));
    assert_eq!(
        h.addresses,
        Some((sa("192.168.0.1:56324"), sa("192.168.0.11:443")))
    );
    assert!(h.tlvs.is_empty());

    let h = check_incremental(b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
    assert_eq!(
        h.addresses,
        Some((sa("255.255.255.255:65535"), sa("255.255.255.255:65535")))
    );

    let max6 = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(max6.len(), 104);
    let h = check_incremental(max6);
    let all = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
    assert_eq!(h.addresses, Some((sa(all), sa(all))));

    let h = check_incremental(b"PROXY TCP6 2001:db8::1 ::1 0 8080\r\n");
    assert_eq!(h.addresses, Some((sa("[2001:db8::1]:0"), sa("[::1]:8080"))));
}

#[test]
fn v1_unknown_is_local() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
          ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        b"PROXY UNKNOWN whatever the sender likes\r\n",
    ] {
        let h = check_incremental(line);
        assert_eq!(h.version, Version::V1);
        assert!(h.local);
        assert_eq!(h.transport, None);
        assert_eq!(h.addresses, None);
    }
    // The spec's worst case is exactly the limit.
    let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                    ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), V1_MAX_LEN);
}

#[test]
fn v1_length_limit() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_LEN - 2, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(complete(&line).1, V1_MAX_LEN);

    // 106 bytes without CRLF may still end with one.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(V1_MAX_LEN - 1, b'x');
    assert_eq!(parse(&long), Ok(None));
    // 107 without CRLF cannot.
    long.push(b'x');
    invalid(&long);
    // CR as the 107th byte would put LF at 108.
    long.pop();
    long.push(b'\r');
    invalid(&long);
    long.push(b'\n');
    assert_eq!(long.len(), V1_MAX_LEN + 1);
    invalid(&long);
    long.extend_from_slice(&[b'x'; 50]);
    invalid(&long);
}

#[test]
fn v1_rejections() {
    for line in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 ２\r\n".as_bytes(),
    ] {
        invalid(line);
    }
}

#[test]
fn not_proxy_protocol_is_refused_from_the_first_bytes() {
    for input in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"G",
        b"\x16\x03\x01",
        b"PROXZ",
        b"proxy ",
        b"\r\n\r\n\x00\r\nQUIT\r",
        b"\r\n\r\n\x01",
        b"\n",
        b"PROXY\r\n",
    ] {
        assert_eq!(parse(input), Err(Error::NotProxyProtocol), "{input:?}");
    }
    assert_eq!(parse(b""), Ok(None));
    assert_eq!(parse(b"P"), Ok(None));
    assert_eq!(parse(b"\r"), Ok(None));
    assert!(
        Error::NotProxyProtocol
            .to_string()
            .contains("PROXY protocol")
    );
    assert!(Error::Invalid("x").to_string().contains("malformed"));
}

#[test]
fn v2_tcp4_by_hand() {
    // 192.168.0.1:56324 -> 192.168.0.11:443, laid out as in spec section 2.2.
    let header = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
        0x21, // version 2, PROXY
        0x11, // AF_INET, STREAM
        0x00, 0x0C, // 12 bytes follow
        192, 168, 0, 1, // source address
        192, 168, 0, 11, // destination address
        0xDC, 0x04, // source port 56324
        0x01, 0xBB, // destination port 443
    ];
    let h = check_incremental(&header);
    assert_eq!(h.version, Version::V2);
    assert!(!h.local);
    assert_eq!(h.transport, Some(Transport::Stream));
    assert_eq!(
        h.addresses,
        Some((sa("192.168.0.1:56324"), sa("192.168.0.11:443")))
    );
    assert!(h.tlvs.is_empty());
    assert_eq!(
        encode_v2(
            sa("192.168.0.1:56324"),
            sa("192.168.0.11:443"),
            Transport::Stream
        ),
        header
    );
}

#[test]
fn v2_udp6_by_hand() {
    let mut block = Vec::new();
    block.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    block.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    block.extend_from_slice(&53u16.to_be_bytes());
    block.extend_from_slice(&5353u16.to_be_bytes());
    let header = v2(0x21, 0x22, &block);
    assert_eq!(header.len(), 16 + 36);
    let h = check_incremental(&header);
    assert_eq!(h.transport, Some(Transport::Datagram));
    assert_eq!(
        h.addresses,
        Some((sa("[2001:db8::1]:53"), sa("[2001:db8::2]:5353")))
    );
    assert_eq!(
        encode_v2(
            sa("[2001:db8::1]:53"),
            sa("[2001:db8::2]:5353"),
            Transport::Datagram
        ),
        header
    );
}

#[test]
fn v2_tlvs_after_addresses() {
    let mut block = vec![10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x50];
    block.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // PP2_TYPE_ALPN
    block.extend_from_slice(&[0x04, 0x00, 0x00]); // PP2_TYPE_NOOP, empty
    block.extend_from_slice(&[0x02, 0x00, 0x0B]); // PP2_TYPE_AUTHORITY
    block.extend_from_slice(b"example.com");
    let h = check_incremental(&v2(0x21, 0x11, &block));
    assert_eq!(h.addresses, Some((sa("10.0.0.1:12345"), sa("10.0.0.2:80"))));
    assert_eq!(
        h.tlvs,
        vec![
            (0x01, b"h2".to_vec()),
            (0x04, Vec::new()),
            (0x02, b"example.com".to_vec())
        ]
    );
}

#[test]
fn v2_local_unspec_unix() {
    let local = encode_v2_local();
    assert_eq!(local, v2(0x20, 0x00, &[]));
    let h = check_incremental(&local);
    assert!(h.local);
    assert_eq!((h.transport, h.addresses), (None, None));

    // LOCAL with addresses present: they are ignored, TLVs still read.
    let mut block = vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
    block.extend_from_slice(&[0xE0, 0x00, 0x01, 0x99]);
    let h = check_incremental(&v2(0x20, 0x11, &block));
    assert!(h.local);
    assert_eq!(h.addresses, None);
    assert_eq!(h.tlvs, vec![(0xE0, vec![0x99])]);
    // LOCAL ignores the family entirely, even an unknown one.
    assert!(check_incremental(&v2(0x20, 0xFF, &[1, 2, 3])).local);

    // PROXY over AF_UNSPEC: no addresses, but not local.
    let h = check_incremental(&v2(0x21, 0x00, &[]));
    assert!(!h.local);
    assert_eq!((h.transport, h.addresses), (None, None));

    // AF_UNIX: 216 bytes of paths, no socket addresses.
    let mut paths = vec![0u8; 216];
    paths[..9].copy_from_slice(b"/tmp/a.sk");
    for fam in [0x31, 0x32] {
        let h = check_incremental(&v2(0x21, fam, &paths));
        assert!(!h.local);
        assert_eq!((h.transport, h.addresses), (None, None));
    }
}

#[test]
fn v2_rejections() {
    let addr4 = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
    // Version 1 and 3 are refused as soon as byte 13 arrives.
    for ver in [0x11, 0x31, 0x01, 0xF1] {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(ver);
        invalid(&h);
        invalid(&v2(ver, 0x11, &addr4));
    }
    // Unknown commands.
    for cmd in [0x22, 0x2F] {
        invalid(&v2(cmd, 0x11, &addr4));
    }
    // Unknown family/transport with PROXY, refused at byte 14.
    for fam in [0x10, 0x13, 0x20, 0x33, 0x41, 0x01] {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, fam]);
        invalid(&h);
    }
    // Address block shorter than the family needs.
    invalid(&v2(0x21, 0x11, &addr4[..11]));
    invalid(&v2(0x21, 0x21, &[0; 35]));
    invalid(&v2(0x21, 0x31, &[0; 215]));
    // Truncated TLVs.
    let mut block = addr4.to_vec();
    block.extend_from_slice(&[0x01, 0x00]);
    invalid(&v2(0x21, 0x11, &block));
    block.extend_from_slice(&[0x05, b'h', b'2']);
    invalid(&v2(0x21, 0x11, &block));
}

#[test]
fn v2_length_is_honoured_and_max_length_waits() {
    // Announced 65535 bytes but only a few present: read more, nothing allocated.
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    h.extend_from_slice(&[0; 100]);
    assert_eq!(parse(&h), Ok(None));
}

#[test]
fn round_trips() {
    let pairs = [
        ("192.0.2.1:1234", "198.51.100.7:443"),
        ("0.0.0.0:0", "255.255.255.255:65535"),
        ("[2001:db8::1]:1234", "[2001:db8::2]:443"),
        ("[::]:0", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
        ("[::ffff:192.0.2.1]:1", "[::1]:2"),
    ];
    for (s, d) in pairs {
        let (s, d) = (sa(s), sa(d));
        let h = check_incremental(&encode_v1(s, d));
        assert_eq!((h.version, h.addresses), (Version::V1, Some((s, d))));
        for t in [Transport::Stream, Transport::Datagram] {
            let h = check_incremental(&encode_v2(s, d, t));
            assert_eq!(h.version, Version::V2);
            assert_eq!(h.addresses, Some((s, d)));
            assert_eq!(h.transport, Some(t));
        }
    }
    // Mixed families become TCP6 / AF_INET6 with the IPv4 side v4-mapped.
    let (s, d) = (sa("192.0.2.1:1234"), sa("[2001:db8::2]:443"));
    let mapped = sa("[::ffff:192.0.2.1]:1234");
    let v1 = encode_v1(s, d);
    assert!(v1.starts_with(b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1234 443\r\n"));
    assert_eq!(complete(&v1).0.addresses, Some((mapped, d)));
    let v2h = encode_v2(s, d, Transport::Stream);
    assert_eq!(v2h[13], 0x21);
    assert_eq!(complete(&v2h).0.addresses, Some((mapped, d)));
    let v2h = encode_v2(d, s, Transport::Stream);
    assert_eq!(
        complete(&v2h).0.addresses,
        Some((d, sa("[::ffff:192.0.2.1]:1234")))
    );
}
