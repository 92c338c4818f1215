//! The worker's answer to a submission, published to the participant's reply queue.
//!
//! Two formats, told apart by `version`:
//! - **2** (packed, the default): the outputs' mantissas share as few ciphertexts as fit
//!   (usually one), listed in `packed`; each output says where it sits. Unpacking is
//!   `m = ((D(packed[i]) >> offset) mod 2^width) - bias`, value `= m · 16^exponent`
//!   (see [`crate::packing`], which also explains the checks that refuse a slot outside its
//!   bound).
//! - **1** (`worker.pack_results = false`): one ciphertext per output, python-paillier's
//!   (ciphertext, exponent).

use num_bigint::{BigInt, BigUint};
use paillier::json::BigUintDecimal;
use paillier::{EncodedNumber, PrivateKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::packing::{self, PackingError};
use crate::study::{Bounded, Evaluation};

/// Version of results with one ciphertext per output.
pub const RESULT_VERSION_UNPACKED: u32 = 1;

/// Version of results whose outputs are packed into shared ciphertexts.
pub const RESULT_VERSION_PACKED: u32 = 2;

/// Largest slot or offset accepted when reading a result (bits): far above any accepted key
/// (8192 bits), so only a corrupt message reaches it, and shifts stay cheap.
const MAX_SLOT_BITS: u64 = 1 << 16;

/// Whether a result carries outputs or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// Outputs computed.
    Ok,
    /// The submission was refused; see `error`.
    Error,
}

/// A result. Version 2 (packed):
/// `{"version": 2, "submission_id": "…", "participant": "p-001", "status": "ok",
///   "packed": [{"ciphertext": "…"}],
///   "outputs": [{"name": "…", "unit": "…", "exponent": -26, "packed": 0, "offset": 0,
///                "width": 180, "bias": "…"}], "skipped": […]}`;
/// version 1: outputs are `{"name", "unit", "ciphertext", "exponent"}` and there is no `packed`.
/// A refused submission: `"status": "error", "error": {"kind": "…", "message": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultMessage {
    /// Format version ([`RESULT_VERSION_PACKED`] or [`RESULT_VERSION_UNPACKED`]).
    pub version: u32,
    /// The submission this answers (also the AMQP correlation id).
    pub submission_id: String,
    /// The participant, when the submission named a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Outputs or error.
    pub status: ResultStatus,
    /// The packed ciphertexts (version 2, status ok).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packed: Vec<PackedCiphertext>,
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

/// One ciphertext holding several outputs' slots (its plaintext is a raw integer, no exponent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedCiphertext {
    /// The ciphertext, decimal.
    pub ciphertext: BigUintDecimal,
}

/// One named encrypted output: in version 1 its own `ciphertext`; in version 2 its slot
/// (`packed`, `offset`, `width`, `bias`) in a packed ciphertext. Everything here is public.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedValue {
    /// Output name from the study.
    pub name: String,
    /// Unit of the decrypted value.
    #[serde(default)]
    pub unit: String,
    /// The ciphertext, decimal (version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<BigUintDecimal>,
    /// The encoding exponent: value = mantissa × 16^exponent.
    pub exponent: i64,
    /// Index into `packed` (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<usize>,
    /// Lowest bit of the slot (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Bits of the slot (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u64>,
    /// Subtracted from the slot to get the signed mantissa (version 2), decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<BigUintDecimal>,
}

