//! python-paillier's `EncodedNumber`: a real number as an integer mantissa times 16^exponent,
//! with negative mantissas wrapped modulo n.
//!
//! Paillier encrypts integers modulo n. To carry signed and fractional values, a value v is
//! written as `mantissa · 16^exponent`; the encryption holds `mantissa mod n` and the exponent
//! travels in the clear beside it. Mantissas up to `max_int = n/3 - 1` in absolute value are
//! valid: `[0, max_int]` are non-negative, `[n - max_int, n)` are negative, and anything in
//! between can only come from a computation that overflowed, so decoding rejects it instead of
//! returning a wrong number.
//!
//! Exponents are chosen exactly as python-paillier 1.5 chooses them, so a value encodes to the
//! same (mantissa, exponent) in both:
//! - integers: exponent 0;
//! - floats: the largest exponent that keeps every bit of the f64: with `frexp(v) = (f, e)`,
//!   `exponent = floor((e - 53) / 4)`;
//! - with a precision: `exponent = floor(log16(precision))`;
//! - a `max_exponent` lowers the exponent further (used to match an operand's exponent).
//!
//! The mantissa is then `round(v · 16^-exponent)`, computed exactly (round half to even, as
//! Python's `round(Fraction)`).

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};

use crate::{Error, PublicKey};

/// Base of the exponent: 16, as python-paillier.
pub const BASE: u32 = 16;

/// Exponents beyond ±10,000 are refused: no honest value needs them (an f64 needs at most
/// about ±270), and a hostile one would make exponent alignment expensive.
pub const MAX_ABS_EXPONENT: i64 = 10_000;

pub(crate) fn check_exponent(exponent: i64) -> Result<i32, Error> {
    // unsigned_abs, not abs: i64::MIN.abs() overflows (a panic in debug builds, and in release
    // a negative "absolute value" that passed the check and became exponent 0). Found by fuzzing.
    if exponent.unsigned_abs() <= MAX_ABS_EXPONENT.unsigned_abs() {
        Ok(exponent as i32)
    } else {
        Err(Error::ExponentRange(exponent))
    }
}

/// A plaintext value encoded for one public key: `encoding = mantissa mod n` and the exponent.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedNumber {
    key: PublicKey,
    encoding: BigUint,
    exponent: i32,
}

impl EncodedNumber {
    /// An encoding from its parts; `encoding` must be below n.
    pub fn from_parts(key: PublicKey, encoding: BigUint, exponent: i32) -> Result<Self, Error> {
        check_exponent(i64::from(exponent))?;
        if &encoding >= key.n() {
            return Err(Error::CorruptEncoding);
        }
        Ok(EncodedNumber {
            key,
            encoding,
            exponent,
        })
    }

    /// The key this value is encoded for.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The mantissa modulo n.
    pub fn encoding(&self) -> &BigUint {
        &self.encoding
    }

    /// The base-16 exponent.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The same value with a lower exponent: the mantissa times 16^(exponent - new_exponent).
    /// Fails if the scaled mantissa no longer fits (python-paillier raises there too).
    pub fn decrease_exponent_to(&self, new_exponent: i32) -> Result<Self, Error> {
        if new_exponent > self.exponent {
            return Err(Error::ExponentRange(i64::from(new_exponent)));
        }
        let factor = exponent_factor(&self.key, self.exponent - new_exponent)?;
        let encoding = (&self.encoding * factor) % self.key.n();
        EncodedNumber::from_parts(self.key.clone(), encoding, new_exponent)
    }
}

impl std::fmt::Debug for EncodedNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedNumber")
            .field("encoding", &self.encoding)
            .field("exponent", &self.exponent)
            .finish()
    }
}

