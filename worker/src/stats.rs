//! Counters a worker keeps, readable by tests while it runs and reported at exit (in the log and
//! as the `worker_stopped` event).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What a worker did so far.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Batches processed.
    pub batches: AtomicU64,
    /// Submissions and demo requests answered.
    pub done: AtomicU64,
    /// Messages refused and dead-lettered with a reason.
    pub rejected: AtomicU64,
    /// Failed computations returned to the queue for another attempt.
    pub retried: AtomicU64,
    /// Failed computations dead-lettered on their last attempt.
    pub failed: AtomicU64,
    /// Acks the broker no longer accepted (delivery from before a reconnect: it is redelivered).
    pub stale: AtomicU64,
    /// Sessions (connections) opened.
    pub sessions: AtomicU64,
}

/// A plain copy of [`WorkerStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// See [`WorkerStats::batches`].
    pub batches: u64,
    /// See [`WorkerStats::done`].
    pub done: u64,
    /// See [`WorkerStats::rejected`].
    pub rejected: u64,
    /// See [`WorkerStats::retried`].
    pub retried: u64,
    /// See [`WorkerStats::failed`].
    pub failed: u64,
    /// See [`WorkerStats::stale`].
    pub stale: u64,
    /// See [`WorkerStats::sessions`].
    pub sessions: u64,
}

impl WorkerStats {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            batches: get(&self.batches),
            done: get(&self.done),
            rejected: get(&self.rejected),
            retried: get(&self.retried),
            failed: get(&self.failed),
            stale: get(&self.stale),
            sessions: get(&self.sessions),
        }
    }
}
