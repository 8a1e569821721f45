//! The fuzz targets' properties on stable, in `cargo test`: deterministic
//! mutations of valid HTTP/1.1 response heads and chunked bodies (what an
//! origin sends fulcrum's upstream client), checked by the same functions
//! the fuzz targets in `fuzz/` call (`codec::properties`). A fixed seed, so
//! a failure reproduces; the fuzzers explore further.

use fulcrum::http::upstream::codec::properties;

const ITERATIONS: usize = 400_000;

const HEADS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
];

const BODIES: &[&[u8]] = &[
    b"5\r\nhello\r\n0\r\n\r\n",
    b"3;ext=\"a;b\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
    b"2\r\nok\r\n0\r\ngrpc-status: 0\r\nx-t: 1\r\n\r\n",
    b"0\r\n\r\n",
    b"a\r\n0123456789\r\n0;last\r\nx: y\r\n\r\n",
];

/// One to four random edits of `seed`, biased toward the bytes HTTP's
/// grammar turns on.
fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\r\n:; \t0\x00\x7f\xffaF-";
    let mut b = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=b.len());
        match rng.u8(0..7) {
            0 if at < b.len() => b[at] = rng.u8(..),
            1 if at < b.len() => b[at] = INTERESTING[rng.usize(..INTERESTING.len())],
            2 => b.insert(at, INTERESTING[rng.usize(..INTERESTING.len())]),
            3 if at < b.len() => {
                b.remove(at);
            }
            4 => b.truncate(at),
            5 => {
                // Repeat a slice: long lines, duplicated fields and chunks.
                let end = rng.usize(at..=b.len().min(at + 40));
                let piece = b[at..end].to_vec();
                for _ in 0..rng.usize(1..50) {
                    b.splice(at..at, piece.iter().copied());
                }
            }
            _ => b.splice(at..at, b"\r\n".iter().copied()).for_each(drop),
        }
    }
    b
}

#[test]
fn response_heads_keep_their_promises_under_mutation() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0001);
    for seed in HEADS {
        properties::response_head(seed);
    }
    for _ in 0..ITERATIONS {
        let seed = HEADS[rng.usize(..HEADS.len())];
        properties::response_head(&mutate(&mut rng, seed));
    }
    // Random bytes after a plausible status line.
    for _ in 0..ITERATIONS / 10 {
        let mut data = b"HTTP/1.1 200 OK\r\n".to_vec();
        let n = rng.usize(0..300);
        data.extend((0..n).map(|_| rng.u8(..)));
        properties::response_head(&data);
    }
}

#[test]
fn chunked_bodies_decode_the_same_however_they_are_split() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0002);
    for seed in BODIES {
        let whole = properties::decode_chunked(&[seed]);
        assert!(
            matches!(whole.end, properties::End::Done(_)),
            "a valid seed did not decode: {whole:?}"
        );
        for split in 0..=seed.len() {
            properties::chunked(seed, split);
        }
    }
    for _ in 0..ITERATIONS {
        let seed = BODIES[rng.usize(..BODIES.len())];
        let data = mutate(&mut rng, seed);
        let split = rng.usize(0..=data.len());
        properties::chunked(&data, split);
    }
}