/// 16^diff, refused when it exceeds max_int: python-paillier's `decrease_exponent_to` encodes
/// this factor as an integer and fails the same way. The bound also caps the work a hostile
/// exponent can cause.
pub(crate) fn exponent_factor(key: &PublicKey, diff: i32) -> Result<BigUint, Error> {
    debug_assert!(diff >= 0);
    if u64::from(diff.unsigned_abs()) * 4 >= key.bits() {
        return Err(Error::EncodingOverflow);
    }
    let factor = BigUint::one() << (4 * diff.unsigned_abs());
    if &factor > key.max_int() {
        return Err(Error::EncodingOverflow);
    }
    Ok(factor)
}

/// A decrypted, decoded value: an exact `mantissa · 16^exponent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    mantissa: BigInt,
    exponent: i32,
}

impl Decoded {
    /// The signed mantissa.
    pub fn mantissa(&self) -> &BigInt {
        &self.mantissa
    }

    /// The base-16 exponent.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The value as the nearest f64 (round half to even), as python-paillier's `decode`
    /// returns it; fails if it is too large for an f64.
    pub fn to_f64(&self) -> Result<f64, Error> {
        scaled_to_f64(&self.mantissa, 4 * i64::from(self.exponent))
    }

    /// The value as an exact integer when it is one (exponent >= 0, or a mantissa divisible
    /// by the scale).
    pub fn to_bigint(&self) -> Option<BigInt> {
        if self.exponent >= 0 {
            Some(&self.mantissa << (4 * self.exponent.unsigned_abs()))
        } else {
            let scale = BigInt::one() << (4 * self.exponent.unsigned_abs());
            let (q, r) = self.mantissa.div_rem(&scale);
            r.is_zero().then_some(q)
        }
    }
}

impl PublicKey {
    /// Encodes an integer with exponent 0.
    pub fn encode_i64(&self, value: i64) -> Result<EncodedNumber, Error> {
        self.encode_bigint(&BigInt::from(value))
    }

    /// Encodes a big integer with exponent 0.
    pub fn encode_bigint(&self, value: &BigInt) -> Result<EncodedNumber, Error> {
        self.encode_mantissa(value.clone(), 0)
    }

    /// Encodes an f64 with python-paillier's default exponent (all of the f64's precision).
    pub fn encode_f64(&self, value: f64) -> Result<EncodedNumber, Error> {
        self.encode_f64_with(value, None, None)
    }

    /// Encodes an f64 with an optional precision (the exponent becomes
    /// floor(log16(precision))) and an optional maximum exponent, exactly as python-paillier's
    /// `EncodedNumber.encode(key, value, precision, max_exponent)`.
    pub fn encode_f64_with(
        &self,
        value: f64,
        precision: Option<f64>,
        max_exponent: Option<i32>,
    ) -> Result<EncodedNumber, Error> {
        if !value.is_finite() {
            return Err(Error::NonFinite(value));
        }
        let precision_exponent = match precision {
            None => float_exponent(value),
            Some(p) if p.is_finite() && p > 0.0 => {
                // python: math.floor(math.log(precision, 16)) = floor(log(p) / log(16)).
                (p.ln() / f64::from(BASE).ln()).floor() as i64
            }
            Some(p) => return Err(Error::NonFinite(p)),
        };
        let exponent = match max_exponent {
            Some(max) => precision_exponent.min(i64::from(max)),
            None => precision_exponent,
        };
        let exponent = check_exponent(exponent)?;
        self.encode_mantissa(round_scaled_f64(value, exponent), exponent)
    }

    /// Encodes an integer for use beside an operand with exponent `max_exponent`
    /// (python-paillier: `encode(key, int, max_exponent=...)`).
    pub(crate) fn encode_bigint_with_max_exponent(
        &self,
        value: &BigInt,
        max_exponent: i32,
    ) -> Result<EncodedNumber, Error> {
        let exponent = max_exponent.min(0);
        check_exponent(i64::from(exponent))?;
        let mantissa = value << (4 * exponent.unsigned_abs());
        self.encode_mantissa(mantissa, exponent)
    }

