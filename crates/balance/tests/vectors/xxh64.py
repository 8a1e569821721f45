# Pure-python XXH64 written from the xxHash spec (doc/xxhash_spec.md), to cross-check fulcrum's Rust port.
M = (1 << 64) - 1
P1 = 0x9E3779B185EBCA87; P2 = 0xC2B2AE3D27D4EB4F; P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63; P5 = 0x27D4EB2F165667C5
def rotl(x, r): return ((x << r) | (x >> (64 - r))) & M
def rnd(acc, lane): acc = (acc + lane * P2) & M; acc = rotl(acc, 31); return (acc * P1) & M
def merge(acc, v): acc ^= rnd(0, v); return (acc * P1 + P4) & M
def xxh64(data: bytes, seed: int = 0) -> int:
    n = len(data); i = 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed & M, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd(v[k], int.from_bytes(data[i + 8*k:i + 8*k + 8], 'little'))
            i += 32
        acc = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4): acc = merge(acc, v[k])
    else:
        acc = (seed + P5) & M
    acc = (acc + n) & M
    while i + 8 <= n:
        acc ^= rnd(0, int.from_bytes(data[i:i+8], 'little')); acc = (rotl(acc, 27) * P1 + P4) & M; i += 8
    if i + 4 <= n:
        acc ^= (int.from_bytes(data[i:i+4], 'little') * P1) & M; acc = (rotl(acc, 23) * P2 + P3) & M; i += 4
    while i < n:
        acc ^= (data[i] * P5) & M; acc = (rotl(acc, 11) * P1) & M; i += 1
    acc ^= acc >> 33; acc = (acc * P2) & M; acc ^= acc >> 29; acc = (acc * P3) & M; acc ^= acc >> 32
    return acc
