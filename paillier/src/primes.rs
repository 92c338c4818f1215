//! Prime generation and primality testing for key generation, and the small-prime table used
//! to reject hostile public keys.
//!
//! Candidates are found by an incremental sieve: a random odd start with its top two bits set
//! (so that the product of two such primes has exactly twice their length), then the odd numbers
//! after it are sieved, a window at a time, by every prime below a bound that grows with the
//! size (2^19 for 1024-bit primes, 2^20 from 1280 bits on), and the survivors are tested in
//! order with Miller–Rabin, base 2 first. This is the search GMP's `mpz_nextprime` (and so
//! python-paillier) performs. Sieving that deep needs the start's remainder modulo some 82,000
//! primes per search; [`modexact`] gets them with multiplications only (about 0.4 ms for a
//! 1024-bit start), and each removes candidates that would otherwise cost a base-2 round:
//! about 30 rounds per 1024-bit prime instead of 36 with primes below 2^16, and 43 instead of
//! 54 per 1536-bit prime. The base-2 rounds run on the AVX-512 IFMA kernel where the CPU has
//! one (`arith::ifma`, two candidates at a time), else on `Modulus::pow_two`.
//!
//! ## Error bound
//! Each survivor gets one Miller–Rabin round to base 2 (it rejects almost every composite at
//! once) and then `t` rounds to uniformly random bases. Damgård, Landrock and Pomerance (1993)
//! bound the probability that a random odd `k`-bit composite passes `t` random-base rounds by
//! `k^{3/2} 2^t t^{-1/2} 4^{2-\sqrt{tk}}` (for `3 <= t <= k/9`, `k >= 21`). With the rounds of
//! [`miller_rabin_rounds`] this is below 2^-120 for 1024-bit primes (t = 5), 2^-133 for 1536-bit
//! (t = 4) and 2^-156 for 2048-bit primes (t = 4): the rounds FIPS 186-5 (table B.1) asks for.

use std::borrow::Cow;
use std::sync::OnceLock;

use num_bigint::{BigRng010 as _, BigUint};
use num_integer::Integer;
use num_traits::{One, ToPrimitive};
use rand::CryptoRng;

use paillier_arith::{Modulus, Residue};

/// Candidates are sieved by all odd primes below this bound before any Miller–Rabin round.
pub(crate) const SIEVE_LIMIT: u32 = 1 << 16;

/// The odd primes below [`SIEVE_LIMIT`] (a prefix of the search primes).
pub(crate) fn small_odd_primes() -> &'static [u32] {
    let primes = search_primes();
    &primes[..primes.partition_point(|&p| p < SIEVE_LIMIT)]
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
    if n.is_even() || *n <= BigUint::one() {
        return false;
    }
    // Base 2 first: it rejects almost every composite, and 2^d needs only squarings and
    // doublings: on the IFMA kernel where the CPU has it, else `pow_two`.
    let base_2 = paillier_arith::base_2_round(n).unwrap_or_else(|| scalar_base_2_round(n));
    base_2 && random_base_rounds(n, rounds, rng)
}

/// The base-2 round on the scalar kernel (`Modulus::pow_two`).
fn scalar_base_2_round(n: &BigUint) -> bool {
    let Some(ctx) = Modulus::new(n) else {
        return false;
    };
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    passes_round(&ctx, &n_minus_1, s, ctx.pow_two(&d))
}

/// `rounds` Miller–Rabin rounds to uniformly random bases in [2, n-2] (odd `n > 3`).
fn random_base_rounds<R: CryptoRng + ?Sized>(n: &BigUint, rounds: u32, rng: &mut R) -> bool {
    if rounds == 0 {
        return true;
    }
    let Some(ctx) = Modulus::new(n) else {
        return false;
    };
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
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
    small_factor(n).is_none() && is_probable_secret_prime(n, miller_rabin_rounds(n.bits()), rng)
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
    small_factor(n).is_none() && is_probable_secret_prime(n, 0, rng)
}

