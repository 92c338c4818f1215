//! Kernel timings for tuning (ignored by default): prints the minimum time of the
//! exponentiations and inverses Paillier performs, at the sizes of 2048 and 3072-bit keys.
//! Run `cargo test --release -p paillier --lib timing -- --ignored --nocapture` beside
//! a gmpy2 script timing `powmod`/`invert` on the same sizes.

use super::{Modulus, mod_inverse};
use num_bigint::{BigRng010, BigUint};
use num_traits::One;
use std::time::Instant;

fn min_ns(mut f: impl FnMut(), reps: usize) -> f64 {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_nanos() as f64);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[0]
}

#[test]
#[ignore]
fn timing() {
    // PORTABLE=1 times the portable kernel on a CPU that has the assembly one.
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("PORTABLE").is_some() {
        super::adx::FORCE_PORTABLE.with(|f| f.set(true));
    }
    let mut rng = rand::rng();
    // libtest prints "test ... " without a newline before the first line of output.
    println!();
    for bits in [2048u64, 3072] {
        // A modulus of the size of n² (2·bits) and of p² (bits).
        for (label, mbits, ebits) in [
            ("pow_n2_full", 2 * bits, bits),
            ("pow_p2_half", bits, bits / 2),
            ("pow_n2_56", 2 * bits, 56),
            ("pow_n2_3", 2 * bits, 3),
            // A Miller–Rabin round on a candidate prime of key generation.
            ("pow_prime", bits / 2, bits / 2),
        ] {
            let m = rng.random_biguint(mbits) | BigUint::one() | (BigUint::one() << (mbits - 1));
            let md = Modulus::new(&m).unwrap();
            let e = rng.random_biguint(ebits) | (BigUint::one() << (ebits - 1));
            let b = md.to_residue(&rng.random_biguint_below(&m));
            let reps = if ebits > 100 { 41 } else { 2001 };
            let ns = min_ns(
                || {
                    std::hint::black_box(md.pow(&b, &e));
                },
                reps,
            );
            println!("{bits} {label} {ns:.0}");
            if label == "pow_prime" {
                // The base-2 round: squarings and doublings only.
                let ns = min_ns(
                    || {
                        std::hint::black_box(md.pow_two(&e));
                    },
                    reps,
                );
                println!("{bits} pow_two_prime {ns:.0}");
                // The whole base-2 round on the IFMA kernel, where the CPU has it.
                if super::base_2_round(&m).is_some() {
                    let ns = min_ns(
                        || {
                            std::hint::black_box(super::base_2_round(&m));
                        },
                        reps,
                    );
                    println!("{bits} ifma_base_2_round {ns:.0}");
                }
            }
        }
        let m = rng.random_biguint(2 * bits) | BigUint::one();
        let md = Modulus::new(&m).unwrap();
        let a = rng.random_biguint_below(&m);
        let b = md.to_residue(&a);
        let ns = min_ns(
            || {
                std::hint::black_box(md.mul(&b, &b));
            },
            2001,
        );
        println!("{bits} mulmod_n2 {ns:.0}");
        let ns = min_ns(
            || {
                std::hint::black_box(md.square(&b));
            },
            2001,
        );
        println!("{bits} sqrmod_n2 {ns:.0}");
        let ns = min_ns(
            || {
                std::hint::black_box(mod_inverse(&a, &m));
            },
            201,
        );
        println!("{bits} inv_n2 {ns:.0}");
        // The inverse modulo n² through n (what a negative scalar needs).
        let root = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
        let sq = Modulus::new(&(&root * &root)).unwrap();
        let x = sq.to_residue(&rng.random_biguint_below(&root));
        let ns = min_ns(
            || {
                std::hint::black_box(sq.inverse_mod_square(&x, &root));
            },
            201,
        );
        println!("{bits} inv_n2_via_n {ns:.0}");
        let y = rng.random_biguint_below(&root);
        let ns = min_ns(
            || {
                std::hint::black_box(mod_inverse(&y, &root));
            },
            201,
        );
        println!("{bits} inv_n {ns:.0}");
    }
}

/// The pieces of a Montgomery square at the sizes of prime generation (16 and 24 limbs).
#[test]
#[ignore]
fn timing_prime_sizes() {
    use super::limbs::{mul_basecase, sqr_basecase};
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("PORTABLE").is_some() {
        super::adx::FORCE_PORTABLE.with(|f| f.set(true));
    }
    let mut rng = rand::rng();
    println!();
    for n in [16usize, 24] {
        let a: Vec<u64> = (0..n).map(|_| rand::RngExt::random(&mut rng)).collect();
        let mut r = vec![0u64; 2 * n];
        let reps = 20001;
        let batch = 100;
        let sqr = min_ns(
            || {
                for _ in 0..batch {
                    sqr_basecase(&mut r, std::hint::black_box(&a));
                }
            },
            reps / batch,
        ) / batch as f64;
        let mul = min_ns(
            || {
                for _ in 0..batch {
                    mul_basecase(&mut r, std::hint::black_box(&a), &a);
                }
            },
            reps / batch,
        ) / batch as f64;
        let m =
            rng.random_biguint(64 * n as u64) | BigUint::one() | (BigUint::one() << (64 * n - 1));
        let md = Modulus::new(&m).unwrap();
        let x = md.to_residue(&rng.random_biguint_below(&m));
        let square = min_ns(
            || {
                for _ in 0..batch {
                    std::hint::black_box(md.square(std::hint::black_box(&x)));
                }
            },
            reps / batch,
        ) / batch as f64;
        println!(
            "{n} limbs: sqr_basecase {sqr:.0} ns, mul_basecase {mul:.0} ns, montgomery square {square:.0} ns"
        );
    }
}

/// Modular exponentiation on the AVX-512 IFMA kernel against the scalar kernel (same
/// modulus, full-length exponent) across lengths: where the IFMA path starts to pay.
#[cfg(target_arch = "x86_64")]
#[test]
#[ignore]
fn ifma_pow_crossover() {
    use super::ifma::FORCE_SCALAR;
    let mut rng = rand::rng();
    println!();
    for mbits in [512u64, 640, 768, 896, 1024, 1536, 2048, 3072, 4096, 6144] {
        let m = rng.random_biguint(mbits) | BigUint::one() | (BigUint::one() << (mbits - 1));
        let md = Modulus::new(&m).unwrap();
        let e = rng.random_biguint(mbits / 2) | (BigUint::one() << (mbits / 2 - 1));
        let b = md.to_residue(&rng.random_biguint_below(&m));
        let mut ns = [0.0; 2];
        for (i, scalar) in [false, true].into_iter().enumerate() {
            FORCE_SCALAR.with(|f| f.set(scalar));
            ns[i] = min_ns(
                || {
                    std::hint::black_box(md.pow(&b, &e));
                },
                41,
            );
        }
        FORCE_SCALAR.with(|f| f.set(false));
        // Two of them side by side (the CRT halves), per exponentiation.
        let pair = min_ns(
            || {
                std::hint::black_box(Modulus::pow_pair([(&md, &b, &e), (&md, &b, &e)]));
            },
            21,
        ) / 2.0;
        println!(
            "{mbits} ifma {:.0} scalar {:.0} ratio {:.2} ifma_pair_each {pair:.0}",
            ns[0],
            ns[1],
            ns[1] / ns[0]
        );
    }
}
