//! What travels on the wire: submissions, results, and the original demo's request and reply.
//!
//! All bodies are JSON. Big integers (the modulus, ciphertexts) are decimal strings, read through
//! [`paillier::json::BigUintDecimal`] so that they never pass through an `f64`. Incoming bodies
//! are classified by probing their top-level keys ([`parse_incoming`]) rather than with a serde
//! `untagged` enum, which would buffer the document and turn bare big integers into floats.

mod demo;
mod error;
mod properties;
mod result;
mod submission;

pub use demo::{DemoRequest, demo_error_reply};
pub use error::InputError;
pub use properties::{MessageType, Properties, now_secs, properties, truncate_reason};
pub use result::{DecryptedValue, EncryptedValue, ErrorBody, ResultMessage, ResultStatus};
pub use submission::{
    KeyWire, ReadingWire, SUBMISSION_VERSION, Submission, SubmissionWire, valid_message_id,
};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::Limits;

/// A message taken from the work queue, parsed but not yet validated.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A submission in this project's format.
    Submission(SubmissionWire),
    /// A request in the original demo's format.
    Demo(paillier::json::DemoPayload),
}

/// The top-level keys that tell the shapes apart; values are skipped, not buffered.
#[derive(Deserialize)]
struct ShapeProbe {
    #[serde(default)]
    version: Option<IgnoredAny>,
    #[serde(default)]
    readings: Option<IgnoredAny>,
    #[serde(default)]
    public_key: Option<IgnoredAny>,
    #[serde(default)]
    values: Option<IgnoredAny>,
}

/// Checks the size, finds out which shape `body` has, and parses it strictly (unknown fields
/// refused). Semantic checks (keys, ciphertexts, metrics) are [`SubmissionWire::validate`] and
/// [`DemoRequest::validate`].
pub fn parse_incoming(body: &[u8], limits: &Limits) -> Result<Incoming, InputError> {
    if body.len() > limits.max_body_bytes {
        return Err(InputError::BodyTooLarge {
            size: body.len(),
            max: limits.max_body_bytes,
        });
    }
    let probe: ShapeProbe = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            InputError::Schema("the body must be a JSON object".into())
        }
        _ => InputError::from_json(&e),
    })?;
    if probe.readings.is_some() || probe.version.is_some() {
        serde_json::from_slice(body)
            .map(Incoming::Submission)
            .map_err(|e| InputError::from_json(&e))
    } else if probe.public_key.is_some() && probe.values.is_some() {
        serde_json::from_slice(body)
            .map(Incoming::Demo)
            .map_err(|e| InputError::from_json(&e))
    } else {
        Err(InputError::UnknownShape)
    }
}