/// [`is_probable_prime`] for a prime of a key (p or q, secret: a key read from a file): the
/// base-2 round and `rounds` random-base rounds, every exponentiation on the constant-time
/// path (`Modulus::pow_secret`, bounded by n's length). What stays variable time: finding the
/// odd part of n − 1 (its trailing zeros) and the squarings after the exponentiation, which
/// stop where −1 or 1 appears.
fn is_probable_secret_prime<R: CryptoRng + ?Sized>(n: &BigUint, rounds: u32, rng: &mut R) -> bool {
    if n.is_even() || *n <= BigUint::from(3u32) {
        return *n == BigUint::from(3u32);
    }
    let Some(ctx) = Modulus::new(n) else {
        return false;
    };
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    let bits = n.bits();
    let round = |base: &BigUint| {
        passes_round(
            &ctx,
            &n_minus_1,
            s,
            ctx.pow_secret(&ctx.to_residue(base), &d, bits),
        )
    };
    let (low, high) = (BigUint::from(2u32), n - 2u32);
    round(&low) && (0..rounds).all(|_| round(&rng.random_biguint_range(&low, &high)))
}

/// The largest sieve bound prime generation uses (see [`search_sieve_limit`]).
const SEARCH_SIEVE_MAX: u32 = 1 << 20;

/// How many odd numbers one sieve window covers. The mean gap between 1536-bit primes is
/// about 1,065 (532 odd numbers), so a window of 2^13 odd numbers is almost never empty; when
/// it is, the search goes on in the next window.
const SIEVE_WINDOW: usize = 1 << 13;

/// Odd primes up to `limit` (exclusive), by the sieve of Eratosthenes over odd numbers.
fn odd_primes_below(limit: u32) -> Vec<u32> {
    let limit = limit as usize;
    // composite[i] stands for 2i + 1.
    let mut composite = vec![false; limit / 2];
    let mut primes = Vec::new();
    for i in 1..limit / 2 {
        if composite[i] {
            continue;
        }
        let p = 2 * i + 1;
        primes.push(p as u32);
        let mut j = p * p / 2;
        while j < limit / 2 {
            composite[j] = true;
            j += p;
        }
    }
    primes
}

/// The odd primes below [`SEARCH_SIEVE_MAX`], computed once.
fn search_primes() -> &'static [u32] {
    static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
    PRIMES.get_or_init(|| odd_primes_below(SEARCH_SIEVE_MAX))
}

/// Consecutive sieve primes whose product fits in a u64, with what reducing a big number
/// modulo that product needs: one pass of multiplications over the number's limbs
/// ([`modexact`]) then one division, instead of one division per limb.
#[derive(Clone, Copy)]
struct SieveGroup {
    /// The product of the group's primes (odd).
    product: u64,
    /// `product⁻¹ mod 2⁶⁴`.
    inverse: u64,
    /// The group's primes: `search_primes()[first..first + len]`.
    first: u32,
    len: u32,
}

fn sieve_groups() -> &'static [SieveGroup] {
    static GROUPS: OnceLock<Vec<SieveGroup>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let primes = search_primes();
        let mut groups = Vec::new();
        let mut start = 0;
        while start < primes.len() {
            let mut product: u64 = 1;
            let mut end = start;
            while let Some(p) = primes
                .get(end)
                .and_then(|&p| product.checked_mul(u64::from(p)))
            {
                product = p;
                end += 1;
            }
            groups.push(SieveGroup {
                product,
                inverse: inverse_u64(product),
                first: start as u32,
                len: (end - start) as u32,
            });
            start = end;
        }
        groups
    })
}

/// `d⁻¹ mod 2⁶⁴` for odd `d`, by Newton iteration (each step doubles the correct low bits;
/// `d` is its own inverse modulo 8).
fn inverse_u64(d: u64) -> u64 {
    let mut x = d;
    for _ in 0..5 {
        x = x.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(x)));
    }
    debug_assert_eq!(d.wrapping_mul(x), 1);
    x
}

