//! fulcrum: an L4/L7 load balancer.
//!
//! Data flows one way: listener -> route -> cluster -> balancer -> endpoint.
//! See `docs/architecture.md` for the map of modules.

pub mod admin;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod http;
pub mod l4;
pub mod limit;
pub mod listener;
pub mod route;
pub mod runtime;
pub mod simulate;
pub mod snapshot;
pub mod telemetry;
pub mod tls;
pub mod upgrade;
pub mod watch;
