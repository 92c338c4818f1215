//! Why an incoming message was refused.

use thiserror::Error;

use crate::participant::ParticipantIdError;

/// A message the worker refuses: it is dead-lettered with [`InputError::kind`] and the
/// message in headers, and the sender gets an error result when it can be reached.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InputError {
    /// The body is larger than `limits.max_body_bytes`; it was not parsed.
    #[error("message body of {size} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON at all (syntax error, truncated, not UTF-8).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON, but neither a submission nor a demo request.
    #[error(
        "unrecognised message: expected a submission (with \"readings\") or a demo request (with \"public_key\" and \"values\")"
    )]
    UnknownShape,
    /// JSON of the right shape with a wrong type, a missing or unknown field, or a malformed number.
    #[error("invalid message: {0}")]
    Schema(String),
    /// A submission format version this worker does not know.
    #[error("unsupported submission version {0} (this worker reads version 1)")]
    UnsupportedVersion(u32),
    /// The participant id is not a safe id.
    #[error("invalid participant: {0}")]
    Participant(#[from] ParticipantIdError),
    /// The submission id is empty, too long or uses unsafe characters.
    #[error("invalid submission id: {0}")]
    SubmissionId(String),
    /// A submission without any reading.
    #[error("the submission carries no readings")]
    NoReadings,
    /// More readings than `limits.max_readings`.
    #[error("{count} readings in one submission, the limit is {max}")]
    TooManyReadings {
        /// Readings in the message.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A reading is not encoded at its metric's exponent (the study's fixed exponent, from the
    /// metric's `precision`): refused before the key or any ciphertext is looked at.
    #[error(
        "reading {location} has exponent {exponent}; this study encodes it at exponent {expected} (the metric's precision; python-paillier: encode with precision=)"
    )]
    ExponentMismatch {
        /// Which reading: `glucose[0]`.
        location: String,
        /// The exponent it carried.
        exponent: i64,
        /// The metric's exponent.
        expected: i32,
    },
    /// A reading for a metric the study does not define.
    #[error("unknown metric {0:?}")]
    UnknownMetric(String),
    /// The public key is unusable (size outside the bounds, even, small factor, g != n + 1).
    #[error("invalid public key: {0}")]
    PublicKey(paillier::Error),
    /// A ciphertext is not a valid encryption under the given key.
    #[error("invalid ciphertext ({location}): {source}")]
    Ciphertext {
        /// Which reading: `glucose[0]`, `values[3]`.
        location: String,
        /// What the check found.
        source: paillier::Error,
    },
    /// The `reply_to` property is missing or not a usable routing key.
    #[error("invalid reply_to: {0}")]
    ReplyTo(String),
    /// No `user_id` property: nothing says who sent the message (the broker validates
    /// `user_id` against the connection's user, so only its presence proves anything).
    #[error("no user_id property: every submission must carry its sender's broker user")]
    MissingUserId,
    /// The sender's broker user is neither the participant it claims nor a configured delegate.
    #[error("user {user:?} may not submit for participant {participant:?}")]
    IdentityMismatch {
        /// The validated `user_id`.
        user: String,
        /// The participant the body names.
        participant: String,
    },
    /// `reply_to` names a queue other than the participant's own reply queue.
    #[error("reply_to {reply_to:?} is not the participant's own reply queue {expected:?}")]
    ForeignReplyTo {
        /// What the message asked for.
        reply_to: String,
        /// The only reply queue the sender may use.
        expected: String,
    },
    /// The message would cost more work than `limits.max_work` allows.
    #[error(
        "the message would cost {work:.1} units of work (one unit = one honest submission at the study's key size), the limit is {limit} (limits.max_work)"
    )]
    TooCostly {
        /// Estimated work.
        work: f64,
        /// The limit.
        limit: f64,
    },
    /// Valid input whose computation fails deterministically (e.g. a result that overflows its
    /// encoding): retrying would fail the same way.
    #[error("computation failed: {0}")]
    Computation(String),
}

impl InputError {
    /// A short stable code for headers, error results and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::BodyTooLarge { .. } => "body_too_large",
            InputError::MalformedJson(_) => "malformed_json",
            InputError::UnknownShape => "unknown_shape",
            InputError::Schema(_) => "invalid_message",
            InputError::UnsupportedVersion(_) => "unsupported_version",
            InputError::Participant(_) => "invalid_participant",
            InputError::SubmissionId(_) => "invalid_submission_id",
            InputError::NoReadings => "no_readings",
            InputError::TooManyReadings { .. } => "too_many_readings",
            InputError::ExponentMismatch { .. } => "exponent_mismatch",
            InputError::UnknownMetric(_) => "unknown_metric",
            InputError::PublicKey(_) => "invalid_public_key",
            InputError::Ciphertext { .. } => "invalid_ciphertext",
            InputError::ReplyTo(_) => "invalid_reply_to",
            InputError::MissingUserId => "missing_user_id",
            InputError::IdentityMismatch { .. } => "identity_mismatch",
            InputError::ForeignReplyTo { .. } => "foreign_reply_to",
            InputError::TooCostly { .. } => "too_costly",
            InputError::Computation(_) => "computation_failed",
        }
    }

    /// Classifies a serde_json error: syntax versus shape.
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let text = truncate(&err.to_string(), 300);
        match err.classify() {
            Category::Syntax | Category::Eof | Category::Io => InputError::MalformedJson(text),
            Category::Data => InputError::Schema(text),
        }
    }
}

/// Bounds text that may echo hostile input before it goes into logs and headers.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}
