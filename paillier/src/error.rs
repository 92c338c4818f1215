//! The one error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in this crate. Errors about input from outside (keys, ciphertexts,
/// JSON) say which check failed, so that a service can log a useful reason and dead-letter the input.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The modulus n is even, so it cannot be a product of two odd primes.
    #[error("public key modulus n is even")]
    EvenModulus,
    /// The modulus n is shorter or longer than the accepted bounds.
    #[error("public key modulus has {bits} bits, outside the accepted {min}..={max}")]
    KeySize {
        /// Bit length of the offending modulus.
        bits: u64,
        /// Smallest accepted bit length.
        min: u64,
        /// Largest accepted bit length.
        max: u64,
    },
    /// The modulus n has a small prime factor, so it is not a product of two large primes.
    #[error("public key modulus n is divisible by the small prime {0}")]
    SmallFactor(u32),
    /// The generator g of a peer's key is not n + 1 (the only g this crate and python-paillier use).
    #[error("public key generator g is not n + 1")]
    BadGenerator,
    /// A requested key length is not one this crate generates.
    #[error("unsupported key length {0} bits: generate 2048, 3072 or 4096-bit keys")]
    UnsupportedKeyLength(u64),
    /// The primes given for a private key are unusable (equal, of different lengths, composite...).
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(&'static str),
    /// A ciphertext is 0, or not below n².
    #[error("ciphertext out of range: it must satisfy 0 < c < n²")]
    CiphertextOutOfRange,
    /// A ciphertext shares a factor with n: it is not a valid encryption (and would reveal the key).
    #[error("ciphertext is not invertible modulo n (gcd(c, n) != 1)")]
    CiphertextNotInvertible,
    /// Two encrypted numbers (or an encrypted number and a private key) belong to different keys.
    #[error("operands belong to different public keys")]
    KeyMismatch,
    /// A value's mantissa is too large for the key (|mantissa| > max_int).
    #[error("value too large to encode under this key: the mantissa exceeds max_int")]
    EncodingOverflow,
    /// A decrypted encoding lies between max_int and n - max_int: the computation overflowed.
    #[error("decrypted value overflowed: the result does not fit the encoding")]
    DecodingOverflow,
    /// An encoding is not below n.
    #[error("encoding is not reduced modulo n")]
    CorruptEncoding,
    /// A float is NaN or infinite, or a precision is not a positive finite number.
    #[error("not a finite number: {0}")]
    NonFinite(f64),
    /// A decoded value is too large for an f64.
    #[error("decoded value does not fit in an f64")]
    FloatOverflow,
    /// An exponent went outside the range this crate handles (|exponent| <= 10,000).
    #[error("exponent {0} out of the supported range")]
    ExponentRange(i64),
    /// A scalar multiplier is not in 0..n.
    #[error("scalar out of range for this key")]
    ScalarOutOfRange,
    /// A number in JSON could not be read.
    #[error("malformed number in JSON: {0}")]
    MalformedNumber(String),
    /// A JSON document does not have the expected shape.
    #[error("malformed JSON: {0}")]
    Json(String),
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Json(err.to_string())
    }
}
