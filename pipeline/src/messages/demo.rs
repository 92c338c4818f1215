//! The original demo's request and reply: every value times one random integer in 1..=10.
//!
//! The wire format is the demo's own, `{"public_key": {"g": .., "n": ..}, "values": [["<c>",
//! exponent], ..]}` in, `{"values": [..]}` out. It is an application message, so it lives here
//! with the pipeline's other messages; the `paillier` crate supplies only the number formats it
//! is built from ([`BigUintDecimal`], [`map_only`]).

use paillier::json::{BigUintDecimal, map_only};
use paillier::{EncryptedNumber, KeyBounds, MAX_ABS_EXPONENT, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::InputError;
use crate::config::Limits;

/// The public key in the original demo's format: g and n (g must be n + 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoPublicKey {
    /// The generator; python-paillier always uses n + 1.
    pub g: BigUintDecimal,
    /// The modulus.
    pub n: BigUintDecimal,
}

impl DemoPublicKey {
    /// The validated key: n within `bounds`, g = n + 1.
    pub fn to_public_key(&self, bounds: KeyBounds) -> Result<PublicKey, paillier::Error> {
        if self.g.0 != &self.n.0 + 1u32 {
            return Err(paillier::Error::BadGenerator);
        }
        PublicKey::from_n_with_bounds(self.n.0.clone(), bounds)
    }

    /// The demo form of a key.
    pub fn from_public_key(key: &PublicKey) -> Self {
        DemoPublicKey {
            g: key.g().into(),
            n: key.n().clone().into(),
        }
    }
}

/// A ciphertext and exponent as the demo sends them: `["<ciphertext>", exponent]`.
pub type DemoValue = (BigUintDecimal, i64);

/// A request in the original demo's wire format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoPayload {
    /// The participant's public key (an object `{"g", "n"}`, never an array).
    #[serde(deserialize_with = "map_only")]
    pub public_key: DemoPublicKey,
    /// The encrypted values, in order.
    pub values: Vec<DemoValue>,
}

impl DemoPayload {
    /// The key and the validated encrypted values (without the pipeline's limits; the worker
    /// uses [`DemoRequest::validate`]).
    pub fn decode(
        &self,
        bounds: KeyBounds,
    ) -> Result<(PublicKey, Vec<EncryptedNumber>), paillier::Error> {
        let key = self.public_key.to_public_key(bounds)?;
        let values = decode_values(&self.values, &key)?;
        Ok((key, values))
    }

    /// A demo request from encrypted values.
    pub fn new(key: &PublicKey, values: &[EncryptedNumber]) -> Self {
        DemoPayload {
            public_key: DemoPublicKey::from_public_key(key),
            values: demo_values(values),
        }
    }
}

/// The demo server's reply: the computed ciphertexts in request order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoReply {
    /// Encrypted results, `["<ciphertext>", exponent]` each.
    pub values: Vec<DemoValue>,
}

impl DemoReply {
    /// A reply from encrypted results (obfuscate them first).
    pub fn new(values: &[EncryptedNumber]) -> Self {
        DemoReply {
            values: demo_values(values),
        }
    }

    /// The validated encrypted values under `key`.
    pub fn decode(&self, key: &PublicKey) -> Result<Vec<EncryptedNumber>, paillier::Error> {
        decode_values(&self.values, key)
    }
}

fn demo_values(values: &[EncryptedNumber]) -> Vec<DemoValue> {
    values
        .iter()
        .map(|v| (v.ciphertext().into(), i64::from(v.exponent())))
        .collect()
}

fn decode_values(
    values: &[DemoValue],
    key: &PublicKey,
) -> Result<Vec<EncryptedNumber>, paillier::Error> {
    values
        .iter()
        .map(|(c, e)| key.encrypted_number(c.0.clone(), demo_exponent(*e)?))
        .collect()
}

/// An exponent from the wire, refused outside paillier's supported range before it is narrowed
/// (`unsigned_abs`, not `abs`: `i64::MIN.abs()` overflows; found by fuzzing).
fn demo_exponent(exponent: i64) -> Result<i32, paillier::Error> {
    if exponent.unsigned_abs() <= MAX_ABS_EXPONENT.unsigned_abs() {
        i32::try_from(exponent).map_err(|_| paillier::Error::ExponentRange(exponent))
    } else {
        Err(paillier::Error::ExponentRange(exponent))
    }
}

/// A validated demo request.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    /// The requester's key.
    pub public_key: PublicKey,
    /// The values to compute on, in order.
    pub values: Vec<EncryptedNumber>,
}

