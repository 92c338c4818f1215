//! Structure-aware fuzzing, with proptest, of everything that reads untrusted bytes: the worker's
//! [`Processor`] (size check, shape probe, strict parse, validation, and the computation itself
//! with small keys), the JSON deserializers and validators (paillier's `BigUintDecimal`,
//! `PublicJwk`, `PrivateJwk`, `EncryptedJson`; the pipeline's `DemoPayload`, `DemoReply`), the result a
//! consumer decrypts, and the decoding of encodings. The property is "no panic, and every
//! refusal is a well-formed error"; each target also checks something that can fail.
//!
//! Inputs are mutations of valid messages (byte flips, truncation, token and member insertion,
//! non-UTF-8 bytes, field removal and swaps, number extremes, duplicated keys, long series,
//! deep nesting), plus some plain random bytes.
//!
//! The default run is sized for CI (about a minute in a debug build on two cores).
//! `FUZZ_CASES=N` sets the number of generated inputs per target, e.g.
//! `FUZZ_CASES=1000000 cargo test --profile fuzz -p worker --test fuzz_inputs -- --nocapture`
//! (optimised, with overflow checks: a release build would let an overflow wrap silently);
//! each target prints how many inputs it executed. Failures are persisted by proptest to
//! `tests/fuzz_inputs.proptest-regressions` and replayed first on later runs; what earlier runs
//! found is also kept below as explicit regression tests.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use num_bigint::BigUint;
use paillier::json::{BigUintDecimal, EncryptedJson, PrivateJwk, PublicJwk};
use paillier::{EncodedNumber, KeyBounds, PrivateKey};
use pipeline::ParticipantId;
use pipeline::config::{LoadOptions, Settings};
use pipeline::messages::{DemoPayload, DemoReply, ResultMessage, SubmissionWire};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Value, json};
use worker::process::{Outcome, Processor, Request};

/// Key size of the fuzzing keys: small, so that valid mutations run the whole computation fast.
const KEY_BITS: u64 = 256;
/// Bounds the fuzzed validators accept: small keys in, the 2048-bit seed out (KeySize path).
const BOUNDS: (u64, u64) = (128, 1024);
/// Longest any single input may take: a stall detector, far above the real cost (< 50 ms).
const STALL: Duration = Duration::from_secs(10);

fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fuzz_inputs.proptest-regressions"
        )))),
        // The inputs are already small; shrinking a rare failure should not take minutes.
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

/// Keys and valid messages every target mutates.
struct Seeds {
    key: PrivateKey,
    big_key: PrivateKey,
    docs: Vec<Vec<u8>>,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let key = PrivateKey::generate_insecure_for_tests(KEY_BITS);
        let big_key = PrivateKey::generate(2048).expect("2048-bit key");
        let pk = key.public_key();
        let participant = ParticipantId::new("p-fuzz").unwrap();
        let readings = BTreeMap::from([
            ("glucose".to_owned(), vec![5.4, 6.1, 7.25]),
            ("cholesterol".to_owned(), vec![4.2]),
        ]);
        let wire = SubmissionWire::encrypt(
            &pipeline::Settings::defaults().study,
            "s-fuzz-1",
            &participant,
            &key,
            &readings,
        )
        .unwrap();
        let big_wire = SubmissionWire::encrypt(
            &pipeline::Settings::defaults().study,
            "s-fuzz-2",
            &participant,
            &big_key,
            &BTreeMap::from([("glucose".to_owned(), vec![5.0])]),
        )
        .unwrap();
        let values: Vec<_> = [3.5f64, -2.0, 1e6]
            .iter()
            .map(|v| pk.encrypt_f64(*v).unwrap())
            .collect();
        // The demo shape with bare JSON integers, as Python's json module writes them.
        let bare_demo = format!(
            r#"{{"public_key": {{"g": {}, "n": {}}}, "values": [[{}, {}], ["{}", {}]]}}"#,
            pk.n() + 1u32,
            pk.n(),
            values[0].ciphertext(),
            values[0].exponent(),
            values[1].ciphertext(),
            values[1].exponent()
        );
        let docs = vec![
            serde_json::to_vec(&wire).unwrap(),
            serde_json::to_vec(&big_wire).unwrap(),
            serde_json::to_vec(&DemoPayload::new(pk, &values)).unwrap(),
            bare_demo.into_bytes(),
            serde_json::to_vec(&DemoReply::new(&values)).unwrap(),
            serde_json::to_vec(&PublicJwk::new(pk, "fuzz")).unwrap(),
            serde_json::to_vec(&PrivateJwk::new(&key, "fuzz")).unwrap(),
            serde_json::to_vec(&EncryptedJson::new(&values[0])).unwrap(),
            serde_json::to_vec(&json!({
                "version": 1, "submission_id": "s-9", "participant": "p-fuzz", "status": "ok",
                "outputs": [{"name": "glucose_mean", "unit": "mmol/L",
                             "ciphertext": values[0].ciphertext().to_string(),
                             "exponent": values[0].exponent()}]
            }))
            .unwrap(),
            format!("\"{}\"", pk.n()).into_bytes(),
        ];
        Seeds { key, big_key, docs }
    })
}

