//! Quick per-operation timings (minimum over repeats, in ns) for tuning, printed as
//! `<bits> <op> <ns>` lines; a python-paillier script printing the same lines can run
//! alternately with it on a noisy machine. `bench/paillier_compare.py` is the real comparison.
//! Run: `cargo run --release -p paillier --example op_timing [-- <reps>]`.

use std::hint::black_box;
use std::time::Instant;

use paillier::PrivateKey;

/// One named operation to time.
type Op<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn min_ns(reps: usize, mut f: impl FnMut()) -> u128 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos()
        })
        .min()
        .unwrap_or(0)
}

fn main() -> Result<(), paillier::Error> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    for bits in [2048u64, 3072] {
        let key = PrivateKey::generate(bits)?;
        let pk = key.public_key().clone();
        let a = key.encrypt_f64(5.4)?;
        let b = key.encrypt_f64(4.2)?;
        let (p, q) = (key.p().clone(), key.q().clone());
        let mut ops: Vec<Op> = vec![
            (
                "load_own_key",
                Box::new(|| {
                    black_box(PrivateKey::from_own_primes(p.clone(), q.clone()).ok());
                }),
            ),
            (
                "load_foreign_key",
                Box::new(|| {
                    black_box(PrivateKey::from_primes(p.clone(), q.clone()).ok());
                }),
            ),
            (
                "encrypt_public",
                Box::new(|| {
                    black_box(pk.encrypt_f64(5.4).ok());
                }),
            ),
            (
                "encrypt_owner",
                Box::new(|| {
                    black_box(key.encrypt_f64(5.4).ok());
                }),
            ),
            (
                "decrypt",
                Box::new(|| {
                    black_box(key.decrypt_f64(&a).ok());
                }),
            ),
            (
                "add",
                Box::new(|| {
                    black_box(a.add(&b).ok());
                }),
            ),
            (
                "add_plaintext",
                Box::new(|| {
                    black_box(a.add_f64(4.2).ok());
                }),
            ),
            (
                "mul_7",
                Box::new(|| {
                    black_box(a.mul_i64(7).ok());
                }),
            ),
            (
                "mul_neg3",
                Box::new(|| {
                    black_box(a.mul_i64(-3).ok());
                }),
            ),
            (
                "mul_0.0555",
                Box::new(|| {
                    black_box(a.mul_f64(0.0555).ok());
                }),
            ),
            (
                "obfuscate",
                Box::new(|| {
                    black_box(a.obfuscated());
                }),
            ),
            (
                "weighted_sum",
                Box::new(|| {
                    let wa = a.mul_f64(0.0555).ok();
                    let wb = b.mul_f64(0.0259).ok();
                    black_box(wa.zip(wb).map(|(x, y)| x.add(&y)));
                }),
            ),
        ];
        for (name, f) in ops.iter_mut() {
            let r = if name.starts_with("encrypt_p") || *name == "obfuscate" {
                reps
            } else {
                reps * 10
            };
            println!("{bits} {name} {}", min_ns(r, f));
        }
        println!(
            "{bits} keygen {}",
            min_ns(3, || {
                black_box(PrivateKey::generate(bits).ok());
            })
        );
    }
    Ok(())
}
