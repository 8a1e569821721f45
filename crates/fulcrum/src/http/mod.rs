//! The L7 data path: downstream connections (`server`), the per-request proxy
//! logic (`proxy`), header hygiene (`headers`), local error replies (`error`),
//! upstream pools (`upstream`) and the response body that carries accounting
//! (`body`), and WebSockets (`websocket`).

pub mod activity;
pub mod attempt;
pub mod body;
pub mod conformance;
pub mod error;
pub mod headers;
pub mod proxy;
pub mod retry;
pub mod server;
pub mod streams;
pub mod upstream;
pub mod websocket;
