//! XXH64, the 64-bit xxHash, ported by hand from the reference
//! implementation (Yann Collet, `xxhash.h`, and the algorithm description in
//! `doc/xxhash_spec.md` of <https://github.com/Cyan4973/xxHash>), and the
//! fixed seeds fulcrum hashes with.
//!
//! Why XXH64: it is fast on short keys such as `"10.0.0.1:8080_17"`, has good
//! avalanche, is specified byte for byte with official test vectors, and is
//! what Envoy hashes ring-hash nodes and Maglev permutations with, so the same
//! endpoint keys land in the same places.
//!
//! **Everything that several fulcrum instances must agree on** — ring nodes,
//! Maglev tables, rendezvous scores, and the request keys fed to them — is
//! hashed with [`xxh64`] and one of the seeds below. A different seed or hash
//! function would send the same request to different endpoints on different
//! instances (or versions) of a fleet, so changing any of them is a breaking
//! change; `tests/*_vectors.rs` pin the resulting tables.
//!
//! | seed                  | hashes                                          |
//! |-----------------------|-------------------------------------------------|
//! | [`REQUEST_KEY_SEED`]  | request keys (header value, client address ...) |
//! | [`RING_HASH_SEED`]    | ring nodes `"{endpoint_key}_{replica}"`         |
//! | [`MAGLEV_OFFSET_SEED`]| Maglev `offset` of an endpoint key              |
//! | [`MAGLEV_SKIP_SEED`]  | Maglev `skip` of an endpoint key                |
//! | [`RENDEZVOUS_SEED`]   | an endpoint key, giving its per-endpoint seed   |

/// Seed for hashing a request's key (see [`request_hash`]): 0, as Envoy's
/// hash policies use.
pub const REQUEST_KEY_SEED: u64 = 0;
/// Seed for ring-hash nodes: 0, as Envoy's `ring_hash` (so a node's position
/// is `xxh64("10.0.0.1:8080_3", 0)` in both).
pub const RING_HASH_SEED: u64 = 0;
/// Seed for a Maglev endpoint's offset: 0, as Envoy's `maglev`.
pub const MAGLEV_OFFSET_SEED: u64 = 0;
/// Seed for a Maglev endpoint's skip: 1, as Envoy's `maglev`.
pub const MAGLEV_SKIP_SEED: u64 = 1;
/// Seed for a rendezvous endpoint's key: 0 (there is no common reference
/// implementation to match).
pub const RENDEZVOUS_SEED: u64 = 0;

use std::net::{IpAddr, SocketAddr};

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 of `data` with `seed`: bit for bit the reference `XXH64()`
/// (`XXH64(b"abc", 0) == 0x44BC2CF5AD770999`), the canonical result of the
/// xxHash project, on every platform (input read as little-endian words).
#[must_use]
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut acc = if data.len() >= 32 {
        // Four accumulators, each fed one 8-byte lane of every 32-byte stripe.
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while let Some((stripe, tail)) = rest.split_first_chunk::<32>() {
            let (lanes, _) = stripe.as_chunks::<8>();
            for (v, lane) in v.iter_mut().zip(lanes) {
                *v = round(*v, u64::from_le_bytes(*lane));
            }
            rest = tail;
        }
        let mut acc = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for v in v {
            acc = (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4);
        }
        acc
    } else {
        seed.wrapping_add(P5)
    };
    // usize -> u64 is lossless on every supported target.
    acc = acc.wrapping_add(data.len() as u64);
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        acc ^= round(0, u64::from_le_bytes(*word));
        acc = acc.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<4>() {
        acc ^= u64::from(u32::from_le_bytes(*word)).wrapping_mul(P1);
        acc = acc.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = tail;
    }
    for &byte in rest {
        acc ^= u64::from(byte).wrapping_mul(P5);
        acc = acc.rotate_left(11).wrapping_mul(P1);
    }
    avalanche(acc)
}

/// XXH64 of the 8 little-endian bytes of `value`.
#[must_use]
pub fn xxh64_u64(value: u64, seed: u64) -> u64 {
    xxh64(&value.to_le_bytes(), seed)
}

/// The hash to pass as [`crate::PickContext::hash`] for a request whose
/// affinity key is `key` (a header value, a cookie, the client address ...):
/// `xxh64(key, REQUEST_KEY_SEED)`. Instances that hash request keys this way
/// (and build from the same endpoint keys and weights) agree on where every
/// key goes.
#[must_use]
pub fn request_hash(key: &[u8]) -> u64 {
    xxh64(key, REQUEST_KEY_SEED)
}

