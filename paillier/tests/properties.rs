//! Property tests of the homomorphisms and the encoding, and tests of every validation error.

use std::sync::OnceLock;

use num_bigint::{BigInt, BigUint};
use num_traits::{One, Zero};
use paillier::json::{BigUintDecimal, EncryptedJson, PrivateJwk, PublicJwk};
use paillier::{Error, KeyBounds, PrivateKey, PublicKey};
use proptest::prelude::*;

/// One small key shared by the property tests (generating keys is the slow part).
fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_insecure_for_tests(512))
}

fn other_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_insecure_for_tests(512))
}

fn small_bounds() -> KeyBounds {
    KeyBounds::new(256..=8192)
}

/// Finite floats over a range where aligning exponents stays within a 512-bit key.
fn moderate_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e6f64..1e6,
        -1.0f64..1.0,
        Just(0.0),
        Just(-0.0),
        Just(5.4),
        Just(0.0555)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn integers_encode_and_decode_exactly(v in any::<i64>()) {
        let pk = key().public_key();
        let encoded = pk.encode_i64(v).unwrap();
        prop_assert_eq!(encoded.exponent(), 0);
        let decoded = pk.decode(&encoded).unwrap();
        prop_assert_eq!(decoded.to_bigint(), Some(BigInt::from(v)));
    }

    #[test]
    fn every_finite_float_encodes_and_decodes_exactly(bits in any::<u64>()) {
        let v = f64::from_bits(bits);
        prop_assume!(v.is_finite());
        let pk = key().public_key();
        let decoded = pk.decode(&pk.encode_f64(v).unwrap()).unwrap();
        prop_assert_eq!(decoded.to_f64().unwrap().to_bits(), if v == 0.0 { 0.0f64.to_bits() } else { v.to_bits() });
    }

    #[test]
    fn encryption_round_trips_on_both_paths(v in moderate_f64(), i in any::<i64>()) {
        let sk = key();
        let pk = sk.public_key();
        prop_assert_eq!(sk.decrypt_f64(&sk.encrypt_f64(v).unwrap()).unwrap(), v);
        prop_assert_eq!(sk.decrypt_f64(&pk.encrypt_f64(v).unwrap()).unwrap(), v);
        prop_assert_eq!(sk.decrypt(&sk.encrypt_i64(i).unwrap()).unwrap().to_bigint(), Some(BigInt::from(i)));
    }

    #[test]
    fn addition_is_homomorphic(a in moderate_f64(), b in moderate_f64()) {
        let sk = key();
        let sum = sk.encrypt_f64(a).unwrap().add(&sk.encrypt_f64(b).unwrap()).unwrap();
        // The exact sum of the mantissas, rounded once: IEEE addition rounds the same way.
        prop_assert_eq!(sk.decrypt_f64(&sum).unwrap(), a + b);
        let plain = sk.encrypt_f64(a).unwrap().add_f64(b).unwrap();
        prop_assert_eq!(sk.decrypt_f64(&plain).unwrap(), a + b);
        let difference = sk.encrypt_f64(a).unwrap().sub(&sk.encrypt_f64(b).unwrap()).unwrap();
        prop_assert_eq!(sk.decrypt_f64(&difference).unwrap(), a - b);
    }

    #[test]
    fn integer_addition_is_exact(a in any::<i64>(), b in any::<i64>()) {
        let sk = key();
        let sum = sk.encrypt_i64(a).unwrap().add_i64(b).unwrap();
        prop_assert_eq!(sk.decrypt(&sum).unwrap().to_bigint(), Some(BigInt::from(a) + b));
    }

    #[test]
    fn scalar_multiplication_is_homomorphic(a in moderate_f64(), k in any::<i32>(), f in moderate_f64()) {
        let sk = key();
        let e = sk.encrypt_f64(a).unwrap();
        prop_assert_eq!(sk.decrypt_f64(&e.mul_i64(i64::from(k)).unwrap()).unwrap(), a * f64::from(k));
        prop_assert_eq!(sk.decrypt_f64(&e.mul_f64(f).unwrap()).unwrap(), a * f);
        prop_assert_eq!(sk.decrypt_f64(&e.neg()).unwrap(), -a);
    }

    #[test]
    fn obfuscation_changes_the_ciphertext_not_the_value(a in moderate_f64()) {
        let sk = key();
        let e = sk.encrypt_f64(a).unwrap();
        let o = e.obfuscated();
        prop_assert_ne!(e.ciphertext(), o.ciphertext());
        prop_assert_eq!(sk.decrypt_f64(&o).unwrap(), a);
    }

    #[test]
    fn weighted_sums_match_plaintext(a in 0.0f64..50.0, b in 0.0f64..50.0, wa in -2.0f64..2.0, wb in -2.0f64..2.0, offset in -10.0f64..10.0) {
        let sk = key();
        let score = sk.encrypt_f64(a).unwrap().mul_f64(wa).unwrap()
            .add(&sk.encrypt_f64(b).unwrap().mul_f64(wb).unwrap()).unwrap()
            .add_f64(offset).unwrap();
        let expected = a * wa + b * wb + offset;
        let got = sk.decrypt_f64(&score).unwrap();
        // Computed exactly then rounded once; the f64 expression rounds three times.
        prop_assert!((got - expected).abs() <= 1e-12 * expected.abs().max(1.0), "{} vs {}", got, expected);
    }

    #[test]
    fn ciphertexts_from_outside_round_trip_through_json(a in moderate_f64()) {
        let sk = key();
        let e = sk.encrypt_f64(a).unwrap();
        let json = serde_json::to_string(&EncryptedJson::new(&e)).unwrap();
        let back: EncryptedJson = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(sk.decrypt_f64(&back.decode(sk.public_key()).unwrap()).unwrap(), a);
    }
}