/// Why a result could not be decrypted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecryptError {
    /// A version this crate does not read.
    #[error("unsupported result version {0} (this consumer reads 1 and 2)")]
    UnsupportedVersion(u32),
    /// An output lacks a field its version needs, or has one it must not have.
    #[error("output {output:?}: {reason}")]
    Malformed {
        /// Output name.
        output: String,
        /// What is wrong.
        reason: String,
    },
    /// A slot or packed plaintext failed its range check: the readings broke the bound
    /// assumption, and the value would be wrong.
    #[error("output {output:?}: {source}")]
    Unpack {
        /// Output name.
        output: String,
        /// The failed check.
        #[source]
        source: PackingError,
    },
    /// Decryption or decoding failed (wrong key, overflow).
    #[error(transparent)]
    Paillier(#[from] paillier::Error),
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
    /// A successful result in format 1: one ciphertext per output, each re-randomised when
    /// `obfuscate` (a fresh r^n hides which readings it came from).
    pub fn ok_unpacked(
        submission_id: &str,
        participant: &str,
        evaluation: &Evaluation<Bounded>,
        obfuscate: bool,
    ) -> Self {
        let outputs = evaluation
            .outputs
            .iter()
            .map(|o| {
                let value = if obfuscate {
                    o.value.value.obfuscated()
                } else {
                    o.value.value.clone()
                };
                EncryptedValue {
                    name: o.name.clone(),
                    unit: o.unit.clone(),
                    ciphertext: Some(value.ciphertext().into()),
                    exponent: i64::from(value.exponent()),
                    packed: None,
                    offset: None,
                    width: None,
                    bias: None,
                }
            })
            .collect();
        ResultMessage {
            version: RESULT_VERSION_UNPACKED,
            submission_id: submission_id.to_owned(),
            participant: Some(participant.to_owned()),
            status: ResultStatus::Ok,
            packed: Vec::new(),
            outputs,
            skipped: evaluation.skipped.clone(),
            error: None,
        }
    }

    /// A successful result in format 2: the outputs packed into as few ciphertexts as fit under
    /// the key, each re-randomised once when `obfuscate`. Fails only if one output's bound alone
    /// exceeds a plaintext ([`PackingError::TooWide`]).
    pub fn ok_packed(
        submission_id: &str,
        participant: &str,
        evaluation: &Evaluation<Bounded>,
        obfuscate: bool,
    ) -> Result<Self, PackingError> {
        let values: Vec<&Bounded> = evaluation.outputs.iter().map(|o| &o.value).collect();
        let (packed, layout) = match values.first() {
            None => (Vec::new(), packing::Layout::default()),
            Some(first) => {
                let bounds: Vec<&BigUint> = values.iter().map(|v| &v.bound).collect();
                let layout = packing::layout(&bounds, first.value.public_key().bits())?;
                (packing::pack(&values, &layout)?, layout)
            }
        };
        let packed = packed
            .iter()
            .map(|c| PackedCiphertext {
                ciphertext: if obfuscate { c.obfuscated() } else { c.clone() }
                    .ciphertext()
                    .into(),
            })
            .collect();
        let outputs = evaluation
            .outputs
            .iter()
            .zip(&layout.slots)
            .map(|(o, slot)| EncryptedValue {
                name: o.name.clone(),
                unit: o.unit.clone(),
                ciphertext: None,
                exponent: i64::from(o.value.value.exponent()),
                packed: Some(slot.packed),
                offset: Some(slot.offset),
                width: Some(slot.width),
                bias: Some(slot.bias.clone().into()),
            })
            .collect();
        Ok(ResultMessage {
            version: RESULT_VERSION_PACKED,
            submission_id: submission_id.to_owned(),
            participant: Some(participant.to_owned()),
            status: ResultStatus::Ok,
            packed,
            outputs,
            skipped: evaluation.skipped.clone(),
            error: None,
        })
    }

    /// An error result.
    pub fn error(
        submission_id: &str,
        participant: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Self {
        ResultMessage {
            version: RESULT_VERSION_PACKED,
            submission_id: submission_id.to_owned(),
            participant: participant.map(str::to_owned),
            status: ResultStatus::Error,
            packed: Vec::new(),
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

    /// Decrypts every output with the participant's key: one decryption per ciphertext, so
    /// one per result in format 2. Refuses (never returns a wrong number) a slot outside its
    /// bound and a packed plaintext with bits set above its slots.
    pub fn decrypt(&self, key: &PrivateKey) -> Result<Vec<DecryptedValue>, DecryptError> {
        match self.version {
            RESULT_VERSION_UNPACKED => self.decrypt_unpacked(key),
            RESULT_VERSION_PACKED => self.decrypt_packed(key),
            other => Err(DecryptError::UnsupportedVersion(other)),
        }
    }

    fn decrypt_unpacked(&self, key: &PrivateKey) -> Result<Vec<DecryptedValue>, DecryptError> {
        let public = key.public_key();
        self.outputs
            .iter()
            .map(|o| {
                let malformed = |reason: &str| DecryptError::Malformed {
                    output: o.name.clone(),
                    reason: reason.to_owned(),
                };
                if o.packed.is_some() || o.offset.is_some() || o.width.is_some() || o.bias.is_some()
                {
                    return Err(malformed("slot fields in a version 1 result"));
                }
                let ciphertext = o
                    .ciphertext
                    .as_ref()
                    .ok_or_else(|| malformed("no ciphertext"))?;
                let encrypted = public.encrypted_number(ciphertext.0.clone(), exponent(o)?)?;
                Ok(DecryptedValue {
                    name: o.name.clone(),
                    unit: o.unit.clone(),
                    value: key.decrypt_f64(&encrypted)?,
                })
            })
            .collect()
    }

    fn decrypt_packed(&self, key: &PrivateKey) -> Result<Vec<DecryptedValue>, DecryptError> {
        let public = key.public_key();
        // Every packed ciphertext is decrypted once, whatever the number of its slots.
        let plaintexts = self
            .packed
            .iter()
            .map(|p| {
                let encrypted = public.encrypted_number(p.ciphertext.0.clone(), 0)?;
                Ok(key.decrypt_raw(&encrypted.ciphertext()))
            })
            .collect::<Result<Vec<BigUint>, DecryptError>>()?;
        // Where each plaintext's highest slot ends: bits above must be clear.
        let mut used = vec![0u64; plaintexts.len()];
        let mut slots = Vec::with_capacity(self.outputs.len());
        for o in &self.outputs {
            let malformed = |reason: String| DecryptError::Malformed {
                output: o.name.clone(),
                reason,
            };
            if o.ciphertext.is_some() {
                return Err(malformed("a ciphertext in a version 2 result".into()));
            }
            let (Some(index), Some(offset), Some(width), Some(bias)) =
                (o.packed, o.offset, o.width, o.bias.as_ref())
            else {
                return Err(malformed("needs packed, offset, width and bias".into()));
            };
            if index >= plaintexts.len() {
                return Err(malformed(format!(
                    "packed index {index} but {} packed ciphertexts",
                    plaintexts.len()
                )));
            }
            if width == 0 || width > MAX_SLOT_BITS || offset > MAX_SLOT_BITS {
                return Err(malformed(format!("slot {offset}+{width} out of range")));
            }
            used[index] = used[index].max(offset + width);
            slots.push((o, index, offset, width, &bias.0));
        }
        for (index, plaintext) in plaintexts.iter().enumerate() {
            packing::check_unused_bits(plaintext, used[index]).map_err(|source| {
                DecryptError::Unpack {
                    output: format!("(packed ciphertext {index})"),
                    source,
                }
            })?;
        }
        slots
            .into_iter()
            .map(|(o, index, offset, width, bias)| {
                let mantissa =
                    packing::unpack(&plaintexts[index], offset, width, bias).map_err(|source| {
                        DecryptError::Unpack {
                            output: o.name.clone(),
                            source,
                        }
                    })?;
                Ok(DecryptedValue {
                    name: o.name.clone(),
                    unit: o.unit.clone(),
                    value: mantissa_to_f64(key, &mantissa, exponent(o)?)?,
                })
            })
            .collect()
    }
}

/// An output's exponent as the paillier crate takes it.
fn exponent(o: &EncryptedValue) -> Result<i32, paillier::Error> {
    i32::try_from(o.exponent).map_err(|_| paillier::Error::ExponentRange(o.exponent))
}

/// `mantissa · 16^exponent` as the nearest f64, through the paillier crate's decoding so that
/// a packed output rounds exactly as the same value decrypted on its own.
fn mantissa_to_f64(
    key: &PrivateKey,
    mantissa: &BigInt,
    exponent: i32,
) -> Result<f64, paillier::Error> {
    let public = key.public_key();
    let n = BigInt::from(public.n().clone());
    let encoding = ((mantissa % &n) + &n) % &n;
    let encoded = EncodedNumber::from_parts(
        public.clone(),
        encoding.to_biguint().expect("reduced modulo n"),
        exponent,
    )?;
    public.decode(&encoded)?.to_f64()
}