    fn encode_mantissa(&self, mantissa: BigInt, exponent: i32) -> Result<EncodedNumber, Error> {
        if mantissa.magnitude() > self.max_int() {
            return Err(Error::EncodingOverflow);
        }
        let n = BigInt::from(self.n().clone());
        let encoding = mantissa
            .mod_floor(&n)
            .to_biguint()
            .expect("mod_floor by a positive n is non-negative");
        EncodedNumber::from_parts(self.clone(), encoding, exponent)
    }

    /// Decodes an encoding: non-negative up to max_int, negative from n - max_int, overflow in
    /// between.
    pub fn decode(&self, encoded: &EncodedNumber) -> Result<Decoded, Error> {
        self.check_same(encoded.public_key())?;
        let n = self.n();
        let encoding = encoded.encoding();
        let mantissa = if encoding >= n {
            return Err(Error::CorruptEncoding);
        } else if encoding <= self.max_int() {
            BigInt::from(encoding.clone())
        } else if encoding >= &(n - self.max_int()) {
            BigInt::from(encoding.clone()) - BigInt::from(n.clone())
        } else {
            return Err(Error::DecodingOverflow);
        };
        Ok(Decoded {
            mantissa,
            exponent: encoded.exponent(),
        })
    }
}

/// python-paillier's exponent for a float: floor((frexp(v).exponent - 53) / 4).
fn float_exponent(value: f64) -> i64 {
    Integer::div_floor(&(frexp_exponent(value) - 53), &4)
}

/// The e of frexp(v) = (f, e), 0.5 <= |f| < 1 (0 for zero), as C's and Python's frexp.
fn frexp_exponent(value: f64) -> i64 {
    if value == 0.0 {
        return 0;
    }
    let bits = value.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    if biased == 0 {
        // Subnormal: the leading bit sits inside the mantissa field.
        let mantissa = bits & ((1 << 52) - 1);
        -1022 - (mantissa.leading_zeros() as i64 - 12)
    } else {
        biased - 1022
    }
}

/// round(value · 16^-exponent), exact, rounding half to even.
fn round_scaled_f64(value: f64, exponent: i32) -> BigInt {
    let (mantissa, binary_exponent) = f64_parts(value);
    // value · 16^-exponent = mantissa · 2^(binary_exponent - 4·exponent)
    let shift = binary_exponent - 4 * i64::from(exponent);
    if shift >= 0 {
        BigInt::from(mantissa) << shift.unsigned_abs()
    } else {
        let magnitude = round_shift_right_half_even(
            &BigUint::from(mantissa.unsigned_abs()),
            shift.unsigned_abs(),
        );
        BigInt::from_biguint(
            if mantissa < 0 {
                Sign::Minus
            } else {
                Sign::Plus
            },
            magnitude,
        )
    }
}

/// An f64 as an exact integer mantissa and binary exponent: value = mantissa · 2^exponent.
fn f64_parts(value: f64) -> (i64, i64) {
    let bits = value.to_bits();
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = (bits & ((1 << 52) - 1)) as i64;
    if biased == 0 {
        (sign * fraction, -1074)
    } else {
        (sign * (fraction | (1 << 52)), biased - 1075)
    }
}

/// round(x / 2^shift), half to even.
fn round_shift_right_half_even(x: &BigUint, shift: u64) -> BigUint {
    if shift == 0 {
        return x.clone();
    }
    if shift > x.bits() {
        return BigUint::zero(); // below one half
    }
    let quotient = x >> shift;
    let half_bit = x.bit(shift - 1);
    let below_half_nonzero = x.trailing_zeros().is_some_and(|tz| tz < shift - 1);
    let round_up = half_bit && (below_half_nonzero || quotient.bit(0));
    if round_up { quotient + 1u32 } else { quotient }
}