/// Extreme JSON values substituted into valid documents.
fn extreme(selector: u64, seeds: &Seeds) -> Value {
    let n = seeds.key.public_key().n();
    let n2 = seeds.key.public_key().n_squared();
    match selector % 30 {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1e308),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(""),
        6 => json!("NaN"),
        7 => json!("9".repeat(6_000)),
        8 => json!(n.to_string()),
        9 => json!(n2.to_string()),
        10 => json!((n + 1u32).to_string()),
        11 => json!((n2 - 1u32).to_string()),
        12 => json!(seeds.key.p().to_string()),
        13 => json!("12a"),
        14 => Value::Null,
        15 => json!(true),
        16 => json!([]),
        17 => json!({}),
        18 => (0..200).fold(json!(1), |inner, _| json!([inner])),
        19 => json!(10_001),
        20 => json!(-10_001),
        21 => json!(2_147_483_648u64),
        22 => json!(-2_147_483_649i64),
        23 => json!(" 12"),
        24 => json!("-5"),
        25 => json!(seeds.big_key.public_key().n().to_string()),
        26 => json!((BigUint::from(1u32) << 9000u32).to_string()),
        27 => json!([["1", 0], ["2", 0]]),
        28 => json!("\u{0000}\u{ffff}é"),
        _ => json!(1.5),
    }
}

/// Member snippets inserted right after a `{`: most of them duplicate an existing key.
const MEMBERS: [&str; 14] = [
    r#""version":1,"#,
    r#""readings":{},"#,
    r#""readings":{"glucose":[{"ciphertext":"1","exponent":0}]},"#,
    r#""public_key":{"n":"15"},"#,
    r#""glucose":[],"#,
    r#""glucose":[{"ciphertext":"2","exponent":0}],"#,
    r#""n":"1","#,
    r#""g":"2","#,
    r#""v":"1","#,
    r#""e":0,"#,
    r#""p":"AQ","#,
    r#""kty":"DAJ","#,
    r#""values":[],"#,
    r#""unknown":{"a":[1,2,3]},"#,
];

/// Tokens inserted anywhere: invalid JSON numbers, escapes, structure, non-UTF-8 bytes.
const TOKENS: [&[u8]; 18] = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"-0",
    b"\"\\ud800\"",
    b"\\u0000",
    b",",
    b"}",
    b"]",
    b"{\"a\":",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"00000000000000000000000000000000000000000000",
    b"\x00",
    b"\"",
];

/// One mutation: what to do, and two selectors reduced modulo whatever they index.
type Mutation = (u8, u64, u64);

fn mutation() -> impl Strategy<Value = Mutation> {
    (0u8..12, any::<u64>(), any::<u64>())
}

/// Every node of `value` as a JSON pointer.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A value-level mutation (the document must still parse as JSON); `false` when not applicable.
fn mutate_value(doc: &mut Value, (kind, a, b): Mutation, seeds: &Seeds) -> bool {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let target = all[(a as usize) % all.len()].clone();
    let (parent, last) = match target.rfind('/') {
        Some(i) => (target[..i].to_owned(), target[i + 1..].to_owned()),
        None => (String::new(), String::new()),
    };
    match kind {
        // Replace a node by an extreme value.
        0 | 1 => {
            if let Some(node) = doc.pointer_mut(&target) {
                *node = extreme(b, seeds);
            }
        }
        // Remove a member or element.
        2 => match doc.pointer_mut(&parent) {
            Some(Value::Object(map)) => {
                map.remove(&last.replace("~1", "/").replace("~0", "~"));
            }
            Some(Value::Array(items)) if !items.is_empty() => {
                let i = last.parse::<usize>().unwrap_or(0).min(items.len() - 1);
                items.remove(i);
            }
            _ => return false,
        },
        // Swap two nodes' values (e.g. n with a ciphertext, an exponent with a string).
        3 => {
            let other = all[(b as usize) % all.len()].clone();
            if other.starts_with(&target) || target.starts_with(&other) {
                return false;
            }
            let (Some(x), Some(y)) = (doc.pointer(&target).cloned(), doc.pointer(&other).cloned())
            else {
                return false;
            };
            *doc.pointer_mut(&target).unwrap() = y;
            *doc.pointer_mut(&other).unwrap() = x;
        }
        // Add an unknown member to an object.
        4 => match doc.pointer_mut(&target) {
            Some(Value::Object(map)) => {
                map.insert(format!("x{}", b % 7), extreme(b / 7, seeds));
            }
            _ => return false,
        },
        // Repeat an array element many times (thousands of readings or values).
        5 => match doc.pointer_mut(&target) {
            Some(Value::Array(items)) if !items.is_empty() => {
                let copies = [2usize, 999, 1_000, 1_001, 5_000][(b % 5) as usize];
                let first = items[0].clone();
                items.resize(copies, first);
            }
            _ => return false,
        },
        _ => return false,
    }
    true
}

