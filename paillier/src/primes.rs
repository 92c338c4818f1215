//! Prime generation and primality testing for key generation, and the small-prime table used
//! to reject hostile public keys.
//!
//! Candidates are found by an incremental sieve: a random odd start with its top two bits set
//! (so that the product of two such primes has exactly twice their length), then the odd numbers
//! after it are sieved by every prime below [`SIEVE_LIMIT`] and the survivors are tested with
//! Miller–Rabin. This is the search GMP's `mpz_nextprime` (and so python-paillier) performs.
//!
//! ## Error bound
//! Each survivor gets one Miller–Rabin round to base 2 (it rejects almost every composite at
//! once) and then `t` rounds to uniformly random bases. Damgård, Landrock and Pomerance (1993)
//! bound the probability that a random odd `k`-bit composite passes `t` random-base rounds by
//! `k^{3/2} 2^t t^{-1/2} 4^{2-\sqrt{tk}}` (for `3 <= t <= k/9`, `k >= 21`). With the rounds of
//! [`miller_rabin_rounds`] this is below 2^-120 for 1024-bit primes (t = 5), 2^-133 for 1536-bit
//! (t = 4) and 2^-156 for 2048-bit primes (t = 4): the rounds FIPS 186-5 (table B.1) asks for.

use std::sync::OnceLock;

use num_bigint::{BigRng010 as _, BigUint};
use num_integer::Integer;
use num_traits::{One, ToPrimitive};
use rand::CryptoRng;

use crate::arith::{Modulus, Residue};

/// Candidates are sieved by all odd primes below this bound before any Miller–Rabin round.
pub(crate) const SIEVE_LIMIT: u32 = 1 << 16;

/// How many odd numbers after a random start one sieve pass covers. The mean gap between
/// 2048-bit primes is about 1,420, so a pass of 2^15 odd numbers almost never comes up empty.
const SIEVE_SPAN: usize = 1 << 15;

/// The odd primes below [`SIEVE_LIMIT`], computed once.
pub(crate) fn small_odd_primes() -> &'static [u32] {
    static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
    PRIMES.get_or_init(|| {
        let limit = SIEVE_LIMIT as usize;
        let mut composite = vec![false; limit];
        let mut primes = Vec::new();
        for i in 3..limit {
            if i % 2 == 1 && !composite[i] {
                primes.push(i as u32);
                let mut j = i * i;
                while j < limit {
                    composite[j] = true;
                    j += 2 * i;
                }
            }
        }
        primes
    })
}

/// Small odd primes grouped so that each group's product fits in a u64: one big-number
/// reduction per group instead of one per prime.
fn prime_groups() -> &'static [(u64, &'static [u32])] {
    static GROUPS: OnceLock<Vec<(u64, &'static [u32])>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let primes = small_odd_primes();
        let mut groups = Vec::new();
        let mut start = 0;
        while start < primes.len() {
            let mut product: u64 = 1;
            let mut end = start;
            while end < primes.len() {
                match product.checked_mul(u64::from(primes[end])) {
                    Some(p) => {
                        product = p;
                        end += 1;
                    }
                    None => break,
                }
            }
            groups.push((product, &primes[start..end]));
            start = end;
        }
        groups
    })
}

/// `x mod m` for a small modulus, limb by limb (no big-number allocation).
fn rem_u64(x: &BigUint, m: u64) -> u64 {
    let m = u128::from(m);
    x.iter_u64_digits()
        .rev()
        .fold(0u128, |acc, limb| ((acc << 64) | u128::from(limb)) % m) as u64
}

/// The smallest odd prime below [`SIEVE_LIMIT`] that divides `x` (and is not `x` itself).
pub(crate) fn small_factor(x: &BigUint) -> Option<u32> {
    for &(product, primes) in prime_groups() {
        let r = rem_u64(x, product);
        for &p in primes {
            if r.is_multiple_of(u64::from(p)) && *x != BigUint::from(p) {
                return Some(p);
            }
        }
    }
    None
}

