//! # pipeline
//!
//! What the producer, the worker and the consumer must agree on, in one library: the wire
//! messages, the queue topology, the configuration, the study's computation, the key store and the
//! broker connection. The binaries are thin shells around it (command line, logging, exit codes).
//!
//! ## The flow
//! ```text
//!  participant                         institute                            participant
//!  producer submit ──▶ [readings] ──▶ readings.work ──▶ worker(s) ──▶ [results] ──▶ results.<id> ──▶ consumer
//!  (encrypts with        direct        quorum queue      rayon batch     direct        durable         (decrypts,
//!   its own key)                           │             compute on       │                            prints)
//!                                          ▼             ciphertexts      ▼ unroutable
//!                                    readings.dead                   results.unroutable
//! ```
//! Plaintexts and private keys never leave the participant's machine: the worker only sees the
//! public key and ciphertexts, and every result it publishes is re-randomised.
//!
//! ## Layout
//! - [`config`]: [`config::Settings`], layered from the compiled-in
//!   `config/default.toml`, a `--config` file, `PIPELINE__*`/`AMQP_URL`/`KEY_STORE` environment
//!   variables and command-line overrides.
//! - [`study`]: the study's metrics and outputs (`scale`, `sum`, `mean`, `weighted_sum`, `random_scale`), their
//!   validation, and their evaluation on ciphertexts and, as a reference, on plain numbers.
//! - [`published`]: the study as JSON for participant-facing pages (`producer study-json`).
//! - [`packing`]: a submission's outputs packed into one plaintext (bounds, layout, Horner
//!   packing with public operations, checked unpacking), so results cost one re-randomisation
//!   and one decryption instead of one per output.
//! - [`messages`]: submissions, results and the original demo's request/reply; strict parsing
//!   with typed [`InputError`](messages::InputError)s; AMQP properties.
//! - [`participant`]: [`participant::ParticipantId`], the one user string that
//!   becomes part of queue and file names.
//! - [`topology`]: exchange and queue names and their idempotent declaration.
//! - [`broker`]: connecting (named connections, retries, automatic recovery) and the
//!   [`ConfirmedPublisher`](broker::ConfirmedPublisher).
//! - [`keystore`]: participants' keys in python-paillier's JWK format, private files 0600.
//! - [`process`]: what a worker does with one message, as a pure function (parse, validate,
//!   compute) that returns what to publish: runs on rayon threads.
//! - [`worker`]: the worker service: consume with a prefetch window, batch, compute off the async
//!   runtime, publish with confirms, then ack; dead-lettering with reasons; graceful shutdown.
//! - [`cli`]: the global flags and exit handling `producer` and `consumer` share.
//! - [`client`]: the participant side: submit readings, fetch and decrypt results.
//! - [`journal`]: what a bulk enrollment had confirmed, so that a re-run resumes.
//! - [`progress`]: progress bar or plain progress lines for the bulk commands.
//! - [`logging`]: tracing setup shared by the binaries.
//!
//! ## Delivery guarantees
//! At least once, end to end: submissions and results are persistent and published with
//! confirms; the worker acks a submission only after the broker confirmed its result (or its
//! dead-letter copy). A crash or reconnect may therefore produce a duplicate result, which the
//! consumer recognises by submission id and shows once.

pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod journal;
pub mod keystore;
pub mod logging;
pub mod messages;
pub mod packing;
pub mod participant;
pub mod process;
pub mod progress;
pub mod published;
pub mod study;
pub mod topology;
pub mod worker;

pub use config::Settings;
pub use participant::ParticipantId;
pub use topology::Topology;
