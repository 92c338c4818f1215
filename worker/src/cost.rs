//! The work a message would cost, estimated from public data before any exponentiation.
//!
//! A hostile sender chooses the modulus length, the number of values and their exponents, and
//! with them the worker's cost: 200 demo values under an 8192-bit key cost 200 full 8192-bit
//! re-randomisations, minutes of CPU for 7 KB on the wire. [`CostModel::work`] prices a message
//! in units of **one honest submission at the study's key size** (`participant.key_bits`, one
//! reading per metric), and the worker refuses a message above `limits.max_work` units with
//! the kind `too_costly`, after the structural checks (counts, exponents, key size, ciphertext
//! ranges: no exponentiation) and before the first exponentiation.
//!
//! The model counts full-length exponentiations modulo n² (the dominant cost: a re-randomisation
//! r^n is one), each costing (bits / study bits)³ of one at the study's size (an exponentiation
//! is `bits` squarings of numbers of 2·bits bits: cubic):
//! - re-randomising a result ciphertext: 1 (per packed result, per demo value), when results are
//!   obfuscated;
//! - checking a ciphertext on arrival (gcd with n, conversion to Montgomery form):
//!   [`VALIDATE_FRACTION`] of one;
//! - aligning exponents when readings are added: 4 bits of exponent per unit of spread, per
//!   reading (`4 · spread / bits` of one);
//! - scalar multiplications of the study's outputs and the demo's factor: [`SCALAR_BITS`] bits
//!   of exponent each.

use pipeline::config::Settings;

/// Share of a full-length exponentiation that checking one ciphertext costs (gcd(c mod n, n)
/// and the conversion to Montgomery form). Measured 0.002 at 3072 bits (0.059 ms against 31 ms,
/// `validation_costs_a_fraction_of_an_exponentiation`); counted 2.5 times over.
pub const VALIDATE_FRACTION: f64 = 0.005;

/// Bits of the exponent of a scalar multiplication (the study's encoded factors are at most
/// 64-bit integers; the demo's factor 1..=10 is 4 bits, priced the same).
pub const SCALAR_BITS: f64 = 64.0;

/// What a message asks the worker to do, read from the wire before any validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkShape {
    /// Bit length of the modulus n.
    pub key_bits: u64,
    /// Ciphertexts in the message.
    pub values: usize,
    /// Highest minus lowest exponent of the values (0 for demo requests: they are never added).
    pub exponent_spread: u64,
    /// A demo-shaped request (one scalar multiplication and one re-randomisation per value)
    /// rather than a submission (the study's outputs, one packed result).
    pub demo: bool,
}

/// Prices messages relative to an honest submission at the study's key size.
#[derive(Debug, Clone)]
pub struct CostModel {
    study_bits: f64,
    outputs: usize,
    obfuscate: bool,
    pack: bool,
    honest: f64,
    /// Largest accepted work, in honest submissions (`limits.max_work`).
    pub max_work: f64,
}

impl CostModel {
    /// The model for `settings`.
    pub fn new(settings: &Settings) -> CostModel {
        let mut model = CostModel {
            study_bits: settings.participant.key_bits as f64,
            outputs: settings.study.outputs.len(),
            obfuscate: settings.worker.obfuscate_results,
            pack: settings.worker.pack_results,
            honest: 1.0,
            max_work: settings.limits.max_work,
        };
        let honest = WorkShape {
            key_bits: settings.participant.key_bits,
            values: settings.study.metrics.len(),
            exponent_spread: 0,
            demo: false,
        };
        // Always counts one re-randomisation, so that the unit stays a meaningful amount of
        // work when obfuscation is switched off.
        model.honest = model.exponentiations(&honest).max(1.0);
        model
    }

    /// Full-length exponentiations at the message's own key size.
    fn exponentiations(&self, shape: &WorkShape) -> f64 {
        let bits = shape.key_bits.max(1) as f64;
        let values = shape.values as f64;
        let validate = values * VALIDATE_FRACTION;
        if shape.demo {
            let rerandomise = if self.obfuscate { values } else { 0.0 };
            validate + values * SCALAR_BITS / bits + rerandomise
        } else {
            let align = values * 4.0 * shape.exponent_spread as f64 / bits;
            let scale = self.outputs as f64 * SCALAR_BITS / bits;
            let results = if self.pack { 1.0 } else { self.outputs as f64 };
            let rerandomise = if self.obfuscate { results } else { 0.0 };
            validate + align + scale + rerandomise
        }
    }

    /// The work of `shape`, in honest submissions at the study's key size.
    pub fn work(&self, shape: &WorkShape) -> f64 {
        let scale = (shape.key_bits as f64 / self.study_bits).powi(3);
        self.exponentiations(shape) * scale / self.honest
    }

    /// `Err((work, limit))` when `shape` costs more than `limits.max_work`.
    pub fn check(&self, shape: &WorkShape) -> Result<f64, (f64, f64)> {
        let work = self.work(shape);
        if work > self.max_work {
            Err((work, self.max_work))
        } else {
            Ok(work)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(key_bits: u64, values: usize, spread: u64, demo: bool) -> WorkShape {
        WorkShape {
            key_bits,
            values,
            exponent_spread: spread,
            demo,
        }
    }

    #[test]
    fn an_honest_submission_is_one_unit_and_the_costly_demo_request_is_refused() {
        let model = CostModel::new(&Settings::defaults());
        let honest = model.work(&shape(3072, 2, 0, false));
        assert!((honest - 1.0).abs() < 1e-9, "{honest}");
        // A long honest series at the study's size and a 4096-bit key pass.
        assert!(model.check(&shape(3072, 100, 3, false)).is_ok());
        assert!(model.check(&shape(4096, 10, 3, false)).is_ok());
        // The demo client's own request: a handful of values under a 2048-bit key.
        assert!(model.check(&shape(2048, 10, 0, true)).is_ok());
        // Issue 10's costly request: 200 values under an 8192-bit key.
        let (work, limit) = model.check(&shape(8192, 200, 0, true)).unwrap_err();
        assert!(work > 1000.0 && limit == 24.0, "{work}");
        // Its submission equivalent: 200 readings, 8192 bits, a spread of 64.
        assert!(model.check(&shape(8192, 200, 64, false)).is_err());
        // The largest submission the limits admit at the study's size is refused too.
        assert!(model.check(&shape(3072, 1000, 64, false)).is_err());
    }
}

#[cfg(test)]
mod measured {
    use std::time::Instant;

    use paillier::PrivateKey;

    /// Measures [`super::VALIDATE_FRACTION`]: `cargo test -p worker --release --lib
    /// validation_costs -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn validation_costs_a_fraction_of_an_exponentiation() {
        let key = PrivateKey::generate(3072).unwrap();
        let pk = key.public_key();
        let c = pk.encrypt_i64(7).unwrap();
        let rounds = 50;
        let started = Instant::now();
        for _ in 0..rounds {
            let _ = pk.encrypted_number(c.ciphertext(), 0).unwrap();
        }
        let validate = started.elapsed().as_secs_f64() / f64::from(rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            let _ = c.obfuscated();
        }
        let rerandomise = started.elapsed().as_secs_f64() / f64::from(rounds);
        println!(
            "3072 bits: validate {:.3} ms, re-randomise {:.3} ms, fraction {:.3}",
            validate * 1e3,
            rerandomise * 1e3,
            validate / rerandomise
        );
    }
}
