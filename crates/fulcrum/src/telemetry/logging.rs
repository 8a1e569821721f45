//! Structured logs with `tracing`: `RUST_LOG` wins over the config's
//! `runtime.log_level`, which wins over the default `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(config_level: Option<&str>) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| config_level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    // A second init (tests, demo after run) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
