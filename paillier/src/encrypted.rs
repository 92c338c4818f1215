//! Encrypted numbers and the homomorphic operations on them.
//!
//! With g = n + 1, E(a)·E(b) = E(a + b) and E(a)^k = E(k·a) modulo n². An encrypted number is a
//! ciphertext, the base-16 exponent of its encoding, and its key; the operations follow
//! python-paillier so that results interoperate:
//! - adding aligns exponents by lowering the larger one (a multiplication by 16^diff);
//! - multiplying by a scalar adds the scalar's exponent;
//! - a negative scalar k (encoded as n - |k|) is applied as (c⁻¹)^|k|: one inverse and a short
//!   exponent, instead of an exponent as long as n.
//!
//! Ciphertexts are kept in Montgomery form modulo n², so that a chain of operations never
//! converts back and forth: an addition is one modular multiplication.

use std::borrow::Cow;

use num_bigint::{BigInt, BigUint};

use crate::encoding::exponent_factor;
use crate::{EncodedNumber, Error, PublicKey};
use paillier_arith::Residue;

/// A ciphertext with the exponent of the value it encrypts, bound to its public key.
#[derive(Clone)]
pub struct EncryptedNumber {
    key: PublicKey,
    /// c·R mod n² (Montgomery form for the key's n² context).
    ciphertext: Residue,
    exponent: i32,
}

impl EncryptedNumber {
    pub(crate) fn from_parts(key: PublicKey, ciphertext: Residue, exponent: i32) -> Self {
        EncryptedNumber {
            key,
            ciphertext,
            exponent,
        }
    }

    /// The key this number is encrypted under.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The base-16 exponent of the encrypted encoding.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The ciphertext c, 0 < c < n². A result of arithmetic is NOT re-randomised by this call:
    /// before handing a computed number to anyone else, take [`EncryptedNumber::obfuscated`].
    pub fn ciphertext(&self) -> BigUint {
        self.key.n_squared_ctx().from_residue(&self.ciphertext)
    }

    fn with(&self, ciphertext: Residue, exponent: i32) -> Self {
        EncryptedNumber {
            key: self.key.clone(),
            ciphertext,
            exponent,
        }
    }

    /// The same plaintext with a fresh random factor r^n: unlinkable to this ciphertext.
    pub fn obfuscated(&self) -> Self {
        let ctx = self.key.n_squared_ctx();
        self.with(
            ctx.mul(&self.ciphertext, &self.key.random_obfuscator()),
            self.exponent,
        )
    }

    /// The same value with a lower exponent (the encrypted mantissa times 16^diff).
    pub fn decrease_exponent_to(&self, new_exponent: i32) -> Result<Self, Error> {
        if new_exponent > self.exponent {
            return Err(Error::ExponentRange(i64::from(new_exponent)));
        }
        if new_exponent == self.exponent {
            return Ok(self.clone());
        }
        let factor = exponent_factor(&self.key, self.exponent - new_exponent)?;
        let ctx = self.key.n_squared_ctx();
        Ok(self.with(ctx.pow(&self.ciphertext, &factor), new_exponent))
    }

    /// Homomorphic addition of two encrypted numbers under the same key.
    pub fn add(&self, other: &EncryptedNumber) -> Result<Self, Error> {
        self.key.check_same(&other.key)?;
        // Only the operand with the larger exponent is rewritten (python-paillier's rule);
        // with equal exponents, the common case, nothing is copied.
        let a = lowered_to(self, other.exponent)?;
        let b = lowered_to(other, self.exponent)?;
        let ctx = self.key.n_squared_ctx();
        Ok(self.with(ctx.mul(&a.ciphertext, &b.ciphertext), a.exponent))
    }

    /// Homomorphic subtraction: self + (-other).
    pub fn sub(&self, other: &EncryptedNumber) -> Result<Self, Error> {
        self.add(&other.neg())
    }

    /// Homomorphic negation (the ciphertext's inverse modulo n²).
    pub fn neg(&self) -> Self {
        self.with(self.inverse(), self.exponent)
    }

