//! ClientHello inspection: a real captured hello, hand-built ones, every
//! split point, fragmentation across records, limits and rejections.

mod support;

use fulcrum_wire::client_hello::{ClientHello, Error, MAX_CLIENT_HELLO_LEN, parse};
use support::{HelloBuilder, handshake_of, openssl_hello, records};

fn complete(buf: &[u8]) -> ClientHello {
    match parse(buf) {
        Ok(Some(hello)) => hello,
        other => panic!("expected a complete ClientHello, got {other:?}"),
    }
}

fn invalid(buf: &[u8]) {
    match parse(buf) {
        Err(Error::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Every strict prefix is "read more"; the whole parses.
fn check_every_split(buf: &[u8]) -> ClientHello {
    for i in 0..buf.len() {
        assert_eq!(
            parse(&buf[..i]),
            Ok(None),
            "prefix of {i} of {} bytes",
            buf.len()
        );
    }
    complete(buf)
}

#[test]
fn real_openssl_hello() {
    let buf = openssl_hello();
    let hello = check_every_split(&buf);
    assert_eq!(hello.server_name.as_deref(), Some("example.com"));
    assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(hello.legacy_version, 0x0303);
    assert_eq!(
        hello.supported_versions,
        vec![0x0304, 0x0303, 0x0302, 0x0301]
    );

    // Whatever follows the hello (more records, or application data the
    // client sent early) does not matter.
    let mut more = buf.clone();
    more.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
    assert_eq!(complete(&more), hello);
}

#[test]
fn real_hello_refragmented() {
    let buf = openssl_hello();
    let handshake = &buf[5..];
    for sizes in [&[1][..], &[4], &[100], &[1, 1, 1], &[3, 200], &[150, 150]] {
        let split = records(handshake, sizes);
        assert_eq!(split.len(), buf.len() + 5 * sizes.len());
        assert_eq!(check_every_split(&split), complete(&buf), "sizes {sizes:?}");
    }
}

#[test]
fn built_hello_in_one_two_and_three_records() {
    let b = HelloBuilder::default()
        .ext(0xff01, vec![0]) // renegotiation_info, skipped
        .sni(b"WWW.Example.COM")
        .alpn(&[b"h2", b"http/1.1"])
        .versions(&[0x0304, 0x0303])
        .ext(0x0a0a, Vec::new()); // GREASE, skipped
    let expected = ClientHello {
        server_name: Some("www.example.com".into()),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        legacy_version: 0x0303,
        supported_versions: vec![0x0304, 0x0303],
    };
    let hs = b.handshake();
    assert_eq!(check_every_split(&b.record()), expected);
    assert_eq!(check_every_split(&records(&hs, &[hs.len() / 2])), expected);
    assert_eq!(check_every_split(&records(&hs, &[2, 40])), expected);
}

#[test]
fn minimal_hellos() {
    let no_ext = HelloBuilder {
        extensions: None,
        session_id: Vec::new(),
        ..HelloBuilder::default()
    };
    let hello = check_every_split(&no_ext.record());
    assert_eq!(
        hello,
        ClientHello {
            server_name: None,
            alpn: Vec::new(),
            legacy_version: 0x0303,
            supported_versions: Vec::new(),
        }
    );
    // An empty extensions block is also fine.
    assert_eq!(
        complete(&HelloBuilder::default().record()).server_name,
        None
    );
    let old = HelloBuilder {
        legacy_version: 0x0301,
        ..HelloBuilder::default()
    };
    assert_eq!(complete(&old.record()).legacy_version, 0x0301);
}

#[test]
fn sni_details() {
    // The first host_name counts; other name types are skipped.
    let mut list = vec![7, 0, 3, b'a', b'b', b'c']; // unknown name type 7
    list.extend_from_slice(&[0, 0, 5]);
    list.extend_from_slice(b"First");
    list.extend_from_slice(&[0, 0, 6]);
    list.extend_from_slice(b"second");
    let mut data = u16::try_from(list.len()).unwrap().to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    let b = HelloBuilder::default().ext(0, data);
    assert_eq!(complete(&b.record()).server_name.as_deref(), Some("first"));

    // Only other name types: no SNI.
    let b = HelloBuilder::default().ext(0, vec![0, 4, 7, 0, 1, b'x']);
    assert_eq!(complete(&b.record()).server_name, None);

    invalid(&HelloBuilder::default().sni(b"").record());
    invalid(&HelloBuilder::default().sni(b"exa\0mple.com").record());
    invalid(
        &HelloBuilder::default()
            .sni("exämple.com".as_bytes())
            .record(),
    );
    invalid(&HelloBuilder::default().ext(0, Vec::new()).record());
    invalid(&HelloBuilder::default().ext(0, vec![0, 0]).record());
    invalid(
        &HelloBuilder::default()
            .ext(0, vec![0, 5, 0, 0, 9, b'a'])
            .record(),
    );
    invalid(&HelloBuilder::default().ext(0, vec![0, 1, 0, 0]).record());
    invalid(
        &HelloBuilder::default()
            .sni(b"a.example")
            .sni(b"b.example")
            .record(),
    );
}

#[test]
fn body_rejections() {
    let d = HelloBuilder::default;
    invalid(
        &HelloBuilder {
            session_id: vec![0; 33],
            ..d()
        }
        .record(),
    );
    invalid(
        &HelloBuilder {
            cipher_suites: Vec::new(),
            ..d()
        }
        .record(),
    );
    invalid(
        &HelloBuilder {
            compression: Vec::new(),
            ..d()
        }
        .record(),
    );
    invalid(&d().alpn(&[]).record());
    invalid(&d().alpn(&[b"h2", b""]).record());
    invalid(&d().alpn(&[b"h2"]).alpn(&[b"h2"]).record());
    invalid(&d().versions(&[]).record());
    invalid(&d().ext(43, vec![3, 3, 4, 3]).record());
    invalid(&d().versions(&[0x0304]).versions(&[0x0304]).record());

    // Odd cipher_suites length, by hand.
    let mut body = d().body();
    body[2 + 32 + 1 + 32 + 1] = 5;
    invalid(&records(&handshake_of(&body), &[]));
    // Extensions block longer than what follows, and bytes after it.
    let mut body = d().sni(b"a").body();
    let ext_len_at = body.len() - 12; // block length, then one 10-byte extension
    body[ext_len_at + 1] += 1;
    invalid(&records(&handshake_of(&body), &[]));
    let mut body = d().sni(b"a").body();
    body.push(0);
    invalid(&records(&handshake_of(&body), &[]));
    // Body shorter than a ClientHello.
    invalid(&records(&handshake_of(&[3, 3, 0]), &[]));
    invalid(&records(&handshake_of(&[]), &[]));
}

#[test]
fn record_level_rejections() {
    let hs = HelloBuilder::default().sni(b"a.example").handshake();
    // A non-handshake record in the middle of the hello.
    let mut buf = records(&hs[..10], &[]);
    buf.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00]);
    invalid(&buf);
    // A second record that is not TLS.
    let mut buf = records(&hs[..10], &[]);
    buf.extend_from_slice(&[0x16, 0x02, 0x00]);
    invalid(&buf);
    // Empty handshake record.
    invalid(&[0x16, 0x03, 0x01, 0x00, 0x00]);
    // A different handshake message first.
    assert_eq!(
        parse(&[0x16, 0x03, 0x03, 0x00, 0x04, 0x02]),
        Err(Error::NotClientHello)
    );
    let mut server_hello = hs.clone();
    server_hello[0] = 2;
    assert_eq!(
        parse(&records(&server_hello, &[])),
        Err(Error::NotClientHello)
    );
}

#[test]
fn absurd_lengths_are_too_large_immediately() {
    // Handshake length 0xFFFFFF, nothing else present.
    assert_eq!(
        parse(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xFF, 0xFF, 0xFF]),
        Err(Error::TooLarge)
    );
    // Just over the limit.
    let over = u32::try_from(MAX_CLIENT_HELLO_LEN + 1)
        .unwrap()
        .to_be_bytes();
    assert_eq!(
        parse(&[
            0x16, 0x03, 0x01, 0x00, 0x04, 0x01, over[1], over[2], over[3]
        ]),
        Err(Error::TooLarge)
    );
    // At the limit: wait for more.
    let at = u32::try_from(MAX_CLIENT_HELLO_LEN).unwrap().to_be_bytes();
    assert_eq!(
        parse(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01, at[1], at[2], at[3]]),
        Ok(None)
    );
    // Record length 0xFFFF, refused from the record header alone.
    assert_eq!(parse(&[0x16, 0x03, 0x01, 0xFF, 0xFF]), Err(Error::TooLarge));
    assert_eq!(parse(&[0x16, 0x03, 0x01, 0x41, 0x01]), Err(Error::TooLarge));
    assert_eq!(parse(&[0x16, 0x03, 0x01, 0x41, 0x00]), Ok(None));
    // Handshake length split across records still checked.
    let buf = [
        0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0xFF, 0x16, 0x03, 0x01, 0x00, 0x02, 0xFF, 0xFF,
    ];
    assert_eq!(parse(&buf), Err(Error::TooLarge));
}

#[test]
fn not_tls_from_the_first_byte() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Error::NotTls));
    assert_eq!(parse(b"G"), Err(Error::NotTls));
    assert_eq!(parse(b"PROXY TCP4"), Err(Error::NotTls));
    // SSLv2-compatible hello.
    assert_eq!(parse(&[0x80, 0x2e, 0x01, 0x03, 0x01]), Err(Error::NotTls));
    // Handshake type but record version major not 3.
    assert_eq!(parse(&[0x16, 0x02]), Err(Error::NotTls));
    assert_eq!(parse(&[0x16, 0x30, 0x01]), Err(Error::NotTls));
    assert_eq!(parse(b""), Ok(None));
    assert_eq!(parse(&[0x16]), Ok(None));
    assert!(Error::NotTls.to_string().contains("TLS"));
    assert!(Error::TooLarge.to_string().contains("65536"));
}