#[test]
fn generated_keys_have_the_asked_length() {
    let sk = PrivateKey::generate(2048).unwrap();
    assert_eq!(sk.public_key().bits(), 2048);
    assert_eq!(sk.p().bits(), 1024);
    assert_eq!(sk.q().bits(), 1024);
    assert!(sk.p() < sk.q());
    assert_eq!(&(sk.p() * sk.q()), sk.public_key().n());
    assert!(matches!(
        PrivateKey::generate(1024),
        Err(Error::UnsupportedKeyLength(1024))
    ));
}

#[test]
fn debug_never_prints_secrets() {
    let sk = key();
    let shown = format!("{sk:?} {:?}", PrivateJwk::new(sk, "k"));
    for secret in [sk.p(), sk.q()] {
        assert!(!shown.contains(&secret.to_string()), "{shown}");
        assert!(!shown.contains(&secret.to_str_radix(16)), "{shown}");
    }
    assert!(shown.contains("redacted"));
}

#[test]
fn mixing_keys_is_an_error() {
    let a = key().encrypt_f64(1.0).unwrap();
    let b = other_key().encrypt_f64(2.0).unwrap();
    assert_eq!(a.add(&b).unwrap_err(), Error::KeyMismatch);
    assert_eq!(other_key().decrypt(&a).unwrap_err(), Error::KeyMismatch);
    let encoded = other_key().public_key().encode_f64(1.0).unwrap();
    assert_eq!(a.mul_encoded(&encoded).unwrap_err(), Error::KeyMismatch);
    assert_eq!(a.add_encoded(&encoded).unwrap_err(), Error::KeyMismatch);
}

#[test]
fn overflow_is_an_error_not_a_wrong_number() {
    let sk = key();
    let pk = sk.public_key();
    let max = BigInt::from(pk.max_int().clone());
    assert_eq!(
        pk.encode_bigint(&(&max + BigInt::one())).unwrap_err(),
        Error::EncodingOverflow
    );
    assert_eq!(
        pk.encode_bigint(&-(&max + BigInt::one())).unwrap_err(),
        Error::EncodingOverflow
    );
    let top = sk.encrypt(&pk.encode_bigint(&max).unwrap()).unwrap();
    assert_eq!(sk.decrypt(&top).unwrap().to_bigint(), Some(max.clone()));
    assert_eq!(
        sk.decrypt(&top.add_i64(1).unwrap()).unwrap_err(),
        Error::DecodingOverflow
    );
    assert_eq!(
        sk.decrypt(&top.mul_i64(2).unwrap()).unwrap_err(),
        Error::DecodingOverflow
    );
    // Aligning exponents may not scale a mantissa past max_int.
    let tiny = sk.encrypt_f64(1e-300).unwrap();
    let huge = sk.encrypt_f64(1e300).unwrap();
    assert_eq!(tiny.add(&huge).unwrap_err(), Error::EncodingOverflow);
    assert!(matches!(pk.encode_f64(f64::NAN), Err(Error::NonFinite(_))));
    assert!(matches!(
        pk.encode_f64(f64::INFINITY),
        Err(Error::NonFinite(_))
    ));
}

#[test]
fn hostile_ciphertexts_are_refused() {
    let sk = key();
    let pk = sk.public_key();
    assert_eq!(
        pk.encrypted_number(BigUint::zero(), 0).unwrap_err(),
        Error::CiphertextOutOfRange
    );
    assert_eq!(
        pk.encrypted_number(pk.n_squared().clone(), 0).unwrap_err(),
        Error::CiphertextOutOfRange
    );
    assert_eq!(
        pk.encrypted_number(pk.n_squared() + 5u32, 0).unwrap_err(),
        Error::CiphertextOutOfRange
    );
    assert_eq!(
        pk.encrypted_number(sk.p() * 12345u32, 0).unwrap_err(),
        Error::CiphertextNotInvertible
    );
    assert_eq!(
        pk.encrypted_number(pk.n().clone(), 0).unwrap_err(),
        Error::CiphertextNotInvertible
    );
    assert!(pk.encrypted_number(BigUint::one(), 0).is_ok()); // 1 = E(0, r = 1): valid
    assert_eq!(
        pk.encrypted_number(BigUint::one(), 20_000).unwrap_err(),
        Error::ExponentRange(20_000)
    );
}