    fn inverse(&self) -> Residue {
        self.key
            .n_squared_ctx()
            .inverse_mod_square(&self.ciphertext, self.key.n())
            .expect("validated ciphertexts are units modulo n², and operations keep them so")
    }

    /// Adds a plaintext given as an encoding under the same key.
    pub fn add_encoded(&self, encoded: &EncodedNumber) -> Result<Self, Error> {
        self.key.check_same(encoded.public_key())?;
        let a = lowered_to(self, encoded.exponent())?;
        let b = if encoded.exponent() > a.exponent {
            Cow::Owned(encoded.decrease_exponent_to(a.exponent)?)
        } else {
            Cow::Borrowed(encoded)
        };
        // E(m, r=1) = g^m: adding a known plaintext needs no randomness (python-paillier does
        // the same; obfuscate before the result leaves).
        let ctx = self.key.n_squared_ctx();
        Ok(self.with(
            ctx.mul_one_plus_root_multiple(&a.ciphertext, self.key.n(), b.encoding()),
            a.exponent,
        ))
    }

    /// Adds a plaintext f64 (encoded with an exponent no larger than this number's).
    pub fn add_f64(&self, value: f64) -> Result<Self, Error> {
        self.add_encoded(&self.key.encode_f64_with(value, None, Some(self.exponent))?)
    }

    /// Adds a plaintext integer.
    pub fn add_i64(&self, value: i64) -> Result<Self, Error> {
        self.add_encoded(
            &self
                .key
                .encode_bigint_with_max_exponent(&BigInt::from(value), self.exponent)?,
        )
    }

    /// Multiplies by a plaintext given as an encoding under the same key.
    pub fn mul_encoded(&self, scalar: &EncodedNumber) -> Result<Self, Error> {
        self.key.check_same(scalar.public_key())?;
        let exponent = crate::encoding::check_exponent(
            i64::from(self.exponent) + i64::from(scalar.exponent()),
        )?;
        let ctx = self.key.n_squared_ctx();
        let k = scalar.encoding();
        let n = self.key.n();
        let product = if k >= &(n - self.key.max_int()) {
            // A negative scalar: (c⁻¹)^(n - k) instead of an exponent as long as n.
            ctx.pow(&self.inverse(), &(n - k))
        } else {
            ctx.pow(&self.ciphertext, k)
        };
        Ok(self.with(product, exponent))
    }

    /// Multiplies by a plaintext integer.
    pub fn mul_i64(&self, scalar: i64) -> Result<Self, Error> {
        self.mul_encoded(&self.key.encode_i64(scalar)?)
    }

    /// Multiplies by a plaintext f64 (encoded with python-paillier's exponent for it).
    pub fn mul_f64(&self, scalar: f64) -> Result<Self, Error> {
        self.mul_encoded(&self.key.encode_f64(scalar)?)
    }

    /// The same ciphertext, hence the same encrypted mantissa, labelled with another exponent:
    /// the value it stands for becomes `mantissa · 16^exponent`. Not value-preserving, and
    /// costs nothing (no arithmetic). For layouts that treat the plaintext as a raw integer
    /// modulo n, e.g. packing several results into one plaintext at exponent 0, where the
    /// exponents travel beside the ciphertext.
    pub fn relabel_exponent(&self, exponent: i32) -> Result<Self, Error> {
        let exponent = crate::encoding::check_exponent(i64::from(exponent))?;
        Ok(self.with(self.ciphertext.clone(), exponent))
    }
}

/// `value` itself when its exponent is at most `exponent`, else the same value lowered to it.
fn lowered_to(value: &EncryptedNumber, exponent: i32) -> Result<Cow<'_, EncryptedNumber>, Error> {
    if value.exponent > exponent {
        value.decrease_exponent_to(exponent).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(value))
    }
}

impl std::fmt::Debug for EncryptedNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedNumber")
            .field("key", &self.key.fingerprint())
            .field("exponent", &self.exponent)
            .finish_non_exhaustive()
    }
}

impl PartialEq for EncryptedNumber {
    /// Equal ciphertexts, exponents and keys (two encryptions of one value are NOT equal).
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.exponent == other.exponent
            && self.ciphertext == other.ciphertext
    }
}
