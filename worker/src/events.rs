//! The worker's counters as a structured interface: one JSON object per line for each event
//! (start, batch, lost connection, reconnect, stop), written to a file or standard output.
//!
//! Tests and scripts read these lines, deserialised into [`WorkerEvent`], instead of the human
//! log: log prose may be reworded freely, the event fields are the contract. Every line is
//! written whole and flushed at once, so a reader following the file never sees half an event,
//! and a worker killed with SIGKILL leaves every event it emitted before.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::stats::StatsSnapshot;

/// One line of the event stream. Serialised with its kind in the field `event`
/// (`worker_started`, `batch`, `connection_lost`, `reconnected`, `worker_stopped`), and with
/// `unix_ms`, the wall-clock time it was emitted, so readers can relate events to outside
/// happenings (a broker restart) without parsing log timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// The worker is configured and about to open its first session.
    WorkerStarted {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
        /// The consumer tag it will consume with.
        tag: String,
        /// rayon threads computing.
        threads: usize,
        /// Deliveries per batch at most.
        batch_size: usize,
        /// Unacknowledged deliveries it may hold.
        prefetch: u16,
        /// The work queue it consumes.
        queue: String,
    },
    /// A batch was computed, published and settled.
    Batch {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
        /// Deliveries in the batch.
        received: u64,
        /// Submissions and demo requests answered.
        done: u64,
        /// Messages refused and dead-lettered with a reason.
        rejected: u64,
        /// Failed computations returned to the queue for another attempt.
        retried: u64,
        /// Failed computations dead-lettered on their last attempt.
        failed: u64,
        /// Deliveries that could not be acked (from before a reconnect; they are redelivered).
        stale: u64,
        /// Messages published (results and dead-letter copies), all confirmed.
        published: u64,
        /// Time from receiving the batch to having settled it, in milliseconds.
        elapsed_ms: u64,
    },
    /// A session ended without being asked to: the worker is about to reconnect.
    ConnectionLost {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
        /// Why the session ended.
        reason: String,
    },
    /// A session was opened again after a loss.
    Reconnected {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
        /// Milliseconds from noticing the loss to consuming again.
        after_ms: u64,
    },
    /// The worker stopped without error (asked to); the totals of its whole run.
    WorkerStopped {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
        /// Every counter since the start.
        totals: StatsSnapshot,
    },
}

/// Milliseconds since the Unix epoch, now (0 on a clock set before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a worker writes its events: nowhere, a file, or standard output.
///
/// A failed write is logged once and otherwise ignored: losing the event stream must not stop a
/// worker from computing.
pub struct EventSink {
    out: Option<Mutex<Box<dyn Write + Send>>>,
    write_failed: AtomicBool,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("enabled", &self.out.is_some())
            .finish()
    }
}

impl Default for EventSink {
    fn default() -> Self {
        Self::disabled()
    }
}

impl EventSink {
    /// Emits nothing.
    pub fn disabled() -> Self {
        EventSink {
            out: None,
            write_failed: AtomicBool::new(false),
        }
    }

    /// Writes to any writer (a test's buffer, a pipe).
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        EventSink {
            out: Some(Mutex::new(Box::new(out))),
            write_failed: AtomicBool::new(false),
        }
    }

    /// Appends to the file at `path` (created if missing), or writes to standard output when
    /// `path` is `-`. Appending keeps the events of earlier runs when a worker is restarted on the
    /// same file.
    pub fn open(path: &Path) -> io::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::to_writer(io::stdout()));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::to_writer(file))
    }

    /// Writes `event` as one line and flushes it.
    pub fn emit(&self, event: &WorkerEvent) {
        let Some(out) = &self.out else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(err) => {
                warn!(error = %err, "cannot serialise a worker event");
                return;
            }
        };
        line.push(b'\n');
        // A poisoned lock only means another thread panicked mid-write: the writer is still usable.
        let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(err) = out.write_all(&line).and_then(|()| out.flush())
            && !self.write_failed.swap(true, Ordering::Relaxed)
        {
            warn!(error = %err, "cannot write worker events; further failures are not logged");
        }
    }
}

/// Reads an event stream (as written by [`EventSink`]) back: one [`WorkerEvent`] per non-empty
/// line. A line that is not an event is an error, so that a change of format cannot go unnoticed
/// by the tests that read it.
pub fn parse_events(text: &str) -> Result<Vec<WorkerEvent>, serde_json::Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_json_lines() {
        let events = vec![
            WorkerEvent::Batch {
                unix_ms: 1,
                received: 4,
                done: 2,
                rejected: 1,
                retried: 1,
                failed: 0,
                stale: 0,
                published: 3,
                elapsed_ms: 12,
            },
            WorkerEvent::Reconnected {
                unix_ms: 2,
                after_ms: 340,
            },
        ];
        let text: String = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        assert!(text.starts_with(r#"{"event":"batch","unix_ms":1,"received":4,"done":2"#));
        assert_eq!(parse_events(&text).unwrap(), events);
    }

    #[test]
    fn a_line_that_is_not_an_event_is_an_error() {
        assert!(parse_events("INFO batch processed done=3\n").is_err());
    }
}
