//! Idle upstream connections, kept by the endpoint they lead to: one list
//! per worker, so a worker only ever reuses its own sockets (no cross-thread
//! handoff), and the connections live exactly as long as the endpoint does.
//! An endpoint that stays across a config reload keeps its warm connections;
//! one that is removed closes them when its last request finishes and the
//! last snapshot naming it is gone.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::transport::Stream;
use crate::telemetry::metrics::GaugeGuard;

/// An open upstream connection and what it is counted as.
#[derive(Debug)]
pub struct Conn {
    pub stream: Stream,
    pub open: Open,
}

/// Held while a connection is open: it counts in
/// `fulcrum_upstream_active_connections`, and it remembers the transport
/// (TCP or TLS settings) it was made with, so a reload that changes a
/// cluster's TLS settings never reuses a connection made with the old ones.
#[derive(Debug)]
pub struct Open {
    _gauge: GaugeGuard,
    transport: u64,
}

impl Open {
    pub fn new(gauge: GaugeGuard, transport: u64) -> Self {
        Self {
            _gauge: gauge,
            transport,
        }
    }
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// One endpoint's idle connections, per worker. Only that worker's tasks
/// touch its list, so the mutexes are never contended; they exist because
/// tasks must be `Send`.
#[derive(Debug)]
pub struct IdleConnections {
    per_worker: Box<[Mutex<Vec<Idle>>]>,
}

impl IdleConnections {
    pub fn new(workers: usize) -> Self {
        Self {
            per_worker: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// The most recently used live connection made by `transport`, if any
    /// (LIFO keeps few connections warm and lets the rest expire).
    pub fn checkout(&self, worker: usize, transport: u64, idle_timeout: Duration) -> Option<Conn> {
        let slot = self.per_worker.get(worker)?;
        let mut idle = slot.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut entry) = idle.pop() {
            if crate::clock::elapsed(entry.since) < idle_timeout
                && entry.conn.open.transport == transport
                && entry.conn.stream.still_open()
            {
                return Some(entry.conn);
            }
        }
        None
    }

    pub fn checkin(&self, worker: usize, conn: Conn, idle_timeout: Duration) {
        let Some(slot) = self.per_worker.get(worker) else {
            return;
        };
        let mut idle = slot.lock().unwrap_or_else(|p| p.into_inner());
        // The oldest entries sit at the front; drop the expired ones now so
        // a quiet endpoint does not hold sockets for ever.
        let expired = idle
            .iter()
            .take_while(|e| crate::clock::elapsed(e.since) >= idle_timeout)
            .count();
        idle.drain(..expired);
        idle.push(Idle {
            conn,
            since: crate::clock::now(),
        });
    }

    /// Idle connections over all workers (admin API).
    pub fn count(&self) -> usize {
        self.per_worker
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}
