//! The original demo's wire format ([`DemoPayload`], [`DemoReply`]) read as python writes it:
//! bare big integers, python-paillier's known answers, our own writer. These tests moved here
//! from the `paillier` crate with the format; their assertions are unchanged.

use std::str::FromStr;
use std::sync::{LazyLock, OnceLock};

use num_bigint::{BigInt, BigUint};
use paillier::{EncryptedNumber, Error, KeyBounds, PrivateKey};
use pipeline::messages::DemoPayload;
use serde_json::Value;

/// python-paillier's known answers, written by `paillier/tests/vectors/make_vectors.py`; its
/// `demo_payload` section is the demo body python's json module writes (n and g bare).
const VECTORS: &str = include_str!("../../paillier/tests/vectors/phe_vectors.json");

static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(VECTORS).expect("phe_vectors.json is valid JSON"));

/// The key of the known answers, from python-paillier's primes.
static VECTOR_KEY: LazyLock<PrivateKey> = LazyLock::new(|| {
    let key = &DOC["key"];
    PrivateKey::from_primes(big(&key["p"]), big(&key["q"]))
        .expect("python-paillier's primes make a valid private key")
});

/// One small key for the round trips (generating keys is the slow part).
fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_insecure_for_tests(512))
}

fn small_bounds() -> KeyBounds {
    KeyBounds::new(256..=8192)
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a JSON string, got {v}"))
}

fn big(v: &Value) -> BigUint {
    BigUint::from_str(text(v)).unwrap_or_else(|e| panic!("bad decimal {v}: {e}"))
}

fn signed(v: &Value) -> BigInt {
    BigInt::from_str(text(v)).unwrap_or_else(|e| panic!("bad decimal {v}: {e}"))
}

fn exponent(v: &Value) -> i32 {
    let n = match v {
        Value::Number(n) => n.as_i64().expect("an i64"),
        Value::String(s) => s.parse().expect("an i64 in a string"),
        _ => panic!("expected an integer, got {v}"),
    };
    i32::try_from(n).expect("exponent fits i32")
}

/// Collects mismatches; panics with all of them at the end (as paillier's known-answer tests).
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!(
                "[{case}] {what}: got {got:?}, python-paillier {want:?}"
            ));
        }
    }

    fn fail(&mut self, case: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("[{case}] {msg}"));
    }

    fn finish(self, section: &str, total: usize) {
        assert!(total > 0, "section {section} is empty");
        if !self.0.is_empty() {
            panic!(
                "{} mismatch(es) in {section} ({total} vectors):\n  {}",
                self.0.len(),
                self.0.join("\n  ")
            );
        }
    }
}

/// Checks a value against a vector entry: ciphertext, exponent, decrypted mantissa and
/// exponent, and the f64 decryption bit for bit (the demo vectors decrypt without error).
fn check_result(f: &mut Failures, case: &str, got: &EncryptedNumber, want: &Value) {
    f.check(
        case,
        "ciphertext",
        got.ciphertext(),
        big(&want["ciphertext"]),
    );
    f.check(
        case,
        "exponent",
        got.exponent(),
        exponent(&want["exponent"]),
    );
    if let Some(e) = want.get("decrypt_error") {
        f.fail(case, format!("demo vector expects a decryption error: {e}"));
        return;
    }
    match VECTOR_KEY.decrypt(got) {
        Ok(d) => {
            f.check(
                case,
                "mantissa",
                d.mantissa().clone(),
                signed(&want["mantissa"]),
            );
            f.check(case, "decoded exponent", d.exponent(), got.exponent());
        }
        Err(err) => f.fail(case, format!("decrypt failed: {err}")),
    }
    match (VECTOR_KEY.decrypt_f64(got), want.get("f64")) {
        (Ok(x), Some(w)) => {
            let w: f64 = text(w).parse().expect("python float repr");
            // Bits, not ==: python divides exactly and rounds once; so must we.
            f.check(
                case,
                "decrypt_f64 (as bits)",
                (x, x.to_bits()),
                (w, w.to_bits()),
            );
        }
        (Ok(x), None) => f.fail(case, format!("decrypt_f64 gave {x}, vector has no f64")),
        (Err(err), w) => f.fail(case, format!("decrypt_f64 failed ({err}), python {w:?}")),
    }
}

#[test]
fn demo_payloads_are_read_with_bare_integers_and_checked() {
    let sk = key();
    let pk = sk.public_key();
    let values = [sk.encrypt_i64(10).unwrap(), sk.encrypt_i64(-11).unwrap()];
    // Python's json module writes n and g bare: build the body that way.
    let body = format!(
        r#"{{"public_key": {{"g": {}, "n": {}}}, "values": [["{}", 0], ["{}", 0]]}}"#,
        pk.g(),
        pk.n(),
        values[0].ciphertext(),
        values[1].ciphertext()
    );
    let payload: DemoPayload = serde_json::from_str(&body).unwrap();
    let (key_back, decoded) = payload.decode(small_bounds()).unwrap();
    assert_eq!(&key_back, pk);
    let plain: Vec<_> = decoded
        .iter()
        .map(|v| sk.decrypt(v).unwrap().to_bigint().unwrap())
        .collect();
    assert_eq!(plain, vec![BigInt::from(10), BigInt::from(-11)]);
    // g must be n + 1.
    let bad_g = body.replacen(
        &format!("\"g\": {}", pk.g()),
        &format!("\"g\": {}", pk.n() + 2u32),
        1,
    );
    let payload: DemoPayload = serde_json::from_str(&bad_g).unwrap();
    assert_eq!(
        payload.decode(small_bounds()).unwrap_err(),
        Error::BadGenerator
    );
    // And it round-trips through our own writer.
    let ours = serde_json::to_string(&DemoPayload::new(pk, &values)).unwrap();
    let back: DemoPayload = serde_json::from_str(&ours).unwrap();
    assert_eq!(back.decode(small_bounds()).unwrap().1, values.to_vec());
}

#[test]
fn demo_payload_with_bare_integers_loads() {
    let demo = &DOC["demo_payload"];
    let payload: DemoPayload =
        serde_json::from_str(text(&demo["json"])).expect("demo body parses without f64");
    let (public, values) = payload
        .decode(KeyBounds::default())
        .expect("demo body is valid");
    assert_eq!(&public, VECTOR_KEY.public_key());
    let want = demo["expected"].as_array().unwrap();
    let mut f = Failures::default();
    f.check("demo", "number of values", values.len(), want.len());
    for (i, (got, want)) in values.iter().zip(want).enumerate() {
        check_result(&mut f, &format!("demo value {i}"), got, want);
    }
    f.finish("demo_payload", want.len());
}
