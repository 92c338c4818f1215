//! The original demo's request and reply: every value times one random integer in 1..=10.

use paillier::json::{DemoPayload, DemoReply};
use paillier::{EncryptedNumber, KeyBounds, PublicKey};
use serde_json::json;

use super::error::InputError;
use crate::config::Limits;

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
