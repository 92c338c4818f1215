//! # pipeline
//!
//! What the producer, the worker and the consumer must agree on, in one library: the wire
//! messages, the queue topology and its names, the configuration, the study's computation and
//! packing, the participant id, the broker connection and logging. What only the participant side
//! needs (connection that reconnects, publishing, result streams, key store, journal, progress,
//! command-line flags) is the `participant` crate, which `producer` and `consumer` are built on.
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
//! - [`messages`]: submissions, results and the original demo's wire format (request, reply and
//!   key, an application message and so here, not in `paillier`); strict parsing
//!   with typed [`InputError`](messages::InputError)s; AMQP properties.
//! - [`participant`]: [`participant::ParticipantId`], the one user string that
//!   becomes part of queue and file names.
//! - [`topology`]: exchange and queue names and their idempotent declaration.
//! - [`amqp_name`]: [`AmqpName`](amqp_name::AmqpName), the one checked type for queue names,
//!   routing keys, consumer tags and message ids (AMQP short strings).
//! - [`broker`]: connecting (named connections, retries, automatic recovery) and the
//!   [`ConfirmedPublisher`](broker::ConfirmedPublisher).
//! - [`logging`]: tracing setup shared by the binaries.
//!
//! ## Delivery guarantees
//! At least once, end to end: submissions and results are persistent and published with
//! confirms; the worker acks a submission only after the broker confirmed its result (or its
//! dead-letter copy). A crash or reconnect may therefore produce a duplicate result, which the
//! consumer recognises by submission id and shows once.

pub mod amqp_name;
pub mod broker;
pub mod config;
pub mod logging;
pub mod messages;
pub mod packing;
pub mod participant;
pub mod published;
pub mod study;
pub mod topology;

pub use config::Settings;
pub use participant::ParticipantId;
pub use topology::Topology;