/// Hensel ("exact division") remainder of the limbs `x` modulo the odd `d` with
/// `inverse = d⁻¹ mod 2⁶⁴`: returns `c <= d` with `x ≡ -c·2^(64·len) (mod d)`. Each limb costs
/// two multiplications and no division. Proof: with c₀ = 0, each step picks q = (xᵢ - cᵢ)·d⁻¹
/// mod 2⁶⁴, so q·d = xᵢ - cᵢ + cᵢ₊₁·2⁶⁴ with cᵢ₊₁ = ⌊q·d / 2⁶⁴⌋ + borrow; summing
/// xᵢ·2^(64i) ≡ (cᵢ - cᵢ₊₁·2⁶⁴)·2^(64i) over i telescopes to -c_len·2^(64·len).
fn modexact(x: &[u64], d: u64, inverse: u64) -> u64 {
    let mut c = 0u64;
    for &limb in x {
        let (s, borrow) = limb.overflowing_sub(c);
        let q = s.wrapping_mul(inverse);
        c = ((u128::from(q) * u128::from(d)) >> 64) as u64 + u64::from(borrow);
    }
    c
}

/// `a·b mod m` for u64 values.
fn mul_mod_u64(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

/// `2^(64·n) mod d`, by square-and-multiply on `2⁶⁴ mod d`.
fn limb_power_mod(n: usize, d: u64) -> u64 {
    let base = ((u128::from(u64::MAX) + 1) % u128::from(d)) as u64;
    let mut result = 1 % d;
    for bit in (0..usize::BITS - n.leading_zeros()).rev() {
        result = mul_mod_u64(result, result, d);
        if (n >> bit) & 1 == 1 {
            result = mul_mod_u64(result, base, d);
        }
    }
    result
}

/// `2^(64·n) mod product` for every sieve group: turns [`modexact`]'s result into the
/// remainder. Computed once per limb count `n` (the primes of one key size all have the same).
fn limb_powers(n: usize) -> Cow<'static, [u64]> {
    // Limb counts up to 64 (4096-bit primes) are cached; key generation never goes beyond.
    static CACHE: [OnceLock<Box<[u64]>>; 65] = [const { OnceLock::new() }; 65];
    let compute = || -> Box<[u64]> {
        sieve_groups()
            .iter()
            .map(|g| limb_power_mod(n, g.product))
            .collect()
    };
    match CACHE.get(n) {
        Some(cell) => Cow::Borrowed(cell.get_or_init(compute)),
        // Longer than any generated prime (only test keys get there): computed each time.
        None => Cow::Owned(compute().into_vec()),
    }
}

/// The sieve bound for primes of `bits` bits. Deeper sieving removes more candidates before the
/// expensive base-2 round (a survivor of all primes below L is prime with probability about
/// 1.78·ln L / ln(2^bits)), but costs one remainder per sieve prime and search; the bounds
/// balance the two at each size, as GMP's `mpz_nextprime` does.
fn search_sieve_limit(bits: u64) -> u32 {
    match bits {
        0..=511 => 1 << 16,
        512..=1279 => 1 << 19,
        // Longer candidates: each base-2 round costs more, so sieving deeper pays.
        _ => SEARCH_SIEVE_MAX,
    }
}

/// [`modexact`] of `x` for four moduli at once: the four carry chains are independent, so
/// interleaving them lets the multiplier work on one while another waits for its product.
fn modexact_4(x: &[u64], groups: &[SieveGroup; 4]) -> [u64; 4] {
    let mut c = [0u64; 4];
    for &limb in x {
        for (c, g) in c.iter_mut().zip(groups) {
            let (s, borrow) = limb.overflowing_sub(*c);
            let q = s.wrapping_mul(g.inverse);
            *c = ((u128::from(q) * u128::from(g.product)) >> 64) as u64 + u64::from(borrow);
        }
    }
    c
}

/// `⌊2⁶⁴ / p⌋` for each sieve prime: [`rem_small`]'s reciprocal, computed once.
fn reciprocals() -> &'static [u64] {
    static RECIPROCALS: OnceLock<Vec<u64>> = OnceLock::new();
    RECIPROCALS.get_or_init(|| {
        search_primes()
            .iter()
            .map(|&p| ((u128::from(u64::MAX) + 1) / u128::from(p)) as u64)
            .collect()
    })
}

/// `r mod p` for a sieve prime `p` (odd, > 1) with `reciprocal = ⌊2⁶⁴ / p⌋`, by Barrett
/// reduction: the estimate q = ⌊r·reciprocal / 2⁶⁴⌋ is ⌊r/p⌋ or one less, so one conditional
/// subtraction finishes (two multiplications instead of a division).
fn rem_small(r: u64, p: u64, reciprocal: u64) -> u64 {
    let q = ((u128::from(r) * u128::from(reciprocal)) >> 64) as u64;
    let rem = r - q * p;
    if rem >= p { rem - p } else { rem }
}

