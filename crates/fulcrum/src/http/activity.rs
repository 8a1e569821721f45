//! Per-connection activity: how many requests are in flight and when the last
//! one ended, so an idle connection (no request in flight for `idle_timeout`)
//! can be closed, as Envoy's `idle_timeout` and HAProxy's
//! `timeout http-keep-alive` do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// A request was ever started on the connection.
    started: AtomicBool,
    /// Milliseconds since `born` when the last request ended.
    last_end_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    pub fn new() -> Self {
        Self {
            born: crate::clock::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_end_ms: AtomicU64::new(0),
        }
    }

    /// Marks a request (stream) as started; it ends when the guard drops.
    pub fn start(self: &Arc<Self>) -> StreamGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.store(true, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Whether the connection has carried a request yet.
    pub fn started_any(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// How long the connection has had no request in flight; `None` while busy.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
        Some(crate::clock::elapsed(self.born).saturating_sub(last))
    }

    /// Resolves once the connection has been idle for `timeout`. Wakes about
    /// once per `timeout`, not per request.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= timeout => return,
                Some(idle) => timeout - idle,
                None => timeout,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let now = crate::clock::elapsed(self.0.born).as_millis() as u64;
        self.0.last_end_ms.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_only_counts_time_without_requests() {
        let a = Arc::new(Activity::new());
        let first = a.start();
        let second = a.start();
        assert_eq!(a.idle_for(), None);
        drop(first);
        assert_eq!(a.idle_for(), None, "still one request in flight");
        drop(second);
        assert!(a.idle_for().is_some());
    }
}
