//! Primes for the kernels' tests, found with num-bigint alone (trial division, then
//! Miller–Rabin with num-bigint's `modpow`), so that the kernels are checked against code that
//! does not use them.

use num_bigint::{BigRng010 as _, BigUint};
use num_traits::One;

const SMALL_PRIMES: [u32; 24] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

/// Miller–Rabin with 20 random bases on num-bigint: an error probability below 2^-40, plenty
/// for test fixtures.
pub(crate) fn is_prime(n: &BigUint) -> bool {
    if *n < BigUint::from(100u32) {
        let v = n.iter_u32_digits().next().unwrap_or(0);
        return v == 2 || SMALL_PRIMES.contains(&v);
    }
    if SMALL_PRIMES.iter().any(|&p| (n % p) == BigUint::ZERO) || !n.bit(0) {
        return false;
    }
    let mut rng = rand::rng();
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    'bases: for _ in 0..20 {
        let a = rng.random_biguint_range(&BigUint::from(2u32), &n_minus_1);
        let mut x = a.modpow(&d, n);
        if x.is_one() || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = &x * &x % n;
            if x == n_minus_1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// A random prime of exactly `bits` bits.
pub(crate) fn random_prime(bits: u64) -> BigUint {
    let mut rng = rand::rng();
    loop {
        let n = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
        if is_prime(&n) {
            return n;
        }
    }
}
