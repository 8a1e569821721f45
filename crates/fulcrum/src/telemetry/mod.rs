//! Metrics and logging.

pub mod histogram;
pub mod logging;
pub mod metrics;
