//! JSON forms a peer may send or expect, with serde.
//!
//! - [`BigUintDecimal`]: a decimal big integer written as a JSON string, and read from a string
//!   or a bare JSON integer of any length. Python's `json` module writes big integers bare;
//!   serde_json would read those as f64 and silently lose digits, so the value is taken from
//!   the raw JSON text instead and never passes through a float.
//! - [`MapOnly`] / [`map_only`]: structs read from JSON objects only, never from arrays.
//! - [`PublicJwk`], [`PrivateJwk`], [`EncryptedJson`]: python-paillier's own formats, as its
//!   command line tool `pheutil` writes them (key type "DAJ", big integers in unpadded
//!   base64url, ciphertexts as `{"v": "<decimal>", "e": exponent}`).
//!
//! Everything read here is validated before use: keys through [`PublicKey::from_n_with_bounds`]
//! or [`PrivateKey::from_primes`], ciphertexts through [`PublicKey::encrypted_number`].
//!
//! The original demo's wire format, an application message built from these pieces, is the
//! pipeline's (`pipeline::messages::DemoPayload`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use num_bigint::BigUint;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{EncryptedNumber, Error, KeyBounds, PrivateKey, PublicKey};

/// Largest modulus (bits) whose values the JSON forms here can carry: [`MAX_DECIMAL_DIGITS`] and
/// the base64url length cap are sized for it. A service must not accept longer keys (the
/// pipeline's configuration refuses a `key_bits_max` above it): their ciphertexts would be
/// refused as malformed numbers.
pub const MAX_KEY_BITS: u64 = 8192;

/// Longest decimal integer accepted: a ciphertext under the largest accepted key (n of
/// [`MAX_KEY_BITS`] = 8192 bits, so n² < 2^16384) has 4,933 digits. Longer input is refused
/// before any arithmetic.
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

/// A value read only from a JSON object, never from an array.
///
/// serde's derived struct deserializers accept a struct written as an array of its fields in
/// order (`{"g": .., "n": ..}` also as `[.., ..]`). A strict reader wants one spelling per
/// message, so the wire types of this crate and of the pipeline read their structs through this
/// wrapper (or [`map_only`]), which asks the format for a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(StructAsMap(deserializer)).map(MapOnly)
    }
}

/// For `#[serde(deserialize_with = "paillier::json::map_only")]` on a struct-typed field.
pub fn map_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    MapOnly::<T>::deserialize(deserializer).map(|m| m.0)
}

/// A deserializer that turns requests for a struct into requests for a map (which JSON
/// formats only satisfy with an object) and forwards everything else unchanged.
struct StructAsMap<D>(D);

/// Forwards `deserialize_*` methods to the wrapped deserializer's method of the same name.
macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for StructAsMap<D> {
    type Error = D::Error;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
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
    #[serde(rename = "pub", deserialize_with = "map_only")]
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
        self.check_consistent(bounds)?;
        PrivateKey::from_primes(self.p.0.clone(), self.q.0.clone())
    }

    /// The private key from a file of one's own key store, with the cheaper primality check
    /// of [`PrivateKey::from_own_primes`] (the key type, the bounds and p·q = n are checked
    /// as by [`PrivateJwk::to_private_key_with_bounds`]).
    pub fn to_own_private_key_with_bounds(&self, bounds: KeyBounds) -> Result<PrivateKey, Error> {
        self.check_consistent(bounds)?;
        PrivateKey::from_own_primes(self.p.0.clone(), self.q.0.clone())
    }

    /// Key type, bounds, and p·q = n. The product comes first: one multiplication bounds p and
    /// q by the already-checked n, before any primality test (a corrupt file with a
    /// 16,384-bit "p" would otherwise cost seconds).
    fn check_consistent(&self, bounds: KeyBounds) -> Result<(), Error> {
        check_key_type(&self.kty)?;
        self.public.to_public_key(bounds)?;
        if &self.p.0 * &self.q.0 != self.public.n.0 {
            return Err(Error::InvalidPrivateKey(
                "public modulus does not equal p·q",
            ));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the hostile corpus: serde's derived structs also read arrays, so a JWK's
    /// public half as an array was accepted. (The demo key's half of this test moved with the
    /// demo format to `pipeline::messages::demo`.)
    #[test]
    fn structs_inside_messages_are_read_from_objects_only() {
        let key = PrivateKey::generate_insecure_for_tests(256);
        let mut jwk = serde_json::to_value(PrivateJwk::new(&key, "k")).unwrap();
        let public = jwk["pub"].clone();
        let read: PrivateJwk = serde_json::from_value(jwk.clone()).unwrap();
        assert_eq!(read.public.n.0, *key.public_key().n());
        jwk["pub"] = serde_json::json!([
            public["kty"],
            public["alg"],
            public["key_ops"],
            public["n"],
            public["kid"]
        ]);
        assert!(serde_json::from_value::<PrivateJwk>(jwk).is_err());
    }

    /// Found by fuzzing: an exponent of i64::MIN overflowed `abs()` in the exponent check (a
    /// panic in debug builds; in release it passed the check and was read as exponent 0). The
    /// demo messages' half of this test is in `pipeline::messages::demo`.
    #[test]
    fn the_most_negative_exponent_is_refused_everywhere_it_is_read() {
        let key = PrivateKey::generate_insecure_for_tests(256);
        let pk = key.public_key();
        let c = pk.encrypt_i64(7).unwrap().ciphertext().to_string();
        for e in [i64::MIN, i64::MIN + 1, i64::MAX, -10_001, 10_001] {
            let enc: EncryptedJson =
                serde_json::from_str(&format!(r#"{{"v": "{c}", "e": {e}}}"#)).unwrap();
            assert_eq!(enc.decode(pk).unwrap_err(), Error::ExponentRange(e));
        }
    }

    /// Found by reading the code: a corrupt key file with a huge "p" went through Miller–Rabin
    /// before p·q was compared with n.
    #[test]
    fn a_private_jwk_whose_primes_do_not_multiply_to_n_is_refused_before_primality_tests() {
        let key = PrivateKey::generate_insecure_for_tests(256);
        let mut jwk = PrivateJwk::new(&key, "k");
        jwk.p = Base64Uint(BigUint::from(1u32) << 16_000u32);
        let started = std::time::Instant::now();
        let err = jwk
            .to_private_key_with_bounds(KeyBounds::new(128..=512))
            .unwrap_err();
        assert_eq!(
            err,
            Error::InvalidPrivateKey("public modulus does not equal p·q")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
