//! The worker's answer to a submission, published to the participant's reply queue.

use paillier::json::BigUintDecimal;
use paillier::{EncryptedNumber, PrivateKey};
use serde::{Deserialize, Serialize};

use super::submission::SUBMISSION_VERSION;
use crate::study::Evaluation;

/// Whether a result carries outputs or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// Outputs computed.
    Ok,
    /// The submission was refused; see `error`.
    Error,
}

/// A result: `{"version": 1, "submission_id": "…", "participant": "p-001", "status": "ok",
/// "outputs": [{"name": "…", "unit": "…", "ciphertext": "…", "exponent": -13}], "skipped": […]}`
/// or, for a refused submission, `"status": "error", "error": {"kind": "…", "message": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultMessage {
    /// Format version (same numbering as submissions).
    pub version: u32,
    /// The submission this answers (also the AMQP correlation id).
    pub submission_id: String,
    /// The participant, when the submission named a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Outputs or error.
    pub status: ResultStatus,
    /// Encrypted outputs in study order (status ok).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<EncryptedValue>,
    /// Outputs not computed because the submission lacked a metric they need.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Why the submission was refused (status error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// One named encrypted output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedValue {
    /// Output name from the study.
    pub name: String,
    /// Unit of the decrypted value.
    #[serde(default)]
    pub unit: String,
    /// The ciphertext, decimal.
    pub ciphertext: BigUintDecimal,
    /// The encoding exponent.
    pub exponent: i64,
}

/// What was wrong with a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable code (see [`super::InputError::kind`]).
    pub kind: String,
    /// Human-readable reason.
    pub message: String,
}

/// A decrypted output.
#[derive(Debug, Clone, PartialEq)]
pub struct DecryptedValue {
    /// Output name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Value.
    pub value: f64,
}

impl ResultMessage {
    /// A successful result from the study's evaluation; ciphertexts are re-randomised first when
    /// `obfuscate` (a fresh r^n hides which readings they came from).
    pub fn ok(
        submission_id: &str,
        participant: &str,
        evaluation: &Evaluation<EncryptedNumber>,
        obfuscate: bool,
    ) -> Self {
        let outputs = evaluation
            .outputs
            .iter()
            .map(|o| {
                let value = if obfuscate {
                    o.value.obfuscated()
                } else {
                    o.value.clone()
                };
                EncryptedValue {
                    name: o.name.clone(),
                    unit: o.unit.clone(),
                    ciphertext: value.ciphertext().into(),
                    exponent: i64::from(value.exponent()),
                }
            })
            .collect();
        ResultMessage {
            version: SUBMISSION_VERSION,
            submission_id: submission_id.to_owned(),
            participant: Some(participant.to_owned()),
            status: ResultStatus::Ok,
            outputs,
            skipped: evaluation.skipped.clone(),
            error: None,
        }
    }

    /// An error result.
    pub fn error(
        submission_id: &str,
        participant: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Self {
        ResultMessage {
            version: SUBMISSION_VERSION,
            submission_id: submission_id.to_owned(),
            participant: participant.map(str::to_owned),
            status: ResultStatus::Error,
            outputs: Vec::new(),
            skipped: Vec::new(),
            error: Some(ErrorBody {
                kind: kind.to_owned(),
                message: message.to_owned(),
            }),
        }
    }

    /// Serialised body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a result always serialises")
    }

    /// Decrypts every output with the participant's key.
    pub fn decrypt(&self, key: &PrivateKey) -> Result<Vec<DecryptedValue>, paillier::Error> {
        let public = key.public_key();
        self.outputs
            .iter()
            .map(|o| {
                let exponent = i32::try_from(o.exponent)
                    .map_err(|_| paillier::Error::ExponentRange(o.exponent))?;
                let encrypted = public.encrypted_number(o.ciphertext.0.clone(), exponent)?;
                Ok(DecryptedValue {
                    name: o.name.clone(),
                    unit: o.unit.clone(),
                    value: key.decrypt_f64(&encrypted)?,
                })
            })
            .collect()
    }
}
