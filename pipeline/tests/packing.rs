//! Result packing without a broker: random studies and readings (negative outputs, fractional
//! and negative weights, series up to `max_readings`) evaluated on ciphertexts, sent packed and
//! unpacked, decrypted by the consumer's path, and compared with each other, with the plaintext
//! reference, and with the tracked bounds; readings that break the bound assumption must be
//! refused at unpacking. Seeded, so a failure names its seed and replays.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use num_bigint::BigUint;
use num_traits::One;
use paillier::{EncodedNumber, EncryptedNumber, PrivateKey};
use pipeline::Settings;
use pipeline::messages::{DecryptError, RESULT_VERSION_PACKED, ResultMessage};
use pipeline::packing::{self, GUARD_BITS};
use pipeline::study::{Bounded, Metric, Output, OutputKind, Study, Term};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const READING_BITS: u32 = 64;

fn key_1024() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_insecure_for_tests(1024))
}

fn key_2048() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-6
}

/// A reading of varied magnitude and sign, as an f64 a participant could measure.
fn reading(rng: &mut StdRng) -> f64 {
    let magnitude = 10f64.powf(rng.random_range(-3.0..4.0));
    if rng.random_bool(0.3) {
        -magnitude
    } else {
        magnitude
    }
}

fn weight(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..3) {
        0 => rng.random_range(-5..=5) as f64,
        1 => rng.random_range(-100.0..100.0),
        _ => rng.random_range(-1.0..1.0) / 1000.0,
    }
}

fn random_study(rng: &mut StdRng) -> Study {
    let metrics: Vec<Metric> = (0..3)
        .map(|i| Metric {
            name: format!("m{i}"),
            unit: "u".into(),
            // The readings below are encrypted with python-paillier's float exponents, not
            // this one: their bounds come from READING_BITS, as for any foreign exponent.
            precision: 1e-6,
            min: -1e4,
            max: 1e4,
        })
        .collect();
    let metric = |rng: &mut StdRng| format!("m{}", rng.random_range(0..3));
    let outputs = (0..rng.random_range(1..=9))
        .map(|i| {
            let kind = match rng.random_range(0..5) {
                0 => OutputKind::Scale {
                    metric: metric(rng),
                    factor: weight(rng),
                },
                1 => OutputKind::Sum {
                    metric: metric(rng),
                },
                2 => OutputKind::Mean {
                    metric: metric(rng),
                },
                3 => {
                    let count = rng.random_range(1..=3);
                    OutputKind::WeightedSum {
                        terms: (0..count)
                            .map(|t| Term {
                                metric: format!("m{t}"),
                                weight: weight(rng),
                            })
                            .collect(),
                        offset: if rng.random_bool(0.5) {
                            weight(rng)
                        } else {
                            0.0
                        },
                    }
                }
                _ => {
                    let min = rng.random_range(1..=5);
                    OutputKind::RandomScale {
                        metric: metric(rng),
                        min,
                        max: min + rng.random_range(0..=10),
                    }
                }
            };
            Output {
                name: format!("o{i}"),
                unit: None,
                kind,
            }
        })
        .collect();
    let study = Study { metrics, outputs };
    study.validate().unwrap();
    study
}

