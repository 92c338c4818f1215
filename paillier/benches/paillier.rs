//! Benchmarks of every operation the study pipeline performs, at 2048 and 3072-bit keys.
//!
//! Benchmark ids are `paillier/<bits>/<op>`; `bench/paillier_compare.py` runs the same
//! operations with python-paillier + gmpy2 on the same inputs and matches them by these ids
//! (criterion stores them under `target/criterion/paillier_<bits>/<op>/`). The inputs are two
//! fixed readings, 5.4 and 4.2, encrypted once per key; the scalars are the study's (7, -3,
//! 0.0555, 0.0259). Run: `cargo bench -p paillier --bench paillier [-- <filter>]`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use paillier::PrivateKey;

const KEY_BITS: [u64; 2] = [2048, 3072];
const READING_A: f64 = 5.4;
const READING_B: f64 = 4.2;
const WEIGHT_A: f64 = 0.0555;
const WEIGHT_B: f64 = 0.0259;

/// Key generation: a few slow, widely spread samples (the prime search is random), so a small
/// flat sample instead of criterion's default 100 linearly growing ones.
fn keygen(c: &mut Criterion) {
    for bits in KEY_BITS {
        let mut group = c.benchmark_group(format!("paillier/{bits}"));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(if bits > 2048 { 25 } else { 10 }));
        group.bench_function("keygen", |b| {
            b.iter(|| PrivateKey::generate(black_box(bits)).expect("key generation"))
        });
        group.finish();
    }
}

/// Everything but key generation, on one key per size.
fn operations(c: &mut Criterion) {
    for bits in KEY_BITS {
        let key = PrivateKey::generate(bits).expect("key generation");
        let pk = key.public_key().clone();
        let a = key.encrypt_f64(READING_A).expect("encrypt a");
        let b = key.encrypt_f64(READING_B).expect("encrypt b");

        let mut group = c.benchmark_group(format!("paillier/{bits}"));
        // 50 samples: a stable median, and the slowest operations (tens of ms) do not
        // stretch the run past a few minutes.
        group
            .sample_size(50)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        // Encryption includes encoding the f64, as python-paillier's `encrypt(5.4)` does.
        group.bench_function("encrypt_public", |bench| {
            bench.iter(|| pk.encrypt_f64(black_box(READING_A)).expect("encrypt"))
        });
        group.bench_function("encrypt_owner", |bench| {
            bench.iter(|| key.encrypt_f64(black_box(READING_A)).expect("encrypt"))
        });
        group.bench_function("decrypt", |bench| {
            bench.iter(|| key.decrypt_f64(black_box(&a)).expect("decrypt"))
        });
        group.bench_function("add", |bench| {
            bench.iter(|| black_box(&a).add(black_box(&b)).expect("add"))
        });
        group.bench_function("add_plaintext", |bench| {
            bench.iter(|| black_box(&a).add_f64(black_box(READING_B)).expect("add"))
        });
        group.bench_function("mul_7", |bench| {
            bench.iter(|| black_box(&a).mul_i64(black_box(7)).expect("mul"))
        });
        group.bench_function("mul_neg3", |bench| {
            bench.iter(|| black_box(&a).mul_i64(black_box(-3)).expect("mul"))
        });
        group.bench_function("mul_0.0555", |bench| {
            bench.iter(|| black_box(&a).mul_f64(black_box(WEIGHT_A)).expect("mul"))
        });
        group.bench_function("obfuscate", |bench| {
            bench.iter(|| black_box(&a).obfuscated())
        });
        group.bench_function("weighted_sum", |bench| {
            bench.iter(|| {
                let wa = black_box(&a).mul_f64(black_box(WEIGHT_A)).expect("mul");
                let wb = black_box(&b).mul_f64(black_box(WEIGHT_B)).expect("mul");
                wa.add(&wb).expect("add")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, keygen, operations);
criterion_main!(benches);