/// mantissa · 2^shift as the nearest f64 (half to even), like Python's int true division by a
/// power of two; an error if it overflows.
pub(crate) fn scaled_to_f64(mantissa: &BigInt, shift: i64) -> Result<f64, Error> {
    let magnitude = mantissa.magnitude();
    if magnitude.is_zero() {
        return Ok(0.0);
    }
    let top = magnitude.bits() as i64 - 1 + shift; // binary exponent of the leading bit
    if top > 1024 {
        return Err(Error::FloatOverflow);
    }
    // Weight of the last kept bit: 53 significant bits, but never below 2^-1074 (subnormals).
    let unit = (top - 52).max(-1074);
    let drop = unit - shift; // bits of the magnitude below that weight
    let mut kept = if drop >= 0 {
        round_shift_right_half_even(magnitude, drop.unsigned_abs())
    } else {
        magnitude << drop.unsigned_abs()
    }
    .to_u64()
    .expect("at most 54 bits remain");
    let mut unit = unit;
    let bits = if unit == -1074 {
        // Subnormal (or the smallest binade): the kept integer is exactly the bit pattern.
        kept
    } else {
        if kept == 1 << 53 {
            kept = 1 << 52;
            unit += 1;
        }
        let biased = unit + 52 + 1023;
        if biased >= 0x7ff {
            return Err(Error::FloatOverflow);
        }
        ((biased as u64) << 52) | (kept - (1 << 52))
    };
    let value = f64::from_bits(bits);
    Ok(if mantissa.is_negative() {
        -value
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_exponents_match_python() {
        // Values checked with python-paillier 1.5: EncodedNumber.encode(pk, v).exponent
        assert_eq!(float_exponent(5.4), -13);
        assert_eq!(float_exponent(0.0555), -15);
        assert_eq!(float_exponent(0.0259), -15);
        assert_eq!(float_exponent(0.0), -14);
        assert_eq!(float_exponent(1.0), -13);
        assert_eq!(float_exponent(-3.75), -13);
    }

    #[test]
    fn frexp_matches_c() {
        assert_eq!(frexp_exponent(1.0), 1);
        assert_eq!(frexp_exponent(0.5), 0);
        assert_eq!(frexp_exponent(0.75), 0);
        assert_eq!(frexp_exponent(1024.0), 11);
        assert_eq!(frexp_exponent(f64::MIN_POSITIVE), -1021);
        assert_eq!(frexp_exponent(f64::from_bits(1)), -1073);
    }

    #[test]
    fn scaled_to_f64_rounds_like_python() {
        let f = |m: i64, s: i64| scaled_to_f64(&BigInt::from(m), s).unwrap();
        assert_eq!(f(3, -1), 1.5);
        assert_eq!(f(-7, 2), -28.0);
        // 2^53 + 1 is not representable: rounds to even (2^53).
        assert_eq!(f((1 << 53) + 1, 0), 9007199254740992.0);
        assert_eq!(f((1 << 53) + 3, 0), 9007199254740996.0);
        assert_eq!(f(1, -1074), f64::from_bits(1));
        assert_eq!(f(1, -1075), 0.0); // exactly half the smallest subnormal: ties to even (0)
        assert_eq!(f(3, -1076), f64::from_bits(1)); // 0.75 of it rounds up
        assert!(scaled_to_f64(&BigInt::from(1), 1024).is_err());
        assert_eq!(
            scaled_to_f64(&BigInt::from(1), 1023).unwrap(),
            2f64.powi(1023)
        );
        for v in [
            5.4,
            0.0555,
            -3.75,
            1e-300,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let (m, e) = f64_parts(v);
            assert_eq!(scaled_to_f64(&BigInt::from(m), e).unwrap(), v);
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        let r = |x: u64, s: u64| round_shift_right_half_even(&BigUint::from(x), s);
        assert_eq!(r(0b1010, 2), BigUint::from(2u32)); // 2.5 -> 2
        assert_eq!(r(0b1110, 2), BigUint::from(4u32)); // 3.5 -> 4
        assert_eq!(r(0b1011, 2), BigUint::from(3u32)); // 2.75 -> 3
        assert_eq!(r(0b1001, 2), BigUint::from(2u32)); // 2.25 -> 2
        assert_eq!(r(1, 5), BigUint::zero());
    }
}
