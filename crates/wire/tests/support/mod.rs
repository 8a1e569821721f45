//! Shared by the integration tests: a real captured ClientHello and a small
//! builder for hand-made ones.
#![allow(dead_code)]

/// A ClientHello captured from
/// `openssl s_client -connect 127.0.0.1:PORT -servername example.com -alpn h2,http/1.1`
/// (OpenSSL 3.0.19): one record, SNI `example.com`, ALPN `h2`, `http/1.1`,
/// supported_versions TLS 1.3, 1.2, 1.1, 1.0.
pub const OPENSSL_HELLO_HEX: &str = concat!(
    "160301014a010001460303247cbd6b8ee3236f2402ebea7ef0122563366c225e15725ee72bb6cf8e34bf642063ccad9b",
    "6142b706dc972b8e1904e8f118c8e4a0629057d4b627a808a8b4add3003e130213031301c02cc030009fcca9cca8ccaa",
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000bf",
    "00000010000e00000b6578616d706c652e636f6d000b000403000102000a00160014001d0017001e0019001801000101",
    "010201030104002300000010000e000c02683208687474702f312e310016000000170000000d002a0028040305030603",
    "080708080809080a080b080408050806040105010601030303010302040205020602002b000908030403030302030100",
    "2d00020101003300260024001d0020114b5ceda0c6f774e888af100851739e5982c4e95c1c1a27ec24d2b366fe096a",
);

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn openssl_hello() -> Vec<u8> {
    hex(OPENSSL_HELLO_HEX)
}

fn u16be(v: usize) -> [u8; 2] {
    u16::try_from(v).expect("fits u16").to_be_bytes()
}

/// Builds ClientHello bodies, handshake messages and records.
#[derive(Clone)]
pub struct HelloBuilder {
    pub legacy_version: u16,
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    pub compression: Vec<u8>,
    /// None: no extensions block at all.
    pub extensions: Option<Vec<(u16, Vec<u8>)>>,
}

impl Default for HelloBuilder {
    fn default() -> Self {
        HelloBuilder {
            legacy_version: 0x0303,
            session_id: vec![0xab; 32],
            cipher_suites: vec![0x1301, 0x1302, 0xc02f],
            compression: vec![0],
            extensions: Some(Vec::new()),
        }
    }
}

impl HelloBuilder {
    pub fn ext(mut self, kind: u16, data: Vec<u8>) -> Self {
        self.extensions
            .get_or_insert_with(Vec::new)
            .push((kind, data));
        self
    }

    pub fn sni(self, name: &[u8]) -> Self {
        let mut entry = vec![0u8];
        entry.extend_from_slice(&u16be(name.len()));
        entry.extend_from_slice(name);
        let mut data = u16be(entry.len()).to_vec();
        data.extend_from_slice(&entry);
        self.ext(0, data)
    }

    pub fn alpn(self, names: &[&[u8]]) -> Self {
        let mut list = Vec::new();
        for name in names {
            list.push(u8::try_from(name.len()).expect("fits u8"));
            list.extend_from_slice(name);
        }
        let mut data = u16be(list.len()).to_vec();
        data.extend_from_slice(&list);
        self.ext(16, data)
    }

    pub fn versions(self, versions: &[u16]) -> Self {
        let mut data = vec![u8::try_from(versions.len() * 2).expect("fits u8")];
        for v in versions {
            data.extend_from_slice(&v.to_be_bytes());
        }
        self.ext(43, data)
    }

    pub fn body(&self) -> Vec<u8> {
        let mut b = self.legacy_version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x5a; 32]);
        b.push(u8::try_from(self.session_id.len()).expect("fits u8"));
        b.extend_from_slice(&self.session_id);
        b.extend_from_slice(&u16be(self.cipher_suites.len() * 2));
        for c in &self.cipher_suites {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b.push(u8::try_from(self.compression.len()).expect("fits u8"));
        b.extend_from_slice(&self.compression);
        if let Some(exts) = &self.extensions {
            let mut block = Vec::new();
            for (kind, data) in exts {
                block.extend_from_slice(&kind.to_be_bytes());
                block.extend_from_slice(&u16be(data.len()));
                block.extend_from_slice(data);
            }
            b.extend_from_slice(&u16be(block.len()));
            b.extend_from_slice(&block);
        }
        b
    }

    /// Handshake message: type 1, 24-bit length, body.
    pub fn handshake(&self) -> Vec<u8> {
        handshake_of(&self.body())
    }

    /// The handshake message in one record.
    pub fn record(&self) -> Vec<u8> {
        records(&self.handshake(), &[])
    }
}

pub fn handshake_of(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("fits").to_be_bytes();
    let mut m = vec![1, len[1], len[2], len[3]];
    m.extend_from_slice(body);
    m
}

/// Splits `handshake` into handshake records: the first records carry
/// `sizes` bytes each, the last carries the rest.
pub fn records(handshake: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = handshake;
    for &n in sizes {
        let (head, tail) = rest.split_at(n);
        push_record(&mut out, head);
        rest = tail;
    }
    push_record(&mut out, rest);
    out
}

fn push_record(out: &mut Vec<u8>, fragment: &[u8]) {
    out.extend_from_slice(&[22, 3, 1]);
    out.extend_from_slice(&u16be(fragment.len()));
    out.extend_from_slice(fragment);
}
