//! JSON forms a peer may send or expect, with serde.
//!
//! - [`BigUintDecimal`]: a decimal big integer written as a JSON string, and read from a string
//!   or a bare JSON integer of any length. Python's `json` module writes big integers bare;
//!   serde_json would read those as f64 and silently lose digits, so the value is taken from
//!   the raw JSON text instead and never passes through a float.
//! - [`DemoPayload`] / [`DemoReply`]: the original demo's wire format,
//!   `{"public_key": {"g": .., "n": ..}, "values": [["<c>", exponent], ..]}`.
//! - [`PublicJwk`], [`PrivateJwk`], [`EncryptedJson`]: python-paillier's own formats, as its
//!   command line tool `pheutil` writes them (key type "DAJ", big integers in unpadded
//!   base64url, ciphertexts as `{"v": "<decimal>", "e": exponent}`).
//!
//! Everything read here is validated before use: keys through [`PublicKey::from_n_with_bounds`]
//! or [`PrivateKey::from_primes`], ciphertexts through [`PublicKey::encrypted_number`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use num_bigint::BigUint;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{EncryptedNumber, Error, KeyBounds, PrivateKey, PublicKey};

/// Longest decimal integer accepted: a ciphertext under the largest accepted key (n of 8192
/// bits, so n² < 2^16384) has 4,933 digits. Longer input is refused before any arithmetic.
pub const MAX_DECIMAL_DIGITS: usize = 5_000;

/// A non-negative big integer in JSON: written as a decimal string, read from a decimal string
/// or a bare JSON integer (as Python's `json` writes big ints). Only plain ASCII digits are
/// accepted (no sign, exponent, fraction or whitespace inside).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BigUintDecimal(pub BigUint);

impl BigUintDecimal {
    /// Parses plain decimal digits.
    pub fn parse(digits: &str) -> Result<Self, Error> {
        if digits.is_empty() {
            return Err(Error::MalformedNumber("empty number".into()));
        }
        if digits.len() > MAX_DECIMAL_DIGITS {
            return Err(Error::MalformedNumber(format!(
                "{} digits, more than the {MAX_DECIMAL_DIGITS} accepted",
                digits.len()
            )));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            let shown: String = digits.chars().take(20).collect();
            return Err(Error::MalformedNumber(format!(
                "not a non-negative decimal integer: {shown:?}"
            )));
        }
        BigUint::parse_bytes(digits.as_bytes(), 10)
            .map(BigUintDecimal)
            .ok_or_else(|| Error::MalformedNumber("not a decimal integer".into()))
    }
}

impl fmt::Debug for BigUintDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<BigUint> for BigUintDecimal {
    fn from(value: BigUint) -> Self {
        BigUintDecimal(value)
    }
}

impl Serialize for BigUintDecimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_str_radix(10))
    }
}

impl<'de> Deserialize<'de> for BigUintDecimal {
    /// Works with serde_json only (it needs the raw JSON text of the value).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(deserializer)?;
        let text = raw.get().trim();
        let digits = if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(D::Error::custom)?
        } else {
            text.to_owned()
        };
        BigUintDecimal::parse(&digits).map_err(D::Error::custom)
    }
}

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
    pub fn to_public_key(&self, bounds: KeyBounds) -> Result<PublicKey, Error> {
        if self.g.0 != &self.n.0 + 1u32 {
            return Err(Error::BadGenerator);
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
    /// The participant's public key.
    pub public_key: DemoPublicKey,
    /// The encrypted values, in order.
    pub values: Vec<DemoValue>,
}

impl DemoPayload {
    /// The key and the validated encrypted values.
    pub fn decode(&self, bounds: KeyBounds) -> Result<(PublicKey, Vec<EncryptedNumber>), Error> {
        let key = self.public_key.to_public_key(bounds)?;
        let values = self
            .values
            .iter()
            .map(|(c, e)| key.encrypted_number(c.0.clone(), crate::encoding::check_exponent(*e)?))
            .collect::<Result<Vec<_>, _>>()?;
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
    pub fn decode(&self, key: &PublicKey) -> Result<Vec<EncryptedNumber>, Error> {
        self.values
            .iter()
            .map(|(c, e)| key.encrypted_number(c.0.clone(), crate::encoding::check_exponent(*e)?))
            .collect()
    }
}

fn demo_values(values: &[EncryptedNumber]) -> Vec<DemoValue> {
    values
        .iter()
        .map(|v| (v.ciphertext().into(), i64::from(v.exponent())))
        .collect()
}

/// A ciphertext as python-paillier's `pheutil encrypt` writes it: `{"v": "<decimal>", "e": exponent}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptedJson {
    /// The ciphertext.
    pub v: BigUintDecimal,
    /// The exponent.
    pub e: i64,
}

impl EncryptedJson {
    /// The JSON form of an encrypted number (obfuscate computed values first).
    pub fn new(value: &EncryptedNumber) -> Self {
        EncryptedJson {
            v: value.ciphertext().into(),
            e: i64::from(value.exponent()),
        }
    }

    /// The validated encrypted number under `key`.
    pub fn decode(&self, key: &PublicKey) -> Result<EncryptedNumber, Error> {
        key.encrypted_number(self.v.0.clone(), crate::encoding::check_exponent(self.e)?)
    }
}

/// A big integer in unpadded base64url of its big-endian bytes, as python-paillier's
/// `int_to_base64`.
#[derive(Clone, PartialEq, Eq)]
pub struct Base64Uint(pub BigUint);

impl Serialize for Base64Uint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(self.0.to_bytes_be()))
    }
}

