//! A poor man's fuzzer that runs on stable in `cargo test`: deterministic
//! pseudo-random inputs and mutations of valid inputs, checking that the
//! parsers never panic and keep their promises. The real fuzz targets live
//! in `fuzz/` at the workspace root and need nightly.

mod support;

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use fulcrum_wire::{client_hello, proxy_protocol};
use proxy_protocol::{Transport, V2_SIGNATURE};
use support::{HelloBuilder, openssl_hello, records};

const ITERATIONS: usize = 200_000;

/// splitmix64: tiny, fixed seed, same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// Random bytes, sometimes after a prefix that gets past the first checks.
fn random_input(rng: &mut Rng, prefixes: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.below(2) == 0 {
        out.extend_from_slice(prefixes[rng.below(prefixes.len())]);
    }
    let n = rng.below(300);
    out.extend(rng.bytes(n));
    out
}

/// One to four random edits of `seed`; `length_at` lists offsets of length
/// fields worth overwriting with extreme values.
fn mutate(rng: &mut Rng, seed: &[u8], length_at: &[usize]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 | 4 if !b.is_empty() => {
                let at = if rng.below(2) == 0 && !length_at.is_empty() {
                    length_at[rng.below(length_at.len())]
                } else {
                    rng.below(b.len())
                };
                let value: [u8; 2] = match rng.below(5) {
                    0 => [0, 0],
                    1 => [0xFF, 0xFF],
                    2 => [0, 1],
                    3 => [0xFF, 0],
                    _ => [rng.byte(), rng.byte()],
                };
                for (k, v) in value.iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + k) {
                        *slot = *v;
                    }
                }
            }
            5 => {
                let at = rng.below(b.len() + 1);
                let n = 1 + rng.below(8);
                let extra = rng.bytes(n);
                b.splice(at..at, extra);
            }
            6 if !b.is_empty() => {
                let at = rng.below(b.len());
                let n = 1 + rng.below(16);
                b.drain(at..(at + n).min(b.len()));
            }
            _ => {
                let n = rng.below(64);
                b.extend(rng.bytes(n));
            }
        }
    }
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `check`, turning a panic into one that names the input.
fn guarded(input: &[u8], check: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(check)) {
        eprintln!("input that panicked: {}", hex(input));
        resume_unwind(panic);
    }
}

fn check_proxy(input: &[u8]) {
    guarded(input, || {
        let Ok(Some((header, consumed))) = proxy_protocol::parse(input) else {
            return;
        };
        assert!(consumed <= input.len());
        // The header depends only on the bytes it consumed.
        assert_eq!(
            proxy_protocol::parse(&input[..consumed]),
            Ok(Some((header.clone(), consumed)))
        );
        if let Some((src, dst)) = header.addresses {
            let v1 = proxy_protocol::encode_v1(src, dst);
            let again = proxy_protocol::parse(&v1).map(|h| h.map(|(h, n)| (h.addresses, n)));
            assert_eq!(again, Ok(Some((Some((src, dst)), v1.len()))));
            let t = header.transport.unwrap_or(Transport::Stream);
            let v2 = proxy_protocol::encode_v2(src, dst, t);
            let again = proxy_protocol::parse(&v2).map(|h| h.map(|(h, n)| (h.addresses, n)));
            assert_eq!(again, Ok(Some((Some((src, dst)), v2.len()))));
        }
    });
}

fn check_hello(input: &[u8]) {
    guarded(input, || {
        if let Ok(Some(hello)) = client_hello::parse(input) {
            // More bytes after a complete hello change nothing.
            let mut more = input.to_vec();
            more.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00]);
            assert_eq!(client_hello::parse(&more), Ok(Some(hello)));
        }
    });
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn proxy_protocol_survives_random_and_mutated_input() {
    let v4 = (sa("192.0.2.1:1234"), sa("198.51.100.7:443"));
    let v6 = (sa("[2001:db8::1]:1"), sa("[2001:db8::2]:65535"));
    let mut with_tlvs = V2_SIGNATURE.to_vec();
    with_tlvs.extend_from_slice(&[0x21, 0x11, 0x00, 0x15, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    with_tlvs.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x02, 0x00, 0x01, b'x']);
    let seeds = [
        proxy_protocol::encode_v1(v4.0, v4.1),
        proxy_protocol::encode_v1(v6.0, v6.1),
        proxy_protocol::encode_v1(v4.0, v6.1),
        proxy_protocol::encode_v2(v4.0, v4.1, Transport::Stream),
        proxy_protocol::encode_v2(v6.0, v6.1, Transport::Datagram),
        proxy_protocol::encode_v2(v6.0, v4.1, Transport::Stream),
        proxy_protocol::encode_v2_local(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        with_tlvs,
    ];
    for seed in &seeds {
        assert!(matches!(proxy_protocol::parse(seed), Ok(Some(_))));
    }
    let prefixes: [&[u8]; 4] = [b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", &V2_SIGNATURE];
    let mut rng = Rng(0x5EED_0001);
    for i in 0..ITERATIONS {
        let input = if i % 4 == 0 {
            random_input(&mut rng, &prefixes)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed, &[12, 13, 14, 15, 28, 31])
        };
        check_proxy(&input);
    }
}

#[test]
fn client_hello_survives_random_and_mutated_input() {
    let real = openssl_hello();
    let built = HelloBuilder::default()
        .sni(b"Example.COM")
        .alpn(&[b"h2", b"http/1.1"])
        .versions(&[0x0304, 0x0303])
        .handshake();
    let seeds = [
        real.clone(),
        records(&real[5..], &[7, 100]),
        records(&built, &[]),
        records(&built, &[30]),
        HelloBuilder {
            extensions: None,
            ..HelloBuilder::default()
        }
        .record(),
    ];
    for seed in &seeds {
        assert!(matches!(client_hello::parse(seed), Ok(Some(_))));
    }
    let prefixes: [&[u8]; 3] = [
        &[0x16, 0x03, 0x01],
        &[0x16, 0x03, 0x01, 0x00, 0x40, 0x01],
        &[0x16],
    ];
    let mut rng = Rng(0x5EED_0002);
    for i in 0..ITERATIONS {
        let input = if i % 4 == 0 {
            random_input(&mut rng, &prefixes)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed, &[3, 6, 7, 8, 9, 43, 44, 76, 77])
        };
        check_hello(&input);
    }
}
