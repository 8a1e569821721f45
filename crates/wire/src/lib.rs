//! Parsers of the first bytes a fulcrum listener reads from the network.
//!
//! * [`proxy_protocol`]: the HAProxy PROXY protocol header (v1 text, v2
//!   binary) a load balancer in front of fulcrum sends to carry the real
//!   client address.
//! * [`client_hello`]: the TLS ClientHello, inspected (not consumed) to route
//!   TLS passthrough connections by SNI and ALPN.
//!
//! The contract, and why:
//!
//! * **Pure.** Functions from `&[u8]` to a result: no I/O, no sockets, no
//!   clock, no dependencies. The listeners own the reading and call a parser
//!   again with the bytes so far, so every parser answers "need more"
//!   (`Ok(None)`) for a valid prefix and fails as early as the bytes allow.
//!   Being pure is what makes them fuzzable (see `fuzz/` at the workspace
//!   root) and lets the TCP, HTTP and TLS listeners share one implementation.
//! * **Total.** These bytes come from anyone on the network, so no input may
//!   panic, and nothing is allocated in proportion to a length field before
//!   the bytes it announces have actually arrived.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client_hello;
pub mod proxy_protocol;