/// The hash of a client IP ([`request_hash`] of its octets; an IPv4-mapped
/// IPv6 address hashes as the IPv4 address, so a client hashes the same on
/// IPv4 and dual-stack sockets). HTTP `source_ip` hash policies and L4
/// `hash_key = "source_ip"` both use it.
#[must_use]
pub fn source_ip_hash(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(ip) => request_hash(&ip.octets()),
        IpAddr::V6(ip) => request_hash(&ip.octets()),
    }
}

/// The hash of an L4 flow's 5-tuple, the key Maglev and Katran hash: source
/// IP and port, destination IP and port, IP protocol number (6 TCP, 17 UDP),
/// as bytes in that order (IPs canonical as in [`source_ip_hash`], ports big
/// endian), hashed with `REQUEST_KEY_SEED`. Any instance with the same
/// endpoint set sends the same flow to the same endpoint.
#[must_use]
pub fn flow_hash(source: SocketAddr, destination: SocketAddr, protocol: u8) -> u64 {
    let mut key = [0u8; 37];
    let mut len = 0;
    for addr in [source, destination] {
        let ip_len = match addr.ip().to_canonical() {
            IpAddr::V4(ip) => {
                key[len..len + 4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                key[len..len + 16].copy_from_slice(&ip.octets());
                16
            }
        };
        len += ip_len;
        key[len..len + 2].copy_from_slice(&addr.port().to_be_bytes());
        len += 2;
    }
    key[len] = protocol;
    request_hash(&key[..=len])
}

const fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

const fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_vectors() {
        // From the xxHash project's own sanity checks and spec.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn longer_inputs_match_an_independent_implementation() {
        // Expected values computed outside this crate, by two independent
        // implementations that agree with each other: a pure-Python XXH64
        // written from `xxhash_spec.md` (`tests/vectors/xxh64.py`), and the
        // `xxhash` package from PyPI (C reference code),
        // `xxhash.xxh64_intdigest(data, seed)`. Together they cover the 32-byte stripe loop, the 8- and 4-byte tails and
        // the single-byte tail, and non-zero seeds.
        let fox = b"The quick brown fox jumps over the lazy dog"; // 43 bytes
        assert_eq!(xxh64(fox, 0), 0x0B24_2D36_1FDA_71BC);
        assert_eq!(xxh64(fox, 1), 0xDF50_91B6_DAD2_C6DB);
        let bytes: Vec<u8> = (0..100).collect();
        assert_eq!(xxh64(&bytes, 0), 0x6AC1_E580_3216_6597);
        assert_eq!(xxh64(&bytes, P1), 0x0027_8BDA_0EE3_F586);
        assert_eq!(
            xxh64(b"0123456789abcdef0123456789abcdef", 0),
            0x642A_9495_8E71_E6C5
        );
        // The shapes fulcrum actually hashes.
        assert_eq!(
            xxh64(b"10.0.0.1:8080_0", RING_HASH_SEED),
            0x23A2_9AE7_75DF_D4A3
        );
        assert_eq!(
            xxh64(b"10.0.0.1:8080", MAGLEV_SKIP_SEED),
            0x0DFC_E9EF_D349_B428
        );
    }

    #[test]
    fn u64_helper_hashes_little_endian_bytes() {
        let v = 0x0102_0304_0506_0708_u64;
        assert_eq!(xxh64_u64(v, 7), xxh64(&[8, 7, 6, 5, 4, 3, 2, 1], 7));
        assert_eq!(request_hash(b"abc"), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn flow_hashes_match_the_python_reference() {
        // tests/vectors/xxh64.py over the documented byte layout; pinned so two
        // fulcrum versions (or instances) agree on every flow's endpoint.
        let v4 = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            flow_hash(v4("192.0.2.10:40000"), v4("198.51.100.1:443"), 6),
            0x4995_7060_DEEC_B650
        );
        assert_eq!(
            flow_hash(v4("[2001:db8::7]:5353"), v4("[2001:db8::1]:53"), 17),
            0x7771_8BC3_E043_FF25
        );
        // An IPv4 client seen on a dual-stack socket hashes as itself.
        assert_eq!(
            flow_hash(v4("[::ffff:192.0.2.10]:40000"), v4("198.51.100.1:443"), 6),
            0x4995_7060_DEEC_B650
        );
        assert_eq!(
            source_ip_hash("192.0.2.10".parse().unwrap()),
            0x22A2_51FD_A960_E3F1
        );
        assert_eq!(
            source_ip_hash("::ffff:192.0.2.10".parse().unwrap()),
            0x22A2_51FD_A960_E3F1
        );
    }
}