/// Marks in `composite` the window's numbers `start + 2i` (i < `composite.len()`) that a sieve
/// prime below `limit` divides. `start` is odd and above `limit`, so no prime marks itself.
/// `residues` is scratch space (one remainder per sieve group).
fn sieve_window(start: &BigUint, limit: u32, composite: &mut [bool], residues: &mut Vec<u64>) {
    composite.fill(false);
    let x: Vec<u64> = start.iter_u64_digits().collect();
    let primes = search_primes();
    let groups = sieve_groups();
    let used = groups.partition_point(|g| primes[g.first as usize] < limit);
    let groups = &groups[..used];
    debug_assert!(
        start.bits() > 32,
        "the sieve primes must be below the window"
    );
    let powers = limb_powers(x.len());
    let powers = &powers[..used];
    // start mod each group's product: start ≡ -c·2^(64·len) (mod product).
    residues.clear();
    let (quads, rest) = groups.as_chunks::<4>();
    let mut hensel: Vec<u64> = Vec::with_capacity(used);
    for quad in quads {
        hensel.extend(modexact_4(&x, quad));
    }
    hensel.extend(rest.iter().map(|g| modexact(&x, g.product, g.inverse)));
    residues.extend(
        groups
            .iter()
            .zip(powers)
            .zip(&hensel)
            .map(|((g, &power), &c)| (g.product - mul_mod_u64(c, power, g.product)) % g.product),
    );
    let reciprocals = reciprocals();
    for (g, &r) in groups.iter().zip(residues.iter()) {
        let range = g.first as usize..(g.first + g.len) as usize;
        for (&p, &reciprocal) in primes[range.clone()].iter().zip(&reciprocals[range]) {
            if p >= limit {
                break;
            }
            let p = u64::from(p);
            // First i with start + 2i ≡ 0 (mod p): 2i ≡ t = -start (mod p); t or t + p is even.
            let t = match rem_small(r, p, reciprocal) {
                0 => 0,
                rem => p - rem,
            };
            let mut i = (if t.is_multiple_of(2) { t } else { t + p } / 2) as usize;
            let p = p as usize;
            while i < composite.len() {
                composite[i] = true;
                i += p;
            }
        }
    }
}

/// A random prime of exactly `bits` bits whose two top bits are set, and how many candidates
/// got a (base-2) Miller–Rabin round, sieving by the primes below `limit`.
///
/// The search is incremental, as GMP's `mpz_nextprime` (python-paillier's) is: from a uniformly
/// random odd start with the top two bits set, the odd numbers after it are sieved a window at a
/// time and the survivors tested in order; the first that passes every round is returned. So
/// a prime's chance of being chosen is proportional to the gap below it rather than uniform.
/// That is the accepted trade for the speed of sieving: GMP's `mpz_nextprime` and OpenSSL's
/// prime generation search the same way, and Brandt and Damgård ("On generation of probable
/// primes by incremental search", CRYPTO '92) analyse it. If the search runs past `bits` bits
/// it starts over from a new random point.
fn random_prime_counted<R: CryptoRng + ?Sized>(
    bits: u64,
    limit: u32,
    rng: &mut R,
) -> (BigUint, u32) {
    assert!(bits >= 32, "primes this small are never generated");
    assert!(limit <= SEARCH_SIEVE_MAX);
    let rounds = miller_rabin_rounds(bits);
    let top_bits = (BigUint::one() << (bits - 1)) | (BigUint::one() << (bits - 2));
    let mut composite = vec![false; SIEVE_WINDOW];
    let mut residues = Vec::new();
    let mut tested = 0;
    'restart: loop {
        let mut start = rng.random_biguint(bits) | &top_bits | BigUint::one();
        loop {
            sieve_window(&start, limit, &mut composite, &mut residues);
            let mut survivors = composite
                .iter()
                .enumerate()
                .filter(|(_, c)| !**c)
                .map(|(i, _)| &start + BigUint::from(2 * i));
            // Survivors two at a time: the IFMA kernel runs two base-2 rounds in about the
            // time of one. The first (in order) that passes every round is still the one
            // returned, so the search is the same; only a second candidate's base-2 round
            // is spent in vain, once per prime.
            while let Some(first) = survivors.next() {
                if first.bits() != bits {
                    continue 'restart; // ran past the bit length: a new random start
                }
                let second = survivors.next().filter(|c| c.bits() == bits);
                let pair = second
                    .as_ref()
                    .and_then(|second| paillier_arith::base_2_round_pair([&first, second]));
                if let (Some([first_passes, second_passes]), Some(second)) = (pair, &second) {
                    tested += 2;
                    if first_passes && random_base_rounds(&first, rounds, rng) {
                        return (first, tested);
                    }
                    if second_passes && random_base_rounds(second, rounds, rng) {
                        return (second.clone(), tested);
                    }
                    continue;
                }
                for candidate in [Some(first), second].into_iter().flatten() {
                    tested += 1;
                    if is_probable_prime(&candidate, rounds, rng) {
                        return (candidate, tested);
                    }
                }
            }
            drop(survivors);
            start += BigUint::from(2 * SIEVE_WINDOW);
        }
    }
}