#[test]
fn hostile_public_keys_are_refused() {
    let n = key().public_key().n().clone();
    assert_eq!(
        PublicKey::from_n(n.clone()).unwrap_err(),
        Error::KeySize {
            bits: 512,
            min: 2048,
            max: 8192
        }
    );
    assert!(PublicKey::from_n_with_bounds(n.clone(), small_bounds()).is_ok());
    assert_eq!(
        PublicKey::from_n_with_bounds(&n + 1u32, small_bounds()).unwrap_err(),
        Error::EvenModulus
    );
    assert_eq!(
        PublicKey::from_n_with_bounds(&n * 7u32, small_bounds()).unwrap_err(),
        Error::SmallFactor(7)
    );
    let huge = (BigUint::one() << 1_000_000u32) + 1u32;
    assert!(matches!(
        PublicKey::from_n(huge),
        Err(Error::KeySize {
            bits: 1_000_001,
            ..
        })
    ));
}

#[test]
fn private_keys_from_primes_are_checked() {
    let sk = key();
    let again = PrivateKey::from_primes(sk.q().clone(), sk.p().clone()).unwrap();
    assert_eq!(&again, sk);
    assert!(PrivateKey::from_primes(sk.p().clone(), sk.p().clone()).is_err());
    assert!(PrivateKey::from_primes(sk.p().clone(), sk.q() + 2u32).is_err());
    assert!(PrivateKey::from_primes(sk.p().clone(), other_key().p().clone() << 1u32).is_err());
}

/// The key store's cheaper check still refuses what a damaged or mixed-up file would hold,
/// including a composite with no small factor (a product of two 512-bit primes, the length of
/// a 1024-bit prime).
#[test]
fn own_primes_are_checked_too() {
    let sk = PrivateKey::generate_insecure_for_tests(2048);
    let again = PrivateKey::from_own_primes(sk.q().clone(), sk.p().clone()).unwrap();
    assert_eq!(again, sk);
    assert!(PrivateKey::from_own_primes(sk.p().clone(), sk.p().clone()).is_err());
    assert!(PrivateKey::from_own_primes(sk.p().clone(), sk.p() >> 1u32).is_err());
    let semiprime = PrivateKey::generate_insecure_for_tests(1024)
        .public_key()
        .n()
        .clone();
    assert_eq!(semiprime.bits(), sk.p().bits());
    assert!(matches!(
        PrivateKey::from_own_primes(sk.p().clone(), semiprime.clone()),
        Err(paillier::Error::InvalidPrivateKey("p or q is not prime"))
    ));
    assert!(PrivateKey::from_primes(sk.p().clone(), semiprime).is_err());
}

#[test]
fn big_integers_in_json_never_pass_through_floats() {
    let digits = "1".repeat(600);
    let bare: BigUintDecimal = serde_json::from_str(&digits).unwrap();
    let quoted: BigUintDecimal = serde_json::from_str(&format!("\"{digits}\"")).unwrap();
    assert_eq!(bare, quoted);
    assert_eq!(bare.0.to_string(), digits);
    for bad in [
        "-5", "1.5", "1e5", "\"12a\"", "\"\"", "\" 12\"", "true", "null",
    ] {
        assert!(
            serde_json::from_str::<BigUintDecimal>(bad).is_err(),
            "{bad} accepted"
        );
    }
    let too_long = "9".repeat(5_001);
    assert!(serde_json::from_str::<BigUintDecimal>(&too_long).is_err());
}

#[test]
fn jwk_keys_round_trip() {
    let sk = key();
    let json = serde_json::to_string(&PrivateJwk::new(sk, "participant p-1")).unwrap();
    assert!(json.contains("\"kty\":\"DAJ\"") && json.contains("\"alg\":\"PAI-GN1\""));
    let back: PrivateJwk = serde_json::from_str(&json).unwrap();
    assert_eq!(
        &back.to_private_key_with_bounds(small_bounds()).unwrap(),
        sk
    );
    // A 512-bit key is refused under the default bounds.
    assert!(matches!(
        back.to_private_key(),
        Err(Error::KeySize { bits: 512, .. })
    ));
    let mut wrong_alg = back.clone();
    wrong_alg.public.alg = "RSA".into();
    assert!(
        wrong_alg
            .to_private_key_with_bounds(small_bounds())
            .is_err()
    );
    let public: PublicJwk =
        serde_json::from_str(&serde_json::to_string(&back.public).unwrap()).unwrap();
    assert_eq!(
        &public.to_public_key(small_bounds()).unwrap(),
        sk.public_key()
    );
    // A private key whose public half does not match is refused.
    let mut mixed = back.clone();
    mixed.public = PublicJwk::new(other_key().public_key(), "x");
    assert!(mixed.to_private_key_with_bounds(small_bounds()).is_err());
}