/// Random-base Miller–Rabin rounds (after the base-2 round) for a prime of `bits` bits; see
/// the module documentation for the error bound they give.
pub(crate) fn miller_rabin_rounds(bits: u64) -> u32 {
    match bits {
        0..=511 => 20, // test-only sizes: cheap, so be generous
        512..=1023 => 8,
        1024..=1535 => 5,
        _ => 4,
    }
}

/// One Miller–Rabin witness test, given `x = base^d` (Montgomery form) for the odd part `d`
/// of `n - 1 = d·2^s`: false when the base proves `n` composite.
fn passes_round(ctx: &Modulus, n_minus_1: &BigUint, s: u64, mut x: Residue) -> bool {
    let one = ctx.one();
    let minus_one = ctx.to_residue(n_minus_1);
    if x == one || x == minus_one {
        return true;
    }
    for _ in 1..s {
        x = ctx.square(&x);
        if x == minus_one {
            return true;
        }
        if x == one {
            return false;
        }
    }
    false
}

/// Miller–Rabin: one round to base 2, then `rounds` rounds to random bases in [2, n-2].
/// `n` must be odd and above the small primes (callers sieve first).
pub(crate) fn is_probable_prime<R: CryptoRng + ?Sized>(
    n: &BigUint,
    rounds: u32,
    rng: &mut R,
) -> bool {
    let Some(ctx) = Modulus::new(n) else {
        return false;
    };
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    // Base 2 first: it rejects almost every composite, and 2^d needs only squarings and
    // doublings (`pow_two`), no multiplications.
    if !passes_round(&ctx, &n_minus_1, s, ctx.pow_two(&d)) {
        return false;
    }
    let low = BigUint::from(2u32);
    let high = n - 2u32; // exclusive upper bound of the range [2, n-2)
    (0..rounds).all(|_| {
        let base = rng.random_biguint_range(&low, &high);
        passes_round(&ctx, &n_minus_1, s, ctx.pow(&ctx.to_residue(&base), &d))
    })
}

/// Full primality check for values given from outside (a private key file): the sieve, then
/// Miller–Rabin with the rounds for its size.
pub(crate) fn is_prime<R: CryptoRng + ?Sized>(n: &BigUint, rng: &mut R) -> bool {
    if n.is_even() || *n < BigUint::from(3u32) {
        return *n == BigUint::from(2u32);
    }
    if let Some(p) = n.to_u32().filter(|&v| v < SIEVE_LIMIT) {
        return small_odd_primes().binary_search(&p).is_ok();
    }
    small_factor(n).is_none() && is_probable_prime(n, miller_rabin_rounds(n.bits()), rng)
}

/// The sieve and a single base-2 Miller–Rabin round, for primes this program generated itself
/// and reads back (see `PrivateKey::from_own_primes`): it tells a damaged value from a prime,
/// not a crafted pseudoprime.
pub(crate) fn is_probable_prime_base_2<R: CryptoRng + ?Sized>(n: &BigUint, rng: &mut R) -> bool {
    if n.is_even() || *n < BigUint::from(3u32) {
        return *n == BigUint::from(2u32);
    }
    if let Some(p) = n.to_u32().filter(|&v| v < SIEVE_LIMIT) {
        return small_odd_primes().binary_search(&p).is_ok();
    }
    small_factor(n).is_none() && is_probable_prime(n, 0, rng)
}