impl<'de> Deserialize<'de> for Base64Uint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // Accept padded input too: python-paillier strips padding, other tools may not.
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| D::Error::custom(format!("invalid base64url integer: {e}")))?;
        if bytes.len() > 2 * 1024 {
            return Err(D::Error::custom("base64url integer longer than 16384 bits"));
        }
        Ok(Base64Uint(BigUint::from_bytes_be(&bytes)))
    }
}

impl fmt::Debug for Base64Uint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Uint({} bits)", self.0.bits())
    }
}

/// The key type python-paillier uses in its JWKs.
pub const JWK_KEY_TYPE: &str = "DAJ";
/// The algorithm name of a python-paillier public JWK.
pub const JWK_ALGORITHM: &str = "PAI-GN1";

fn check_key_type(kty: &str) -> Result<(), Error> {
    if kty == JWK_KEY_TYPE {
        Ok(())
    } else {
        Err(Error::Json(format!(
            "key type {kty:?} is not {JWK_KEY_TYPE:?}"
        )))
    }
}

/// A public key as `pheutil extract` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Always "DAJ".
    pub kty: String,
    /// Always "PAI-GN1".
    pub alg: String,
    /// ["encrypt"] (optional on input, as for pheutil).
    #[serde(default)]
    pub key_ops: Vec<String>,
    /// The modulus n.
    pub n: Base64Uint,
    /// A free-text key id (optional on input).
    #[serde(default)]
    pub kid: String,
}

impl PublicJwk {
    /// The JWK of a public key, with a key id.
    pub fn new(key: &PublicKey, kid: impl Into<String>) -> Self {
        PublicJwk {
            kty: JWK_KEY_TYPE.into(),
            alg: JWK_ALGORITHM.into(),
            key_ops: vec!["encrypt".into()],
            n: Base64Uint(key.n().clone()),
            kid: kid.into(),
        }
    }

    /// The validated public key.
    pub fn to_public_key(&self, bounds: KeyBounds) -> Result<PublicKey, Error> {
        check_key_type(&self.kty)?;
        if self.alg != JWK_ALGORITHM {
            return Err(Error::Json(format!(
                "key algorithm {:?} is not {JWK_ALGORITHM:?}",
                self.alg
            )));
        }
        PublicKey::from_n_with_bounds(self.n.0.clone(), bounds)
    }
}

/// A private key as `pheutil genpkey` writes it. Its `Debug` omits the primes.
#[derive(Clone, Serialize, Deserialize)]
pub struct PrivateJwk {
    /// Always "DAJ".
    pub kty: String,
    /// ["decrypt"] (optional on input, as for pheutil).
    #[serde(default)]
    pub key_ops: Vec<String>,
    /// The prime p (secret).
    pub p: Base64Uint,
    /// The prime q (secret).
    pub q: Base64Uint,
    /// The public half.
    #[serde(rename = "pub")]
    pub public: PublicJwk,
    /// A free-text key id (optional on input).
    #[serde(default)]
    pub kid: String,
}

impl PrivateJwk {
    /// The JWK of a private key; `kid` names it (the public half gets the same id).
    pub fn new(key: &PrivateKey, kid: impl Into<String>) -> Self {
        let kid = kid.into();
        PrivateJwk {
            kty: JWK_KEY_TYPE.into(),
            key_ops: vec!["decrypt".into()],
            p: Base64Uint(key.p().clone()),
            q: Base64Uint(key.q().clone()),
            public: PublicJwk::new(key.public_key(), kid.clone()),
            kid,
        }
    }

    /// The validated private key, its modulus within the default [`KeyBounds`] (so a weak
    /// key file is refused); its public half must match the primes.
    pub fn to_private_key(&self) -> Result<PrivateKey, Error> {
        self.to_private_key_with_bounds(KeyBounds::default())
    }

    /// The validated private key, its modulus within `bounds` (tests use small keys).
    pub fn to_private_key_with_bounds(&self, bounds: KeyBounds) -> Result<PrivateKey, Error> {
        check_key_type(&self.kty)?;
        self.public.to_public_key(bounds)?;
        let key = PrivateKey::from_primes(self.p.0.clone(), self.q.0.clone())?;
        if key.public_key().n() != &self.public.n.0 {
            return Err(Error::InvalidPrivateKey(
                "public modulus does not equal p·q",
            ));
        }
        Ok(key)
    }
}

impl fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateJwk")
            .field("kid", &self.kid)
            .field("pub", &self.public)
            .finish_non_exhaustive()
    }
}