fn encrypt_all(
    key: &PrivateKey,
    plain: &BTreeMap<String, Vec<f64>>,
) -> BTreeMap<String, Vec<EncryptedNumber>> {
    plain
        .iter()
        .map(|(m, series)| {
            (
                m.clone(),
                series
                    .iter()
                    .map(|v| key.encrypt_f64(*v).unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// Through JSON, as the consumer receives it.
fn round_trip(result: &ResultMessage) -> ResultMessage {
    serde_json::from_slice(&result.to_json()).unwrap()
}

/// Evaluates `study` on `plain` readings, checks packed == unpacked == plaintext and that every
/// output's mantissa is within its tracked bound; returns the packed result.
fn check(
    seed: u64,
    key: &PrivateKey,
    study: &Study,
    plain: &BTreeMap<String, Vec<f64>>,
) -> ResultMessage {
    let encrypted = encrypt_all(key, plain);
    let draws = seed ^ 0x5eed;
    let evaluation = study
        .evaluate_encrypted(&encrypted, READING_BITS, &mut StdRng::seed_from_u64(draws))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(draws);
    let expected = study.evaluate_plain_with(plain, |min, max| rng.random_range(min..=max));
    assert_eq!(evaluation.skipped, expected.skipped, "seed {seed}");

    for (computed, want) in evaluation.outputs.iter().zip(&expected.outputs) {
        let decoded = key.decrypt(&computed.value.value).unwrap();
        assert!(
            decoded.mantissa().magnitude() <= &computed.value.bound,
            "seed {seed}: {} mantissa beyond its bound",
            want.name
        );
    }

    let obfuscate = seed.is_multiple_of(2);
    let packed = round_trip(&ResultMessage::ok_packed("s", "p", &evaluation, obfuscate).unwrap());
    let unpacked = round_trip(&ResultMessage::ok_unpacked(
        "s",
        "p",
        &evaluation,
        obfuscate,
    ));
    let from_packed = packed.decrypt(key).unwrap();
    let from_unpacked = unpacked.decrypt(key).unwrap();
    assert_eq!(from_packed.len(), expected.outputs.len());
    for ((p, u), want) in from_packed
        .iter()
        .zip(&from_unpacked)
        .zip(&expected.outputs)
    {
        assert_eq!(p, u, "seed {seed}: packed and unpacked differ");
        assert_eq!(p.name, want.name);
        assert!(
            close(p.value, want.value),
            "seed {seed}: {} decrypted {} but plaintext gives {}",
            p.name,
            p.value,
            want.value
        );
    }
    // Every packed plaintext stays within the capacity.
    let capacity = packing::capacity(key.public_key().bits());
    for index in 0..packed.packed.len() {
        let used: u64 = packed
            .outputs
            .iter()
            .filter(|o| o.packed == Some(index))
            .map(|o| o.width.unwrap())
            .sum();
        assert!(used <= capacity, "seed {seed}: {used} bits > {capacity}");
    }
    packed
}

#[test]
fn random_studies_decrypt_identically_packed_and_unpacked() {
    let mut several = 0;
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let study = random_study(&mut rng);
        let mut plain = BTreeMap::new();
        for i in 0..3 {
            // Now and then a metric is absent: its outputs are skipped.
            if rng.random_bool(0.85) {
                let len = rng.random_range(1..=6);
                plain.insert(
                    format!("m{i}"),
                    (0..len).map(|_| reading(&mut rng)).collect(),
                );
            }
        }
        if plain.is_empty() {
            plain.insert("m0".into(), vec![reading(&mut rng)]);
        }
        // Small keys fill up: several packed ciphertexts.
        let key = if seed.is_multiple_of(4) {
            key_2048()
        } else {
            key_1024()
        };
        let packed = check(seed, key, &study, &plain);
        if packed.packed.len() > 1 {
            several += 1;
        }
    }
    assert!(
        several > 0,
        "no case needed more than one packed ciphertext"
    );
}

#[test]
fn the_default_study_packs_into_one_ciphertext_even_with_max_readings() {
    let settings = Settings::defaults();
    let mut study = settings.study.clone();
    study.outputs.push(Output {
        name: "glucose_x".into(),
        unit: None,
        kind: OutputKind::RandomScale {
            metric: "glucose".into(),
            min: 1,
            max: 10,
        },
    });
    let max = settings.limits.max_readings;
    let mut rng = StdRng::seed_from_u64(7);
    let plain = BTreeMap::from([
        (
            "glucose".to_owned(),
            (0..max * 3 / 5)
                .map(|_| rng.random_range(2.0..30.0))
                .collect(),
        ),
        (
            "cholesterol".to_owned(),
            (0..max - max * 3 / 5)
                .map(|_| rng.random_range(-9.0..9.0))
                .collect(),
        ),
    ]);
    let packed = check(1, key_2048(), &study, &plain);
    assert_eq!(packed.version, RESULT_VERSION_PACKED);
    assert_eq!(packed.packed.len(), 1, "one ciphertext for 7 outputs");
    assert_eq!(packed.outputs.len(), 7);
}

/// Readings at the very edge of the assumption (|mantissa| = 2^64 - 1, both signs, mixed
/// exponents) still decrypt exactly: the bounds are not just loose, they are sound.
#[test]
fn readings_at_the_bound_decrypt_exactly() {
    let key = key_2048();
    let public = key.public_key();
    let study = Settings::defaults().study;
    let edge = (BigUint::one() << READING_BITS) - 1u32;
    let encode = |negative: bool, exponent: i32| {
        let encoding = if negative {
            public.n() - &edge
        } else {
            edge.clone()
        };
        EncodedNumber::from_parts(public.clone(), encoding, exponent).unwrap()
    };
    let value = |negative: bool, exponent: i32| {
        let v = (2f64.powi(64) - 1.0) * 16f64.powi(exponent);
        if negative { -v } else { v }
    };
    let cases = [(false, -14), (true, -14), (false, -12), (true, -15)];
    let readings = BTreeMap::from([
        (
            "glucose".to_owned(),
            cases[..3]
                .iter()
                .map(|(neg, e)| key.encrypt(&encode(*neg, *e)).unwrap())
                .collect::<Vec<_>>(),
        ),
        (
            "cholesterol".to_owned(),
            vec![key.encrypt(&encode(cases[3].0, cases[3].1)).unwrap()],
        ),
    ]);
    let plain = BTreeMap::from([
        (
            "glucose".to_owned(),
            cases[..3]
                .iter()
                .map(|(n, e)| value(*n, *e))
                .collect::<Vec<_>>(),
        ),
        (
            "cholesterol".to_owned(),
            vec![value(cases[3].0, cases[3].1)],
        ),
    ]);
    let evaluation = study
        .evaluate_encrypted(&readings, READING_BITS, &mut rand::rng())
        .unwrap();
    let expected = study.evaluate_plain(&plain);
    let packed = ResultMessage::ok_packed("s", "p", &evaluation, false).unwrap();
    let unpacked = ResultMessage::ok_unpacked("s", "p", &evaluation, false);
    let from_packed = packed.decrypt(key).unwrap();
    assert_eq!(from_packed, unpacked.decrypt(key).unwrap());
    for (got, want) in from_packed.iter().zip(&expected.outputs) {
        assert!(
            close(got.value, want.value),
            "{}: {} vs {}",
            got.name,
            got.value,
            want.value
        );
    }
}

/// A reading whose mantissa breaks the assumption (from 2^64 up to the guard's reach, either
/// sign, in any metric) never gives a wrong number: the packed result is refused, or, when
/// every output still happens to stay within its bound (a reading just above 2^64 summed with
/// small ones), it is exact. Once the rogue reading alone exceeds every bound it enters, it is
/// always refused.
#[test]
fn readings_beyond_the_assumption_are_refused_not_misread() {
    let key = key_2048();
    let public = key.public_key();
    let study = Settings::defaults().study;
    let mut rng = StdRng::seed_from_u64(99);
    let mut refused = 0;
    for case in 0..32u32 {
        let bits = rng.random_range(READING_BITS + 1..=READING_BITS + GUARD_BITS as u32 - 1);
        let magnitude = (BigUint::one() << (bits - 1)) + rng.random_range(0..u64::MAX);
        let negative = case % 2 == 1;
        let encoding = if negative {
            public.n() - &magnitude
        } else {
            magnitude.clone()
        };
        let rogue = key
            .encrypt(&EncodedNumber::from_parts(public.clone(), encoding, -13).unwrap())
            .unwrap();
        let rogue_value = {
            let v: f64 = magnitude.to_string().parse::<f64>().unwrap() * 16f64.powi(-13);
            if negative { -v } else { v }
        };
        let mut plain = BTreeMap::from([
            ("glucose".to_owned(), vec![5.4, 6.1]),
            ("cholesterol".to_owned(), vec![4.2]),
        ]);
        let mut readings = encrypt_all(key, &plain);
        let metric = if case.is_multiple_of(3) {
            "cholesterol"
        } else {
            "glucose"
        };
        let at = rng.random_range(0..plain[metric].len());
        readings.get_mut(metric).unwrap()[at] = rogue;
        plain.get_mut(metric).unwrap()[at] = rogue_value;
        let evaluation = study
            .evaluate_encrypted(&readings, READING_BITS, &mut rand::rng())
            .unwrap();
        let packed = round_trip(&ResultMessage::ok_packed("s", "p", &evaluation, true).unwrap());
        match packed.decrypt(key) {
            Err(DecryptError::Unpack { .. }) => refused += 1,
            Ok(values) if bits <= READING_BITS + 2 => {
                let expected = study.evaluate_plain(&plain);
                for (got, want) in values.iter().zip(&expected.outputs) {
                    assert!(
                        close(got.value, want.value),
                        "case {case}: {got:?} vs {want:?}"
                    );
                }
            }
            other => panic!("case {case} ({bits} bits, negative {negative}): {other:?}"),
        }
    }
    assert!(refused >= 28, "only {refused} of 32 refused");
}

#[test]
fn a_result_with_an_unknown_field_or_a_tampered_slot_is_refused() {
    let key = key_1024();
    let study = Settings::defaults().study;
    let plain = BTreeMap::from([("glucose".to_owned(), vec![5.0])]);
    let evaluation = study
        .evaluate_encrypted(&encrypt_all(key, &plain), READING_BITS, &mut rand::rng())
        .unwrap();
    let packed = ResultMessage::ok_packed("s", "p", &evaluation, true).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&packed.to_json()).unwrap();
    json["outputs"][0]["extra"] = 1.into();
    assert!(serde_json::from_value::<ResultMessage>(json).is_err());

    // A bias too small for the slot's content: the range check refuses it.
    let mut tampered = packed.clone();
    let bias = &tampered.outputs[0].bias.as_ref().unwrap().0;
    tampered.outputs[0].bias = Some((bias >> 1u32).into());
    assert!(matches!(
        tampered.decrypt(key),
        Err(DecryptError::Unpack { .. })
    ));
    // A slot pointing at a packed ciphertext that is not there.
    let mut tampered = packed.clone();
    tampered.outputs[0].packed = Some(9);
    assert!(matches!(
        tampered.decrypt(key),
        Err(DecryptError::Malformed { .. })
    ));
    // Version 1 fields in a version 2 result.
    let mut tampered = packed.clone();
    tampered.outputs[0].ciphertext = Some(tampered.packed[0].ciphertext.clone());
    assert!(tampered.decrypt(key).is_err());
    let mut tampered = packed;
    tampered.version = 3;
    assert!(matches!(
        tampered.decrypt(key),
        Err(DecryptError::UnsupportedVersion(3))
    ));
}

/// The random_scale factor is drawn per submission and output, within min..=max, and nothing
/// public (exponent, slot) depends on it.
#[test]
fn random_scale_draws_within_its_range_and_its_layout_does_not_depend_on_the_draw() {
    let key = key_1024();
    let study = Study {
        metrics: vec![Metric {
            name: "glucose".into(),
            unit: "mmol/L".into(),
            precision: 0.0001,
            min: 0.0,
            max: 150.0,
        }],
        outputs: vec![Output {
            name: "glucose_x".into(),
            unit: None,
            kind: OutputKind::RandomScale {
                metric: "glucose".into(),
                min: 1,
                max: 10,
            },
        }],
    };
    let plain = BTreeMap::from([("glucose".to_owned(), vec![5.0, 7.0])]);
    let encrypted = encrypt_all(key, &plain);
    let mut factors = std::collections::BTreeSet::new();
    let mut layouts = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let evaluation = study
            .evaluate_encrypted(&encrypted, READING_BITS, &mut rand::rng())
            .unwrap();
        let result = ResultMessage::ok_packed("s", "p", &evaluation, false).unwrap();
        let o = &result.outputs[0];
        layouts.insert((
            o.exponent,
            o.offset,
            o.width,
            o.bias.as_ref().unwrap().0.clone(),
        ));
        let value = result.decrypt(key).unwrap()[0].value;
        let factor = value / 6.0;
        assert!((factor - factor.round()).abs() < 1e-9, "{value}");
        assert!((1.0..=10.0).contains(&factor.round()), "{value}");
        factors.insert(factor.round() as i64);
        assert_eq!(
            result.outputs[0].unit, "mmol/L",
            "random_scale keeps the metric's unit"
        );
    }
    assert_eq!(layouts.len(), 1, "the layout revealed the factor");
    assert!(factors.len() >= 4, "40 draws gave only {factors:?}");
}

/// Bounds are built from public data: a Bounded's bound of a sum of two readings with
/// different exponents is the aligned sum of their bounds.
#[test]
fn bounds_follow_exponent_alignment() {
    let key = key_1024();
    let a = Bounded::reading(key.encrypt_f64(5.4).unwrap(), 10); // exponent -13
    let b = Bounded::reading(key.encrypt_f64(1000.0).unwrap(), 10); // exponent -11
    assert_eq!(a.value.exponent(), -13);
    assert_eq!(b.value.exponent(), -11);
    let sum = a.add(&b).unwrap();
    assert_eq!(sum.value.exponent(), -13);
    assert_eq!(
        sum.bound,
        BigUint::from(1023u32) + (BigUint::from(1023u32) << 8u32)
    );
    let k = key.public_key().encode_i64(-7).unwrap();
    assert_eq!(sum.mul_encoded(&k).unwrap().bound, &sum.bound * 7u32);
}

/// Readings at their metric's exponent get the declared range's bound (glucose: 150 · 16^4 <
/// 2^24) instead of 2^64 - 1: every slot is narrower, and the result still decrypts exactly.
#[test]
fn readings_at_the_metrics_exponent_get_the_tighter_declared_bound() {
    let key = key_2048();
    let study = Settings::defaults().study;
    let plain = BTreeMap::from([
        ("glucose".to_owned(), vec![1.2, 33.0, 149.9]),
        ("cholesterol".to_owned(), vec![0.6, 45.0]),
    ]);
    let at_metric_exponent: BTreeMap<String, Vec<EncryptedNumber>> = plain
        .iter()
        .map(|(m, series)| {
            let encrypted = series
                .iter()
                .map(|v| {
                    let encoded = study.encode_reading(key.public_key(), m, *v).unwrap();
                    key.encrypt(&encoded).unwrap()
                })
                .collect();
            (m.clone(), encrypted)
        })
        .collect();
    let glucose = study.metric("glucose").unwrap();
    assert_eq!(glucose.exponent(), -4);
    assert_eq!(glucose.mantissa_bound(), BigUint::from(150u32 * 65536));
    assert_eq!(
        glucose.reading_bound(READING_BITS),
        BigUint::from(150u32 * 65536)
    );
    // Where the configured assumption is tighter, it wins.
    assert_eq!(glucose.reading_bound(10), BigUint::from(1023u32));

    let tight = study
        .evaluate_encrypted(&at_metric_exponent, READING_BITS, &mut rand::rng())
        .unwrap();
    let loose = study
        .evaluate_encrypted(&encrypt_all(key, &plain), READING_BITS, &mut rand::rng())
        .unwrap();
    let sum = |e: &pipeline::study::Evaluation<Bounded>| {
        let bounds: Vec<&BigUint> = e.outputs.iter().map(|o| &o.value.bound).collect();
        let layout = packing::layout(&bounds, key.public_key().bits()).unwrap();
        layout.slots.iter().map(|s| s.width).collect::<Vec<_>>()
    };
    let (tight_widths, loose_widths) = (sum(&tight), sum(&loose));
    for (t, l) in tight_widths.iter().zip(&loose_widths) {
        assert!(
            t < l,
            "slot widths {tight_widths:?} not all below {loose_widths:?}"
        );
    }
    // glucose_sum: 3 readings of bound 150·16^4 each: bound 29,491,200, so 2·bias needs 26 bits.
    let glucose_sum = tight
        .outputs
        .iter()
        .position(|o| o.name == "glucose_sum")
        .unwrap();
    assert_eq!(tight_widths[glucose_sum], 26 + GUARD_BITS);

    let expected = study.evaluate_plain(&plain);
    let packed = round_trip(&ResultMessage::ok_packed("s", "p", &tight, true).unwrap());
    assert_eq!(packed.packed.len(), 1);
    for (got, want) in packed.decrypt(key).unwrap().iter().zip(&expected.outputs) {
        // Readings are kept to 16^-4, so compare to that precision (times the largest factor).
        assert!(
            (got.value - want.value).abs() < 1e-3 * want.value.abs().max(1.0),
            "{}: {} vs {}",
            got.name,
            got.value,
            want.value
        );
    }
}
