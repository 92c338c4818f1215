//! A participant's submission: encrypted readings by metric, under the participant's public key.

use std::collections::BTreeMap;

use paillier::json::BigUintDecimal;
use paillier::{EncryptedNumber, KeyBounds, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use super::error::{InputError, truncate};
use crate::config::Limits;
use crate::participant::ParticipantId;
use crate::study::Study;

/// Version of the submission format this crate writes and reads.
pub const SUBMISSION_VERSION: u32 = 1;

/// A submission as it travels:
/// `{"version": 1, "submission_id": "…", "participant": "p-001", "public_key": {"n": "…"},
///   "readings": {"glucose": [{"ciphertext": "…", "exponent": -13}, …], …}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionWire {
    /// Format version ([`SUBMISSION_VERSION`]).
    pub version: u32,
    /// Unique id chosen by the sender; results carry it as their correlation id.
    pub submission_id: String,
    /// Who submits (checked with [`ParticipantId`]).
    pub participant: String,
    /// The key the readings are encrypted under (g = n + 1 implied).
    pub public_key: KeyWire,
    /// Encrypted readings by metric name; several readings of a metric form a series.
    pub readings: BTreeMap<String, Vec<ReadingWire>>,
}

/// A public key on the wire: the modulus as a decimal string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyWire {
    /// The modulus n.
    pub n: BigUintDecimal,
}

/// One encrypted reading: python-paillier's ciphertext and exponent (value = mantissa × 16^exponent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingWire {
    /// The ciphertext, decimal.
    pub ciphertext: BigUintDecimal,
    /// The encoding exponent.
    pub exponent: i64,
}

/// A validated submission, ready for the study's computation.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The sender's submission id.
    pub id: String,
    /// The participant.
    pub participant: ParticipantId,
    /// The participant's validated public key.
    pub public_key: PublicKey,
    /// Validated ciphertexts by metric.
    pub readings: BTreeMap<String, Vec<EncryptedNumber>>,
}

/// Whether `id` may be used as a submission or message id: 1 to 128 printable ASCII characters
/// without spaces (it ends up in AMQP properties, headers and logs).
pub fn valid_message_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

impl SubmissionWire {
    /// Encrypts `readings` (metric name -> series) with the key owner's fast path.
    pub fn encrypt(
        submission_id: &str,
        participant: &ParticipantId,
        key: &PrivateKey,
        readings: &BTreeMap<String, Vec<f64>>,
    ) -> Result<SubmissionWire, paillier::Error> {
        let mut encrypted = BTreeMap::new();
        for (metric, series) in readings {
            let series = series
                .iter()
                .map(|v| {
                    key.encrypt_f64(*v).map(|c| ReadingWire {
                        ciphertext: c.ciphertext().into(),
                        exponent: i64::from(c.exponent()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            encrypted.insert(metric.clone(), series);
        }
        Ok(SubmissionWire {
            version: SUBMISSION_VERSION,
            submission_id: submission_id.to_owned(),
            participant: participant.to_string(),
            public_key: KeyWire {
                n: key.public_key().n().clone().into(),
            },
            readings: encrypted,
        })
    }

    /// Checks everything a worker must trust before computing: version, ids, counts, metrics
    /// (cheap checks first), then the key and every ciphertext.
    pub fn validate(self, study: &Study, limits: &Limits) -> Result<Submission, InputError> {
        if self.version != SUBMISSION_VERSION {
            return Err(InputError::UnsupportedVersion(self.version));
        }
        if !valid_message_id(&self.submission_id) {
            return Err(InputError::SubmissionId(truncate(&self.submission_id, 64)));
        }
        let participant = ParticipantId::new(&self.participant)?;
        let count: usize = self.readings.values().map(Vec::len).sum();
        if count == 0 {
            return Err(InputError::NoReadings);
        }
        if count > limits.max_readings {
            return Err(InputError::TooManyReadings {
                count,
                max: limits.max_readings,
            });
        }
        if let Some(unknown) = self.readings.keys().find(|m| study.metric(m).is_none()) {
            return Err(InputError::UnknownMetric(truncate(unknown, 64)));
        }
        let bounds = KeyBounds::new(limits.key_bits_min..=limits.key_bits_max);
        let public_key = PublicKey::from_n_with_bounds(self.public_key.n.0, bounds)
            .map_err(InputError::PublicKey)?;
        let mut readings = BTreeMap::new();
        for (metric, series) in self.readings {
            let mut checked = Vec::with_capacity(series.len());
            for (index, reading) in series.into_iter().enumerate() {
                let location = || format!("{metric}[{index}]");
                let exponent =
                    i32::try_from(reading.exponent).map_err(|_| InputError::Ciphertext {
                        location: location(),
                        source: paillier::Error::ExponentRange(reading.exponent),
                    })?;
                let value = public_key
                    .encrypted_number(reading.ciphertext.0, exponent)
                    .map_err(|source| InputError::Ciphertext {
                        location: location(),
                        source,
                    })?;
                checked.push(value);
            }
            if !checked.is_empty() {
                readings.insert(metric, checked);
            }
        }
        Ok(Submission {
            id: self.submission_id,
            participant,
            public_key,
            readings,
        })
    }
}
