//! A participant's submission: encrypted readings by metric, under the participant's public key.

use std::collections::BTreeMap;

use paillier::json::{BigUintDecimal, MapOnly};
use paillier::{EncryptedNumber, KeyBounds, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use super::error::{InputError, truncate};
use crate::config::Limits;
use crate::participant::ParticipantId;
use crate::study::{ReadingError, Study};

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
    #[serde(deserialize_with = "paillier::json::map_only")]
    pub public_key: KeyWire,
    /// Encrypted readings by metric name; several readings of a metric form a series. A metric
    /// named twice is refused rather than letting the last series silently win (parsers differ on
    /// duplicate keys, so a reader and the worker could otherwise see different readings).
    #[serde(deserialize_with = "distinct_metrics")]
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

/// Reads the `readings` object, refusing a metric that appears twice.
fn distinct_metrics<'de, D>(deserializer: D) -> Result<BTreeMap<String, Vec<ReadingWire>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<String, Vec<ReadingWire>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of reading series by metric name")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut readings = BTreeMap::new();
            while let Some(metric) = map.next_key::<String>()? {
                if readings.contains_key(&metric) {
                    return Err(serde::de::Error::custom(format!(
                        "metric {:?} appears twice in readings",
                        truncate(&metric, 64)
                    )));
                }
                // Each reading an object: serde would also take `[ciphertext, exponent]`.
                let series = map.next_value::<Vec<MapOnly<ReadingWire>>>()?;
                readings.insert(metric, series.into_iter().map(|r| r.0).collect());
            }
            Ok(readings)
        }
    }
    deserializer.deserialize_map(Visitor)
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
    /// Encrypts `readings` (metric name -> series) with the key owner's fast path, each at its
    /// metric's exponent ([`Study::encode_reading`]). Every reading is encoded, and so checked
    /// against its metric's range, before the first one is encrypted.
    pub fn encrypt(
        study: &Study,
        submission_id: &str,
        participant: &ParticipantId,
        key: &PrivateKey,
        readings: &BTreeMap<String, Vec<f64>>,
    ) -> Result<SubmissionWire, ReadingError> {
        let encoded = readings
            .iter()
            .map(|(metric, series)| {
                let series = series
                    .iter()
                    .map(|v| study.encode_reading(key.public_key(), metric, *v))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((metric, series))
            })
            .collect::<Result<Vec<_>, ReadingError>>()?;
        let mut encrypted = BTreeMap::new();
        for (metric, series) in encoded {
            let series = series
                .iter()
                .map(|e| {
                    key.encrypt(e).map(|c| ReadingWire {
                        ciphertext: c.ciphertext().into(),
                        exponent: i64::from(c.exponent()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| ReadingError::Paillier {
                    metric: metric.clone(),
                    source,
                })?;
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

    /// Checks everything a worker must trust before computing: version, ids, counts, metrics,
    /// exponents (each its metric's; cheap checks first), then the key and every ciphertext.
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
        // Exponents are plain integers: check them before the key. Each must be its metric's
        // (the study fixes one per metric so that the exponent, which travels in clear, says
        // nothing about the value); that also means adding a series never rescales a reading.
        for (metric, series) in &self.readings {
            let expected = study
                .metric(metric)
                .expect("metrics were checked against the study above")
                .exponent();
            for (index, reading) in series.iter().enumerate() {
                let e = reading.exponent;
                let location = || format!("{}[{index}]", truncate(metric, 64));
                if e.unsigned_abs() > paillier::MAX_ABS_EXPONENT.unsigned_abs() {
                    return Err(InputError::Ciphertext {
                        location: location(),
                        source: paillier::Error::ExponentRange(e),
                    });
                }
                if e != i64::from(expected) {
                    return Err(InputError::ExponentMismatch {
                        location: location(),
                        exponent: e,
                        expected,
                    });
                }
            }
        }
        let bounds = KeyBounds::new(limits.key_bits_min..=limits.key_bits_max);
        let public_key = PublicKey::from_n_with_bounds(self.public_key.n.0, bounds)
            .map_err(InputError::PublicKey)?;
        let mut readings = BTreeMap::new();
        for (metric, series) in self.readings {
            let mut checked = Vec::with_capacity(series.len());
            for (index, reading) in series.into_iter().enumerate() {
                let location = || format!("{metric}[{index}]");
                // In range: checked above.
                let exponent = reading.exponent as i32;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// A 256-bit-key submission with the given glucose exponents, and limits admitting its key.
    fn with_exponents(exponents: &[i64], n: Option<&str>) -> (SubmissionWire, Settings) {
        let key = PrivateKey::generate_insecure_for_tests(256);
        let participant = ParticipantId::new("p-1").unwrap();
        let values = vec![1.0; exponents.len()];
        let settings = Settings::defaults();
        let mut wire = SubmissionWire::encrypt(
            &settings.study,
            "s-1",
            &participant,
            &key,
            &BTreeMap::from([("glucose".to_owned(), values)]),
        )
        .unwrap();
        for (reading, e) in wire
            .readings
            .get_mut("glucose")
            .unwrap()
            .iter_mut()
            .zip(exponents)
        {
            reading.exponent = *e;
        }
        if let Some(n) = n {
            wire.public_key.n = BigUintDecimal::parse(n).unwrap();
        }
        let mut settings = settings;
        settings.limits.key_bits_min = 128;
        (wire, settings)
    }

    fn kind(exponents: &[i64], n: Option<&str>) -> &'static str {
        let (wire, settings) = with_exponents(exponents, n);
        match wire.validate(&settings.study, &settings.limits) {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn every_reading_must_carry_its_metrics_exponent_checked_before_the_key() {
        // The default study's glucose precision 0.0001 fixes exponent -4.
        assert_eq!(kind(&[-4, -4, -4], None), "ok");
        assert_eq!(kind(&[-4, -5], None), "exponent_mismatch");
        assert_eq!(kind(&[-13], None), "exponent_mismatch");
        assert_eq!(kind(&[-3, -4], None), "exponent_mismatch");
        // An even modulus would be refused, but the exponent is checked first (no arithmetic).
        assert_eq!(kind(&[-4, 0], Some("4")), "exponent_mismatch");
        assert_eq!(kind(&[-4, -4], Some("4")), "invalid_public_key");
        // Out-of-range exponents are named as such.
        assert_eq!(kind(&[10_001], None), "invalid_ciphertext");
        assert_eq!(kind(&[-4, i64::MIN], None), "invalid_ciphertext");
        let (wire, settings) = with_exponents(&[-4, -4, -13], None);
        let err = wire
            .validate(&settings.study, &settings.limits)
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "reading glucose[2] has exponent -13; this study encodes it at exponent -4"
            ),
            "{err}"
        );
    }

    /// The public part of a submission: everything but its id and the ciphertexts.
    fn public_part(wire: &SubmissionWire) -> serde_json::Value {
        let mut v = serde_json::to_value(wire).unwrap();
        v.as_object_mut().unwrap().remove("submission_id");
        for series in v["readings"].as_object_mut().unwrap().values_mut() {
            for reading in series.as_array_mut().unwrap() {
                reading.as_object_mut().unwrap().remove("ciphertext");
            }
        }
        v
    }

    #[test]
    fn readings_of_very_different_sizes_look_the_same_on_the_wire() {
        let settings = Settings::defaults();
        let key = PrivateKey::generate_insecure_for_tests(512);
        let participant = ParticipantId::new("p-1").unwrap();
        let wire = |glucose: f64, cholesterol: f64| {
            SubmissionWire::encrypt(
                &settings.study,
                &uuid::Uuid::new_v4().to_string(),
                &participant,
                &key,
                &BTreeMap::from([
                    ("glucose".to_owned(), vec![glucose, glucose]),
                    ("cholesterol".to_owned(), vec![cholesterol]),
                ]),
            )
            .unwrap()
        };
        let (small, large) = (wire(1.2, 0.6), wire(33.0, 45.0));
        assert_ne!(small.submission_id, large.submission_id);
        assert_eq!(public_part(&small), public_part(&large));
        assert_eq!(
            public_part(&small)["readings"]["glucose"],
            serde_json::json!([{"exponent": -4}, {"exponent": -4}])
        );
        // python-paillier's float encoding gives these two glucose readings different
        // exponents (-13 and -12): the leak a fixed exponent closes.
        let pk = key.public_key();
        assert_ne!(
            pk.encode_f64(1.2).unwrap().exponent(),
            pk.encode_f64(33.0).unwrap().exponent()
        );
        // And both pass the worker's checks.
        for w in [small, large] {
            w.validate(&settings.study, &{
                let mut limits = settings.limits.clone();
                limits.key_bits_min = 128;
                limits
            })
            .unwrap();
        }
    }
}
