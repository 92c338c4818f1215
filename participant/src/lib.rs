//! # participant
//!
//! The participant side of the study, shared by the `producer` and `consumer` binaries: what runs
//! on a participant's (or a clinic's) machine, where plaintext readings and private keys live. The
//! contract both sides agree on (messages, topology, configuration, broker connection) is the
//! `pipeline` crate; this crate builds the participant's programs on it.
//!
//! ## Modules
//! - [`readings`]: `METRIC=VALUE` parsing, grouping into the study's series, encryption into a
//!   submission. No broker involved, so a typo publishes nothing.
//! - [`connection`]: [`Client`], a connection to the broker with the topology declared that
//!   replaces itself after a connection loss; reply queue declaration (pipelined for cohorts).
//! - [`publish`]: submissions and prepared messages published with confirms, republishing what
//!   the broker had not confirmed after a reconnect.
//! - [`results`]: [`ResultStream`], results arriving on one participant's reply queue or on a
//!   whole cohort's at once (one type: a participant's stream is a cohort of one), resuming after
//!   a reconnect and marking duplicates.
//! - [`keystore`]: participants' keys in python-paillier's JWK format, private files 0600.
//! - [`journal`]: what a bulk enrollment had confirmed, so that a re-run resumes.
//! - [`progress`]: progress bar or plain progress lines for the bulk commands.
//! - [`text`]: wire text escaped for terminals, CSV cells neutralised for spreadsheets.
//! - [`cli`]: the global flags and exit handling `producer` and `consumer` share.

#![warn(missing_docs)]

pub mod cli;
pub mod connection;
pub mod journal;
pub mod keystore;
pub mod progress;
pub mod publish;
pub mod readings;
pub mod results;
pub mod text;

pub use connection::{Client, ClientError, DECLARES_IN_FLIGHT};
pub use results::{Received, ResultStream};
