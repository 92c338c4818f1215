//! # worker
//!
//! The institute's side of the pipeline: consume encrypted submissions from the work queue,
//! evaluate the study on ciphertexts, publish each result to its participant's reply queue, and
//! acknowledge a submission only once its result is confirmed. The `worker` binary is a thin shell
//! around [`run`] (flags, logging, signals, exit codes); tests and benchmarks run the same code
//! in-process.
//!
//! It depends on `pipeline` for what every side agrees on (messages, topology, configuration,
//! broker connection) and on nothing of the participant side: a worker never holds a private key
//! or a plaintext.
//!
//! ## Modules
//! - [`process`]: what a worker does with one message, as a pure synchronous function (parse,
//!   validate, compute, say what to publish). No I/O, so it runs on rayon threads and is tested
//!   and fuzzed without a broker.
//! - [`service`]: the long-running service: sessions (connections, channels, consumer),
//!   prefetch, batching, reconnecting after a lost broker, graceful shutdown.
//! - `batch` (private): one batch: compute on the rayon pool, publish every result with confirms,
//!   then settle every delivery. Separate from [`service`] so the connection handling and the
//!   per-batch settle rules can be read apart.
//! - [`dead_letter`]: the headers of a refused message's dead-letter copy, which keep *why* it
//!   was refused (RabbitMQ's own dead-lettering only says "rejected").
//! - [`cost`]: the work a message would cost, priced from public data before any
//!   exponentiation (`limits.max_work`).
//! - [`stats`]: in-memory counters tests read while the worker runs.
//! - [`events`]: the same counters as a structured interface: one JSON object per line per
//!   event (start, batch, lost connection, reconnect, stop), so that tests and scripts never
//!   parse log prose.

#![warn(missing_docs)]

mod batch;
pub mod cost;
pub mod dead_letter;
pub mod events;
pub mod process;
pub mod service;
pub mod stats;

pub use dead_letter::{
    DEAD_LETTER_BODY_MAX, HEADER_KIND, HEADER_ORIGINAL_BODY_BYTES, HEADER_ORIGINAL_USER_ID,
    HEADER_REASON, HEADER_REJECTED_BY,
};
pub use events::{EventSink, WorkerEvent};
pub use service::{
    ShutdownSender, WorkerError, consumer_tag, run, run_with_events, shutdown_channel,
};
pub use stats::{StatsSnapshot, WorkerStats};