impl DemoRequest {
    /// Checks the key (size, g = n + 1) and every ciphertext.
    pub fn validate(payload: &DemoPayload, limits: &Limits) -> Result<DemoRequest, InputError> {
        if payload.values.is_empty() {
            return Err(InputError::NoReadings);
        }
        if payload.values.len() > limits.max_readings {
            return Err(InputError::TooManyReadings {
                count: payload.values.len(),
                max: limits.max_readings,
            });
        }
        let bounds = KeyBounds::new(limits.key_bits_min..=limits.key_bits_max);
        let public_key = payload
            .public_key
            .to_public_key(bounds)
            .map_err(InputError::PublicKey)?;
        let values = payload
            .values
            .iter()
            .enumerate()
            .map(|(index, (c, e))| {
                let location = format!("values[{index}]");
                let exponent = i32::try_from(*e).map_err(|_| InputError::Ciphertext {
                    location: location.clone(),
                    source: paillier::Error::ExponentRange(*e),
                })?;
                public_key
                    .encrypted_number(c.0.clone(), exponent)
                    .map_err(|source| InputError::Ciphertext { location, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DemoRequest { public_key, values })
    }

    /// The demo's "useful computation": every value times the same `factor` (the worker draws it
    /// uniformly from 1..=10), re-randomised when `obfuscate`.
    pub fn compute(&self, factor: i64, obfuscate: bool) -> Result<DemoReply, paillier::Error> {
        let values = self
            .values
            .iter()
            .map(|v| {
                let product = v.mul_i64(factor)?;
                Ok(if obfuscate {
                    product.obfuscated()
                } else {
                    product
                })
            })
            .collect::<Result<Vec<_>, paillier::Error>>()?;
        Ok(DemoReply::new(&values))
    }
}

/// The body sent to a demo client whose request was refused: `{"error": {"kind", "message"}}`.
pub fn demo_error_reply(error: &InputError) -> Vec<u8> {
    serde_json::to_vec(&json!({"error": {"kind": error.kind(), "message": error.to_string()}}))
        .expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use num_bigint::BigUint;
    use paillier::PrivateKey;

    use super::*;

    /// Found by the hostile corpus: serde's derived structs also read arrays, so a demo key
    /// `["<g>", "<n>"]` was accepted. (Moved from paillier's json tests with the format.)
    #[test]
    fn the_demo_key_is_read_from_an_object_only() {
        let object = r#"{"public_key": {"g": "16", "n": "15"}, "values": [["1", 0]]}"#;
        let payload: DemoPayload = serde_json::from_str(object).unwrap();
        assert_eq!(payload.public_key.n.0, BigUint::from(15u32));
        let array = r#"{"public_key": ["16", "15"], "values": [["1", 0]]}"#;
        let err = serde_json::from_str::<DemoPayload>(array).unwrap_err();
        assert!(
            err.to_string().contains("expected struct DemoPublicKey")
                || err.to_string().contains("invalid type: sequence"),
            "{err}"
        );
        // Bare big integers still go through the raw-value path inside a map-only struct.
        let bare = format!(
            r#"{{"public_key": {{"g": 1{}, "n": 1{}}}, "values": []}}"#,
            "0".repeat(400),
            "0".repeat(400)
        );
        let payload: DemoPayload = serde_json::from_str(&bare).unwrap();
        assert_eq!(payload.public_key.n.0.to_string().len(), 401);
    }

    /// Found by fuzzing: an exponent of i64::MIN overflowed `abs()` in the exponent check (a
    /// panic in debug builds; in release it passed the check and was read as exponent 0).
    #[test]
    fn the_most_negative_exponent_is_refused_in_demo_messages() {
        let key = PrivateKey::generate_insecure_for_tests(256);
        let pk = key.public_key();
        let c = pk.encrypt_i64(7).unwrap().ciphertext().to_string();
        for e in [i64::MIN, i64::MIN + 1, i64::MAX, -10_001, 10_001] {
            let reply: DemoReply =
                serde_json::from_str(&format!(r#"{{"values": [["{c}", {e}]]}}"#)).unwrap();
            assert_eq!(
                reply.decode(pk).unwrap_err(),
                paillier::Error::ExponentRange(e)
            );
            let payload: DemoPayload = serde_json::from_str(&format!(
                r#"{{"public_key": {{"g": "{}", "n": "{}"}}, "values": [["{c}", {e}]]}}"#,
                pk.g(),
                pk.n()
            ))
            .unwrap();
            assert_eq!(
                payload.decode(KeyBounds::new(128..=512)).unwrap_err(),
                paillier::Error::ExponentRange(e)
            );
        }
    }
}