/// A byte-level mutation of the serialised document.
fn mutate_bytes(bytes: &mut Vec<u8>, (kind, a, b): Mutation) {
    let len = bytes.len().max(1);
    let at = (a as usize) % len;
    match kind {
        // Flip one bit.
        6 => {
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= 1 << (b % 8);
            }
        }
        // Truncate.
        7 => bytes.truncate(at),
        // Insert a token.
        8 => {
            let token = TOKENS[(b as usize) % TOKENS.len()];
            let at = at.min(bytes.len());
            bytes.splice(at..at, token.iter().copied());
        }
        // Insert a member after some `{` (duplicate keys, unknown fields).
        9 => {
            let opens: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'{').collect();
            if let Some(&open) = opens.get(at % opens.len().max(1)) {
                let member = MEMBERS[(b as usize) % MEMBERS.len()].as_bytes();
                bytes.splice(open + 1..open + 1, member.iter().copied());
            }
        }
        // Delete a range.
        10 => {
            let end = (at + 1 + (b as usize) % 64).min(bytes.len());
            if at < end {
                bytes.drain(at..end);
            }
        }
        // Overwrite a byte with a random one.
        _ => {
            if let Some(byte) = bytes.get_mut(at) {
                *byte = b as u8;
            }
        }
    }
}

/// Applies `mutations` to seed `seed`: value-level ones while the document is JSON.
fn mutated(seed: usize, mutations: &[Mutation]) -> Vec<u8> {
    let seeds = seeds();
    let mut bytes = seeds.docs[seed % seeds.docs.len()].clone();
    for &m in mutations {
        if m.0 < 6 {
            if let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes)
                && mutate_value(&mut doc, m, seeds)
            {
                bytes = serde_json::to_vec(&doc).unwrap();
            }
        } else {
            mutate_bytes(&mut bytes, m);
        }
    }
    bytes
}

/// Fuzz input: mutations of a seed (most cases) or random bytes.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        9 => (any::<usize>(), prop::collection::vec(mutation(), 1..5))
            .prop_map(|(seed, ms)| mutated(seed, &ms)),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

fn fuzz_settings() -> Settings {
    Settings::load(
        &LoadOptions {
            ignore_environment: true,
            ..LoadOptions::default()
        }
        .set("limits.key_bits_min", Some(BOUNDS.0))
        .set("limits.key_bits_max", Some(BOUNDS.1)),
    )
    .unwrap()
}

