//! Known-answer tests against python-paillier.
//!
//! `tests/vectors/phe_vectors.json` was produced by `tests/vectors/make_vectors.py` with
//! python-paillier from fixed primes and fixed nonces, so every encoding, ciphertext and
//! homomorphic result in it is exactly what python-paillier computes. Each test walks one
//! section, collects every mismatch and fails once with the full list, so that a single run
//! shows the whole extent of a divergence rather than its first instance.

use std::str::FromStr;
use std::sync::LazyLock;

use num_bigint::{BigInt, BigUint};
use paillier::{EncodedNumber, EncryptedNumber, Error, KeyBounds, PrivateKey, PublicKey};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/phe_vectors.json");

static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(VECTORS).expect("phe_vectors.json is valid JSON"));

static KEY: LazyLock<PrivateKey> = LazyLock::new(|| {
    let key = &DOC["key"];
    PrivateKey::from_primes(big(&key["p"]), big(&key["q"]))
        .expect("python-paillier's primes make a valid private key")
});

fn pk() -> &'static PublicKey {
    KEY.public_key()
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

fn int(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().expect("an i64"),
        Value::String(s) => s.parse().expect("an i64 in a string"),
        _ => panic!("expected an integer, got {v}"),
    }
}

fn exponent(v: &Value) -> i32 {
    i32::try_from(int(v)).expect("exponent fits i32")
}

/// A float written as `{"value": repr, "bits": hex}`: parsed from python's repr (Rust's
/// parser is correctly rounded) and checked against the IEEE bits python recorded.
fn float(v: &Value) -> f64 {
    let x: f64 = text(&v["value"]).parse().expect("python float repr");
    let bits = u64::from_str_radix(text(&v["bits"]), 16).expect("hex bits");
    assert_eq!(
        x.to_bits(),
        bits,
        "float {} did not parse to python's bits",
        v["value"]
    );
    x
}

/// The variant name of an error (`NonFinite(5.4)` -> `NonFinite`), to compare with the
/// name recorded in the vectors without depending on the payload.
fn variant(err: &Error) -> String {
    let debug = format!("{err:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Collects mismatches of one section; panics with all of them at the end.
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

fn section(name: &str) -> &'static [Value] {
    DOC[name]
        .as_array()
        .unwrap_or_else(|| panic!("section {name} missing"))
}

/// Checks an encrypted result (ciphertext, exponent and decryption) against a vector entry
/// carrying `ciphertext`, `exponent` and either `mantissa` + `f64`/`f64_error` or
/// `decrypt_error`.
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
    check_decryption(f, case, got, want);
}

fn check_decryption(f: &mut Failures, case: &str, got: &EncryptedNumber, want: &Value) {
    match (KEY.decrypt(got), want.get("decrypt_error")) {
        (Ok(d), None) => {
            f.check(
                case,
                "mantissa",
                d.mantissa().clone(),
                signed(&want["mantissa"]),
            );
            f.check(case, "decoded exponent", d.exponent(), got.exponent());
        }
        (Ok(d), Some(e)) => f.fail(case, format!("decrypted to {d:?}, python-paillier: {e}")),
        (Err(err), None) => f.fail(case, format!("decrypt failed: {err}")),
        (Err(err), Some(e)) => f.check(case, "decrypt error", variant(&err), text(e).to_string()),
    }
    if want.get("decrypt_error").is_some() {
        return;
    }
    match (KEY.decrypt_f64(got), want.get("f64"), want.get("f64_error")) {
        (Ok(x), Some(w), _) => {
            let w: f64 = text(w).parse().expect("python float repr");
            // Bits, not ==: python divides exactly and rounds once; so must we.
            f.check(
                case,
                "decrypt_f64 (as bits)",
                (x, x.to_bits()),
                (w, w.to_bits()),
            );
        }
        (Err(err), _, Some(e)) => f.check(case, "f64 error", variant(&err), text(e).to_string()),
        (Ok(x), None, Some(e)) => f.fail(case, format!("decrypt_f64 gave {x}, python: {e}")),
        (Err(err), Some(w), _) => f.fail(case, format!("decrypt_f64 failed ({err}), python {w}")),
        (_, None, None) => f.fail(case, "vector has neither f64 nor f64_error"),
    }
}

