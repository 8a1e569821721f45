//! Per-connection parse cost: every tls_passthrough connection parses its
//! ClientHello, and every connection from a PROXY-protocol tier its header.
//! `cargo bench -p fulcrum-wire --bench parse`

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use fulcrum_wire::{client_hello, proxy_protocol};

#[path = "../tests/support/mod.rs"]
mod support;

fn parse(c: &mut Criterion) {
    let hello = support::openssl_hello();
    c.bench_function("client_hello/openssl_s_client", |b| {
        b.iter(|| client_hello::parse(black_box(&hello)))
    });
    let src: SocketAddr = "192.0.2.10:40000"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let dst: SocketAddr = "[2001:db8::1]:443"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let v1 = proxy_protocol::encode_v1(src, dst);
    let v2 = proxy_protocol::encode_v2(src, dst, proxy_protocol::Transport::Stream);
    c.bench_function("proxy_protocol/v1_tcp6", |b| {
        b.iter(|| proxy_protocol::parse(black_box(&v1)))
    });
    c.bench_function("proxy_protocol/v2_tcp6", |b| {
        b.iter(|| proxy_protocol::parse(black_box(&v2)))
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