/// A random prime of exactly `bits` bits whose two top bits are set.
pub(crate) fn random_prime<R: CryptoRng + ?Sized>(bits: u64, rng: &mut R) -> BigUint {
    assert!(bits >= 32, "primes this small are never generated");
    let rounds = miller_rabin_rounds(bits);
    let primes = small_odd_primes();
    let top_bits = (BigUint::one() << (bits - 1)) | (BigUint::one() << (bits - 2));
    let mut composite = vec![false; SIEVE_SPAN];
    loop {
        let start = rng.random_biguint(bits) | &top_bits | BigUint::one();
        // composite[i] marks start + 2i as divisible by a small prime.
        composite.iter_mut().for_each(|c| *c = false);
        for &(product, group) in prime_groups() {
            let r = rem_u64(&start, product);
            for &p in group {
                let p = p as usize;
                let rem = (r % p as u64) as usize;
                // First i with start + 2i ≡ 0 (mod p): 2i ≡ -rem, i ≡ -rem·2⁻¹ = -rem·(p+1)/2.
                let half = p.div_ceil(2);
                let mut i = ((p - rem) % p) * half % p;
                while i < SIEVE_SPAN {
                    composite[i] = true;
                    i += p;
                }
            }
        }
        for (i, _) in composite.iter().enumerate().filter(|(_, c)| !**c) {
            let candidate = &start + BigUint::from(2 * i);
            if candidate.bits() != bits {
                break; // ran past the bit length: start again from a new random point
            }
            if primes
                .last()
                .is_some_and(|&p| candidate <= BigUint::from(p))
            {
                continue;
            }
            if is_probable_prime(&candidate, rounds, rng) {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_prime_table_is_right() {
        let primes = small_odd_primes();
        assert_eq!(&primes[..6], &[3, 5, 7, 11, 13, 17]);
        assert_eq!(primes.len(), 6541); // π(65536) = 6542, minus the prime 2
        assert_eq!(*primes.last().unwrap(), 65521);
    }

    #[test]
    fn small_factor_finds_factors_and_ignores_the_prime_itself() {
        let big_prime =
            BigUint::parse_bytes(b"170141183460469231731687303715884105727", 10).unwrap(); // 2^127 - 1
        assert_eq!(small_factor(&big_prime), None);
        assert_eq!(small_factor(&(&big_prime * 65521u32)), Some(65521));
        assert_eq!(small_factor(&(&big_prime * 3u32 * 7u32)), Some(3));
        assert_eq!(small_factor(&BigUint::from(65521u32)), None);
    }

    #[test]
    fn primality_agrees_with_known_values() {
        let mut rng = rand::rng();
        let mersenne_127 = (BigUint::one() << 127u32) - 1u32;
        let mersenne_128 = (BigUint::one() << 128u32) - 1u32; // composite
        // 3215031751 is a strong pseudoprime to bases 2, 3, 5 and 7.
        let spsp = BigUint::from(3_215_031_751u64);
        assert!(is_prime(&mersenne_127, &mut rng));
        assert!(!is_prime(&mersenne_128, &mut rng));
        assert!(!is_prime(&spsp, &mut rng));
        assert!(is_prime(&BigUint::from(65521u32), &mut rng));
        assert!(!is_prime(&BigUint::from(65535u32), &mut rng));
        // Carmichael number 561 = 3·11·17 and a product of two 64-bit primes.
        assert!(!is_prime(&BigUint::from(561u32), &mut rng));
        let p = BigUint::from(18_446_744_073_709_551_557u64);
        let q = BigUint::from(18_446_744_073_709_551_533u64);
        assert!(is_prime(&p, &mut rng) && is_prime(&q, &mut rng));
        assert!(!is_prime(&(&p * &q), &mut rng));
    }

    #[test]
    fn random_primes_have_exact_length_and_top_bits() {
        let mut rng = rand::rng();
        for bits in [64u64, 256, 512] {
            let p = random_prime(bits, &mut rng);
            assert_eq!(p.bits(), bits);
            assert!(p.bit(bits - 2), "second-highest bit must be set");
            assert!(is_prime(&p, &mut rng));
        }
    }

    #[test]
    fn rem_u64_matches_bigint_remainder() {
        let x = BigUint::parse_bytes(
            b"123456789012345678901234567890123456789012345678901234567890",
            10,
        )
        .unwrap();
        for m in [3u64, 65521, u64::MAX, 1 << 40] {
            assert_eq!(BigUint::from(rem_u64(&x, m)), &x % m);
        }
    }
}