/// Encodes a vector's scalar the way its fields say (kind, precision, max_exponent).
fn encode(case: &Value) -> Result<EncodedNumber, Error> {
    let precision = case.get("precision").map(float);
    let max_exponent = case.get("max_exponent").map(exponent);
    match text(&case["kind"]) {
        "int" if precision.is_none() && max_exponent.is_none() => {
            pk().encode_i64(int(&case["value"]))
        }
        "bigint" if precision.is_none() && max_exponent.is_none() => {
            pk().encode_bigint(&signed(&case["value"]))
        }
        "float" if precision.is_none() && max_exponent.is_none() => pk().encode_f64(float(case)),
        "float" => pk().encode_f64_with(float(case), precision, max_exponent),
        "int" => pk().encode_f64_with(int(&case["value"]) as f64, precision, max_exponent),
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn key_matches_python() {
    let key = &DOC["key"];
    let pk = pk();
    assert_eq!(pk.n(), &big(&key["n"]));
    assert_eq!(pk.n_squared(), &big(&key["n_squared"]));
    assert_eq!(pk.max_int(), &big(&key["max_int"]), "max_int = n/3 - 1");
    assert_eq!(pk.bits(), key["bits"].as_u64().unwrap());
    // The primes are accepted in either order and make the same key.
    let swapped = PrivateKey::from_primes(big(&key["q"]), big(&key["p"])).unwrap();
    assert_eq!(swapped.public_key(), pk);
    let (p, q) = (big(&key["p"]), big(&key["q"]));
    let mut got = [KEY.p().clone(), KEY.q().clone()];
    got.sort();
    let mut want = [p, q];
    want.sort();
    assert_eq!(got, want);
    // n alone (a peer's public key) validates and is the same key.
    assert_eq!(&PublicKey::from_n(big(&key["n"])).unwrap(), pk);
}

#[test]
fn encodings_match_python() {
    let cases = section("encodings");
    let mut f = Failures::default();
    for case in cases {
        let name = text(&case["name"]);
        let got = encode(case);
        // Without precision or max_exponent, the general float encoder must agree too.
        let general = (text(&case["kind"]) == "float"
            && case.get("precision").is_none()
            && case.get("max_exponent").is_none())
        .then(|| pk().encode_f64_with(float(case), None, None));
        // Integers within i64 must encode identically through the big-integer path.
        let via_bigint = (text(&case["kind"]) == "int"
            && case.get("precision").is_none()
            && case.get("max_exponent").is_none())
        .then(|| pk().encode_bigint(&signed(&case["value"])));
        for (path, got) in [
            ("", Some(got)),
            (" (encode_f64_with)", general),
            (" (encode_bigint)", via_bigint),
        ] {
            let Some(got) = got else { continue };
            let case_name = format!("{name}{path}");
            match (got, case.get("error")) {
                (Ok(enc), None) => {
                    f.check(
                        &case_name,
                        "encoding",
                        enc.encoding().clone(),
                        big(&case["encoding"]),
                    );
                    f.check(
                        &case_name,
                        "exponent",
                        enc.exponent(),
                        exponent(&case["exponent"]),
                    );
                    match pk().decode(&enc) {
                        Ok(d) => f.check(
                            &case_name,
                            "decoded mantissa",
                            d.mantissa().clone(),
                            signed(&case["mantissa"]),
                        ),
                        Err(err) => f.fail(&case_name, format!("decode failed: {err}")),
                    }
                }
                (Ok(enc), Some(e)) => f.fail(
                    &case_name,
                    format!(
                        "encoded (exponent {}) where python-paillier fails with {e}",
                        enc.exponent()
                    ),
                ),
                (Err(err), None) => f.fail(&case_name, format!("encode failed: {err}")),
                (Err(err), Some(e)) => {
                    f.check(&case_name, "error", variant(&err), text(e).to_string())
                }
            }
        }
    }
    f.finish("encodings", cases.len());
}

#[test]
fn encryptions_with_fixed_nonce_match_python() {
    let cases = section("encryptions");
    let mut f = Failures::default();
    for case in cases {
        let name = text(&case["name"]);
        let encoded = match encode(case) {
            Ok(e) => e,
            Err(err) => {
                f.fail(name, format!("encode failed: {err}"));
                continue;
            }
        };
        f.check(
            name,
            "encoding",
            encoded.encoding().clone(),
            big(&case["encoding"]),
        );
        match pk().encrypt_with_nonce(&encoded, &big(&case["r"])) {
            Ok(enc) => check_result(&mut f, name, &enc, case),
            Err(err) => f.fail(name, format!("encrypt_with_nonce failed: {err}")),
        }
        // The ciphertext read back from outside is accepted and decrypts the same.
        match pk().encrypted_number(big(&case["ciphertext"]), exponent(&case["exponent"])) {
            Ok(enc) => check_result(&mut f, &format!("{name} (encrypted_number)"), &enc, case),
            Err(err) => f.fail(
                name,
                format!("encrypted_number rejected python's ciphertext: {err}"),
            ),
        }
        // Both random paths decrypt to python's plaintext (their ciphertexts are random).
        for (path, enc) in [
            ("public encrypt", pk().encrypt(&encoded)),
            ("owner encrypt", KEY.encrypt(&encoded)),
        ] {
            match enc {
                Ok(enc) => {
                    f.check(
                        name,
                        &format!("{path}: exponent"),
                        enc.exponent(),
                        exponent(&case["exponent"]),
                    );
                    check_decryption(&mut f, &format!("{name} ({path})"), &enc, case);
                }
                Err(err) => f.fail(name, format!("{path} failed: {err}")),
            }
        }
    }
    f.finish("encryptions", cases.len());
}

/// The encrypted inputs of the homomorphic vectors, read from their python ciphertexts.
fn inputs() -> std::collections::HashMap<String, EncryptedNumber> {
    section("encryptions")
        .iter()
        .map(|case| {
            let enc = pk()
                .encrypted_number(big(&case["ciphertext"]), exponent(&case["exponent"]))
                .expect("python ciphertext accepted");
            (text(&case["name"]).to_string(), enc)
        })
        .collect()
}

fn apply(
    case: &Value,
    inputs: &std::collections::HashMap<String, EncryptedNumber>,
) -> Result<EncryptedNumber, Error> {
    let get = |key: &str| -> &EncryptedNumber {
        let name = text(&case[key]);
        inputs
            .get(name)
            .unwrap_or_else(|| panic!("unknown input {name}"))
    };
    let precision = case.get("precision").map(float);
    match text(&case["op"]) {
        "add" => get("a").add(get("b")),
        "sub" => get("a").sub(get("b")),
        "neg" => Ok(get("a").neg()),
        "add_i64" => get("a").add_i64(int(&case["k"])),
        "add_f64" => get("a").add_f64(float(&case["x"])),
        "mul_i64" => get("a").mul_i64(int(&case["k"])),
        "mul_f64" => get("a").mul_f64(float(&case["x"])),
        "mul_encoded" => {
            get("a").mul_encoded(&pk().encode_f64_with(float(&case["x"]), precision, None)?)
        }
        "add_encoded" => {
            get("a").add_encoded(&pk().encode_f64_with(float(&case["x"]), precision, None)?)
        }
        "decrease_exponent_to" => get("a").decrease_exponent_to(exponent(&case["new_exponent"])),
        "weighted_sum" => get("a")
            .mul_f64(float(&case["x"]))?
            .add(&get("b").mul_f64(float(&case["y"]))?),
        "mean3" => get("a").add(get("b"))?.add(get("c"))?.mul_f64(1.0 / 3.0),
        "add_mul" => get("a").add(get("b"))?.mul_i64(int(&case["k"])),
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn homomorphic_operations_match_python() {
    let inputs = inputs();
    let cases = section("homomorphic");
    let mut f = Failures::default();
    for case in cases {
        let name = text(&case["name"]);
        match apply(case, &inputs) {
            Ok(got) => check_result(&mut f, name, &got, case),
            Err(err) => f.fail(name, format!("operation failed: {err}")),
        }
    }
    f.finish("homomorphic", cases.len());
}

#[test]
fn operations_python_refuses_are_refused() {
    let inputs = inputs();
    let cases = section("invalid_operations");
    let mut f = Failures::default();
    for case in cases {
        let name = text(&case["name"]);
        if let Ok(got) = apply(case, &inputs) {
            f.fail(
                name,
                format!(
                    "succeeded (exponent {}) where python-paillier raises",
                    got.exponent()
                ),
            );
        }
    }
    f.finish("invalid_operations", cases.len());
}

#[test]
fn decodings_match_python() {
    let cases = section("decodings");
    let mut f = Failures::default();
    for case in cases {
        let name = text(&case["name"]);
        let c = big(&case["ciphertext"]);
        f.check(
            name,
            "decrypt_raw",
            KEY.decrypt_raw(&c),
            big(&case["encoding"]),
        );
        let enc = match pk().encrypted_number(c, exponent(&case["exponent"])) {
            Ok(e) => e,
            Err(err) => {
                f.fail(
                    name,
                    format!("encrypted_number rejected python's ciphertext: {err}"),
                );
                continue;
            }
        };
        let mut want = case.clone();
        if let Some(e) = case.get("error") {
            want["decrypt_error"] = e.clone();
        }
        check_decryption(&mut f, name, &enc, &want);
    }
    f.finish("decodings", cases.len());
}

#[test]
fn pheutil_private_key_json_loads() {
    let jwk: paillier::json::PrivateJwk =
        serde_json::from_str(text(&DOC["pheutil_private_jwk"])).expect("pheutil JWK parses");
    let key = jwk.to_private_key().expect("pheutil JWK is a valid key");
    assert_eq!(key.public_key(), pk());
    let public = jwk
        .public
        .to_public_key(KeyBounds::default())
        .expect("the embedded public JWK is valid");
    assert_eq!(&public, pk());
    assert_eq!(jwk.public.alg, "PAI-GN1");
}

#[test]
fn pheutil_ciphertext_json_loads() {
    let cases = section("pheutil_ciphertexts");
    let mut f = Failures::default();
    for case in cases {
        let name = text(&case["name"]);
        let json: paillier::json::EncryptedJson =
            serde_json::from_str(text(&case["json"])).expect("pheutil ciphertext JSON parses");
        match json.decode(pk()) {
            Ok(enc) => check_result(&mut f, name, &enc, case),
            Err(err) => f.fail(name, format!("rejected: {err}")),
        }
    }
    f.finish("pheutil_ciphertexts", cases.len());
}