/// Runs `target` over `default_cases` inputs (or FUZZ_CASES) and returns the count executed.
fn fuzz(name: &str, default_cases: u32, target: impl Fn(&[u8])) -> u64 {
    let executed = AtomicU64::new(0);
    let started = Instant::now();
    let result = runner(default_cases).run(&input(), |bytes| {
        let t = Instant::now();
        target(&bytes);
        let done = executed.fetch_add(1, Ordering::Relaxed) + 1;
        // Progress for long runs, so an interrupted run still says how far it got.
        if done.is_multiple_of(100_000) {
            eprintln!("fuzz {name}: {done} inputs so far");
        }
        prop_assert!(t.elapsed() < STALL, "an input took {:?}", t.elapsed());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let n = executed.into_inner();
    eprintln!(
        "fuzz {name}: {n} inputs executed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    n
}

/// The worker's whole per-message path: every input ends as a result, a refusal with a JSON
/// error reply, or a retryable failure; never a panic.
fn process(processor: &Processor, body: &[u8]) {
    let request = Request {
        body: body.to_vec(),
        reply_to: None,
        correlation_id: None,
        message_id: Some("m-fuzz".into()),
        // The seeds' own participant, so that the identity check passes and the parsing,
        // validation and computation behind it are what is fuzzed.
        user_id: Some("p-fuzz".into()),
    };
    match processor.process(&request) {
        Outcome::Done(reply) => {
            serde_json::from_slice::<Value>(&reply.body).expect("a result is JSON");
        }
        Outcome::Rejected { error, reply } => {
            assert!(!error.kind().is_empty());
            let reply =
                reply.expect("the sender has a reply queue of its own, so it hears about it");
            let body: Value = serde_json::from_slice(&reply.body).expect("an error reply is JSON");
            assert!(body.get("error").is_some(), "{body}");
        }
        Outcome::Failed { reason, .. } => assert!(!reason.is_empty()),
    }
}

#[test]
fn fuzz_the_worker_processor() {
    let processor = Processor::new(&fuzz_settings());
    // The seeds themselves: the small-key ones are processed, the 2048-bit one refused.
    let seeds = seeds();
    let outcome = |doc: &[u8]| {
        processor
            .process(&Request {
                body: doc.to_vec(),
                reply_to: None,
                correlation_id: None,
                message_id: None,
                user_id: Some("p-fuzz".into()),
            })
            .kind()
    };
    assert_eq!(outcome(&seeds.docs[0]), "done");
    assert_eq!(outcome(&seeds.docs[1]), "invalid_public_key");
    assert_eq!(outcome(&seeds.docs[2]), "done");
    assert_eq!(outcome(&seeds.docs[3]), "done");
    let n = fuzz("processor", 10_000, |body| process(&processor, body));
    assert!(n >= u64::from(cases(10_000)));
}

/// paillier's deserializers, each followed by its validation (and decryption where there is
/// one), on the same inputs.
fn paillier_targets(bytes: &[u8]) {
    let seeds = seeds();
    let key = &seeds.key;
    let pk = key.public_key();
    let bounds = KeyBounds::new(BOUNDS.0..=BOUNDS.1);
    if let Ok(number) = serde_json::from_slice::<BigUintDecimal>(bytes) {
        assert!(number.0.to_str_radix(10).len() <= paillier::json::MAX_DECIMAL_DIGITS);
    }
    if let Ok(payload) = serde_json::from_slice::<DemoPayload>(bytes)
        && let Ok((k, values)) = payload.decode(bounds)
    {
        assert!(values.iter().all(|v| v.public_key() == &k));
    }
    if let Ok(reply) = serde_json::from_slice::<DemoReply>(bytes)
        && let Ok(values) = reply.decode(pk)
    {
        for v in values {
            let _ = key.decrypt(&v).map(|d| d.to_f64());
        }
    }
    if let Ok(jwk) = serde_json::from_slice::<PublicJwk>(bytes)
        && let Ok(k) = jwk.to_public_key(bounds)
    {
        assert!((BOUNDS.0..=BOUNDS.1).contains(&k.bits()));
    }
    if let Ok(jwk) = serde_json::from_slice::<PrivateJwk>(bytes)
        && let Ok(k) = jwk.to_private_key_with_bounds(bounds)
    {
        assert_eq!(k.public_key().n(), &jwk.public.n.0);
    }
    if let Ok(enc) = serde_json::from_slice::<EncryptedJson>(bytes)
        && let Ok(value) = enc.decode(pk)
        && let Ok(decoded) = key.decrypt(&value)
    {
        let _ = decoded.to_f64();
        let _ = decoded.to_bigint();
    }
    // What a consumer does with a result from the queue.
    if let Ok(result) = serde_json::from_slice::<ResultMessage>(bytes) {
        let _ = result.decrypt(key);
    }
}

#[test]
fn fuzz_the_paillier_deserializers() {
    let n = fuzz("paillier json", 10_000, paillier_targets);
    assert!(n >= u64::from(cases(10_000)));
}

#[test]
fn fuzz_encoding_decode() {
    // Arbitrary encodings (any residue, any exponent) decode to a value or an error.
    let key = seeds().key.public_key().clone();
    let executed = AtomicU64::new(0);
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..40),
        any::<i32>(),
        0u8..4,
    );
    runner(20_000)
        .run(&strategy, |(bytes, exponent, shape)| {
            let mut encoding = BigUint::from_bytes_be(&bytes);
            // Bias toward the edges of the encoding space (around 0, max_int, n - max_int, n).
            encoding = match shape {
                0 => encoding,
                1 => key.max_int() + (encoding % 4u32),
                2 => key.n() - key.max_int() - (encoding % 4u32),
                _ => key.n() - 1u32 - (encoding % 4u32),
            };
            let exponent = if shape == 3 {
                exponent % 10_002
            } else {
                exponent
            };
            if let Ok(e) = EncodedNumber::from_parts(key.clone(), encoding.clone(), exponent) {
                prop_assert!(encoding < *key.n());
                if let Ok(d) = key.decode(&e) {
                    let _ = d.to_f64();
                    let _ = d.to_bigint();
                }
            }
            executed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("encoding decode: {e}"));
    eprintln!(
        "fuzz encoding decode: {} inputs executed",
        executed.into_inner()
    );
}