/// A random prime of exactly `bits` bits whose two top bits are set (so that the product of
/// two has exactly `2·bits` bits); see [`random_prime_counted`] for the search.
pub(crate) fn random_prime<R: CryptoRng + ?Sized>(bits: u64, rng: &mut R) -> BigUint {
    random_prime_counted(bits, search_sieve_limit(bits), rng).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt as _;

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

    /// Tuning aid (ignored by default): candidates tested and time per prime at each sieve
    /// bound. Run `cargo test --release -p paillier --lib search_statistics -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn search_statistics() {
        let mut rng = rand::rng();
        println!();
        for bits in [1024u64, 1536] {
            for shift in [16u32, 18, 19, 20] {
                let count = if bits > 1024 { 100 } else { 200 };
                let started = std::time::Instant::now();
                let mut tested = 0;
                for _ in 0..count {
                    tested += random_prime_counted(bits, 1 << shift, &mut rng).1;
                }
                let ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(count);
                let mut window = vec![false; SIEVE_WINDOW];
                let start =
                    rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
                let sieve = std::time::Instant::now();
                for _ in 0..20 {
                    sieve_window(&start, 1 << shift, &mut window, &mut Vec::new());
                }
                let sieve_us = sieve.elapsed().as_secs_f64() * 1e6 / 20.0;
                println!(
                    "{bits} bits, sieve 2^{shift}: {:.1} tested per prime, {ms:.1} ms per prime, sieve window {sieve_us:.0} µs",
                    f64::from(tested) / f64::from(count)
                );
            }
        }
    }

    #[test]
    fn search_prime_table_matches_trial_division() {
        let naive = |n: u32| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        let expected: Vec<u32> = (3..20_000).filter(|&n| naive(n)).collect();
        assert_eq!(&search_primes()[..expected.len()], &expected[..]);
        assert!(search_primes()[expected.len()] >= 20_000);
        assert_eq!(search_primes().len(), 82_024); // π(2^20) = 82,025, minus the prime 2
        assert_eq!(*search_primes().last().unwrap(), 1_048_573);
        // The groups cover every prime once, in order, with the right products and inverses.
        let mut next = 0;
        for g in sieve_groups() {
            assert_eq!(g.first, next);
            let group = &search_primes()[g.first as usize..(g.first + g.len) as usize];
            assert_eq!(
                group.iter().map(|&p| u64::from(p)).product::<u64>(),
                g.product
            );
            assert_eq!(g.product.wrapping_mul(g.inverse), 1);
            next += g.len;
        }
        assert_eq!(next as usize, search_primes().len());
    }

    #[test]
    fn small_remainders_match_division() {
        let mut rng = rand::rng();
        let reciprocals = reciprocals();
        for (k, (&p, &reciprocal)) in search_primes().iter().zip(reciprocals).enumerate() {
            // Every 97th prime, and the first and last few: the edges of the table.
            if k % 97 != 0 && k > 10 && k + 10 < reciprocals.len() {
                continue;
            }
            let p = u64::from(p);
            for r in [0, 1, p - 1, p, p + 1, u64::MAX, u64::MAX - 1, rng.random()] {
                assert_eq!(rem_small(r, p, reciprocal), r % p, "r={r} p={p}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn hensel_remainders_match_bigint(limbs in 1usize..40, seed in proptest::prelude::any::<u64>()) {
            let mut rng = rand::rng();
            let x: Vec<u64> = (0..limbs).map(|i| if i == 0 { seed } else { rng.random() }).collect();
            let big = x.iter().rev().fold(BigUint::ZERO, |acc, &l| (acc << 64u32) | BigUint::from(l));
            let groups = sieve_groups();
            let powers = limb_powers(limbs);
            let pick = [0, 1, 2, groups.len() / 2, groups.len() - 2, groups.len() - 1];
            for &k in &pick {
                let g = &groups[k];
                let c = modexact(&x, g.product, g.inverse);
                proptest::prop_assert!(c <= g.product);
                // x ≡ -c·2^(64·limbs) (mod product).
                let shifted = BigUint::from(c) << (64 * limbs);
                proptest::prop_assert_eq!(
                    (&big + shifted) % g.product,
                    BigUint::ZERO
                );
                proptest::prop_assert_eq!(
                    BigUint::from(powers[k]),
                    (BigUint::one() << (64 * limbs)) % g.product
                );
            }
            let quad = [&groups[0], &groups[7], &groups[groups.len() / 3], &groups[groups.len() - 1]];
            let four: [SieveGroup; 4] = quad.map(|g| *g);
            let c4 = modexact_4(&x, &four);
            for (g, c) in four.iter().zip(c4) {
                proptest::prop_assert_eq!(c, modexact(&x, g.product, g.inverse));
            }
        }
    }

    #[test]
    fn limb_powers_beyond_the_cache_are_right() {
        let groups = sieve_groups();
        for n in [64usize, 65, 70] {
            let powers = limb_powers(n);
            assert_eq!(powers.len(), groups.len());
            for k in [0, 1, groups.len() / 2, groups.len() - 1] {
                let expected = (BigUint::one() << (64 * n)) % groups[k].product;
                assert_eq!(BigUint::from(powers[k]), expected, "n={n} k={k}");
            }
        }
    }

    /// The window marks exactly the numbers with a factor below the bound: checked against
    /// remainders computed by num-bigint, prime by prime.
    #[test]
    fn sieve_window_matches_trial_division() {
        let mut rng = rand::rng();
        for (bits, limit) in [
            (40u64, 1u32 << 16),
            (130, 1 << 19),
            (1024, 1 << 20),
            (1536, 1 << 20),
        ] {
            let start = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
            let mut window = vec![false; SIEVE_WINDOW];
            sieve_window(&start, limit, &mut window, &mut Vec::new());
            // Checking the whole window against every prime is slow without optimisation:
            // the first 600 entries, and every 61st after.
            let check: Vec<usize> = (0..600).chain((600..SIEVE_WINDOW).step_by(61)).collect();
            let mut expected = vec![false; SIEVE_WINDOW];
            for &p in search_primes().iter().take_while(|&&p| p < limit) {
                let r = (&start % p).to_u32().unwrap_or(0);
                for &i in &check {
                    if (u64::from(r) + 2 * i as u64).is_multiple_of(u64::from(p)) {
                        expected[i] = true;
                    }
                }
            }
            for &i in &check {
                assert_eq!(window[i], expected[i], "bits={bits} i={i}");
            }
            // About 1.12/ln(limit) of the odd numbers survive (Mertens).
            let survivors = window.iter().filter(|c| !**c).count() as f64 / SIEVE_WINDOW as f64;
            let mertens = 1.1229 / f64::from(limit).ln();
            assert!(
                (survivors / mertens - 1.0).abs() < 0.15,
                "{survivors} vs {mertens}"
            );
        }
    }

    #[test]
    fn generation_sizes_have_exact_length() {
        let mut rng = rand::rng();
        for bits in [1024u64, 1536] {
            let (p, tested) = random_prime_counted(bits, search_sieve_limit(bits), &mut rng);
            assert_eq!(p.bits(), bits);
            assert!(p.bit(bits - 2));
            assert!(tested >= 1);
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
