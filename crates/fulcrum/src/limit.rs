//! Connection caps: a listener's or a cluster's `max_connections`, counted
//! across all workers with one atomic, so a cap means the same whatever the
//! worker count (HAProxy's `maxconn` per frontend and per server).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct ConnectionLimit {
    active: AtomicU32,
    /// `u32::MAX`: no cap. Atomic so a reload can change the cap of a
    /// limit whose open connections it keeps counting.
    max: AtomicU32,
}

/// One admitted connection; releases its slot when dropped.
#[derive(Debug)]
pub struct Permit(Arc<ConnectionLimit>);

impl ConnectionLimit {
    pub fn new(max: Option<u32>) -> Self {
        Self {
            active: AtomicU32::new(0),
            max: AtomicU32::new(max.unwrap_or(u32::MAX)),
        }
    }

    /// A reloaded cap; connections already past a lowered cap stay open.
    pub fn set_max(&self, max: Option<u32>) {
        self.max.store(max.unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// Takes a slot, or `None` when the cap is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let max = self.max.load(Ordering::Relaxed);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(self.clone()))
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_and_frees_on_drop() {
        let limit = Arc::new(ConnectionLimit::new(Some(2)));
        let a = limit.try_acquire();
        let b = limit.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert_eq!(limit.active(), 1);
        assert!(limit.try_acquire().is_some());
    }

    #[test]
    fn no_cap_counts_anyway() {
        let limit = Arc::new(ConnectionLimit::new(None));
        let permits: Vec<_> = (0..5).filter_map(|_| limit.try_acquire()).collect();
        assert_eq!(permits.len(), 5);
        assert_eq!(limit.active(), 5);
    }
}
