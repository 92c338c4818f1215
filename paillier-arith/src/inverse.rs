//! Greatest common divisor and modular inverse by Lehmer's algorithm over u64 limbs.
//!
//! Each outer step takes the leading 127 bits of both numbers (same shift), runs Euclid on
//! those u128 approximations while a sufficient condition proves the quotients equal the true
//! ones, and applies the collected 2×2 cofactor matrix (entries < 2⁶²) to the full numbers in
//! one pass: about 62 bits of progress per pass over the limbs, against one quotient per pass
//! for plain Euclid. Only the cofactor of the value being inverted is tracked, as magnitudes
//! (the signs of Euclid's cofactors alternate, so their magnitudes only ever add).

use super::montgomery::big_of;
use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::Zero;

/// Cofactors stay below this bound so that `cofactor · limb` fits an i128 with room for carries.
const COFACTOR_LIMIT: u128 = 1 << 62;

/// Result of the inner loop: `steps` Euclid steps were proven correct; the new pair is
/// `((-1)^k (u0·A - v0·B), (-1)^(k+1) (u1·A - v1·B))`.
struct Step {
    steps: usize,
    u0: u64,
    v0: u64,
    u1: u64,
    v1: u64,
}

/// Euclid on the approximations `r0 >= r1` (leading bits of A and B with one common shift).
/// With `exact` the approximations are the numbers themselves and only the cofactor bound
/// stops the loop. Otherwise a step is accepted only if, writing A = 2^s·r0 + α and
/// B = 2^s·r1 + β with 0 <= α, β < 2^s, the true remainder stays in [0, previous remainder)
/// for every α, β: `r2 >= max(u2, v2)` and `r1 - r2 >= max(u1 + u2, v1 + v2)`.
#[inline]
fn inner(mut r0: u128, mut r1: u128, exact: bool) -> Step {
    let (mut u0, mut v0, mut u1, mut v1) = (1u128, 0u128, 0u128, 1u128);
    let mut steps = 0;
    while r1 != 0 {
        // Most quotients are 1 or 2: avoid the slow u128 division for them.
        let d = r0 - r1;
        let (q, r2) = if d < r1 {
            (1u128, d)
        } else if d - r1 < r1 {
            (2, d - r1)
        } else {
            (r0 / r1, r0 % r1)
        };
        if q >= COFACTOR_LIMIT {
            break;
        }
        let u2 = u0 + q * u1;
        let v2 = v0 + q * v1;
        if u2 >= COFACTOR_LIMIT || v2 >= COFACTOR_LIMIT {
            break;
        }
        if !exact && (r2 < u2.max(v2) || r1 - r2 < (u1 + u2).max(v1 + v2)) {
            break;
        }
        (r0, r1) = (r1, r2);
        (u0, v0, u1, v1) = (u1, v1, u2, v2);
        steps += 1;
    }
    Step {
        steps,
        u0: u0 as u64,
        v0: v0 as u64,
        u1: u1 as u64,
        v1: v1 as u64,
    }
}

fn trim(x: &mut Vec<u64>) {
    while x.last() == Some(&0) {
        x.pop();
    }
}

fn bit_len(x: &[u64]) -> usize {
    x.last()
        .map_or(0, |&t| 64 * x.len() - t.leading_zeros() as usize)
}

/// Bits `[s, s + 128)` of `x`.
fn bits_at(x: &[u64], s: usize) -> u128 {
    let (w, o) = (s / 64, s % 64);
    let get = |i: usize| x.get(i).copied().unwrap_or(0) as u128;
    let lo = get(w) | (get(w + 1) << 64);
    if o == 0 {
        lo
    } else {
        (lo >> o) | (get(w + 2) << (128 - o))
    }
}

/// `out = s·(ca·a - cb·b)` where the sign `s` (±1) makes it non-negative;
/// `a.len() >= b.len()`, `out.len() == a.len()`, coefficients < 2⁶². The products are
/// u64×u64 → u128 (one `mul` each); their difference plus the signed carry fits an i128.
fn lin_sub(out: &mut [u64], a: &[u64], ca: u64, b: &[u64], cb: u64, negate: bool) {
    let mut carry: i128 = 0;
    let (a_lo, a_hi) = a.split_at(b.len());
    let (o_lo, o_hi) = out.split_at_mut(b.len());
    for ((o, &x), &y) in o_lo.iter_mut().zip(a_lo).zip(b) {
        let p = ((x as u128) * (ca as u128)) as i128;
        let q = ((y as u128) * (cb as u128)) as i128;
        let t = if negate { q - p } else { p - q } + carry;
        *o = t as u64;
        carry = t >> 64;
    }
    for (o, &x) in o_hi.iter_mut().zip(a_hi) {
        let p = ((x as u128) * (ca as u128)) as i128;
        let t = if negate { -p } else { p } + carry;
        *o = t as u64;
        carry = t >> 64;
    }
    debug_assert_eq!(carry, 0);
}

/// `out = ca·a + cb·b` over `out.len()` limbs (`a`, `b` zero-extended; must fit).
fn lin_add(out: &mut [u64], a: &[u64], ca: u64, b: &[u64], cb: u64) {
    let mut carry: u128 = 0;
    let common = a.len().min(b.len());
    let (o_lo, o_hi) = out.split_at_mut(common);
    for ((o, &x), &y) in o_lo.iter_mut().zip(&a[..common]).zip(&b[..common]) {
        let t = (x as u128) * (ca as u128) + (y as u128) * (cb as u128) + carry;
        *o = t as u64;
        carry = t >> 64;
    }
    let (rest, c) = if a.len() > common {
        (&a[common..], ca)
    } else {
        (&b[common..], cb)
    };
    for (j, o) in o_hi.iter_mut().enumerate() {
        let x = rest.get(j).copied().unwrap_or(0) as u128;
        let t = x * c as u128 + carry;
        *o = t as u64;
        carry = t >> 64;
    }
    debug_assert_eq!(carry, 0);
}

/// Cofactor state for the inverse: `A ≡ σ·sa·x` and `B ≡ -σ·sb·x (mod m)`.
struct Cofactors {
    sa: Vec<u64>,
    sb: Vec<u64>,
    positive: bool,
    tmp_a: Vec<u64>,
    tmp_b: Vec<u64>,
}

/// Lehmer's gcd of `a >= b` (trimmed limbs). With `cof`, also updates the cofactors.
fn lehmer(mut a: Vec<u64>, mut b: Vec<u64>, mut cof: Option<&mut Cofactors>) -> Vec<u64> {
    let mut na = vec![0u64; a.len()];
    let mut nb = vec![0u64; a.len()];
    loop {
        trim(&mut a);
        trim(&mut b);
        if b.is_empty() {
            return a;
        }
        let bits = bit_len(&a);
        let step = if bits <= 127 {
            inner(bits_at(&a, 0), bits_at(&b, 0), true)
        } else {
            let s = bits - 127;
            inner(bits_at(&a, s), bits_at(&b, s), false)
        };
        if step.steps == 0 {
            // The leading bits cannot decide (a huge quotient): one full division step.
            let (q, r) = big_of(&a).div_rem(&big_of(&b));
            core::mem::swap(&mut a, &mut b);
            b.clear();
            b.extend(r.iter_u64_digits());
            if let Some(c) = cof.as_deref_mut() {
                // sa' = sb, sb' = sa + q·sb, sign flips.
                let nsb = big_of(&c.sa) + q * big_of(&c.sb);
                core::mem::swap(&mut c.sa, &mut c.sb);
                c.sb.clear();
                c.sb.extend(nsb.iter_u64_digits());
                c.positive = !c.positive;
            }
            continue;
        }
        let odd = step.steps % 2 == 1;
        let n = a.len();
        na.resize(n, 0);
        nb.resize(n, 0);
        lin_sub(&mut na, &a, step.u0, &b, step.v0, odd);
        lin_sub(&mut nb, &a, step.u1, &b, step.v1, !odd);
        core::mem::swap(&mut a, &mut na);
        core::mem::swap(&mut b, &mut nb);
        if let Some(c) = cof.as_deref_mut() {
            let len = c.sa.len().max(c.sb.len()) + 1;
            c.tmp_a.resize(len, 0);
            c.tmp_b.resize(len, 0);
            lin_add(&mut c.tmp_a, &c.sa, step.u0, &c.sb, step.v0);
            lin_add(&mut c.tmp_b, &c.sa, step.u1, &c.sb, step.v1);
            core::mem::swap(&mut c.sa, &mut c.tmp_a);
            core::mem::swap(&mut c.sb, &mut c.tmp_b);
            trim(&mut c.sa);
            trim(&mut c.sb);
            if odd {
                c.positive = !c.positive;
            }
        }
    }
}

/// Greatest common divisor (`gcd(0, 0) = 0`).
pub fn gcd(a: &BigUint, b: &BigUint) -> BigUint {
    let (a, b) = if a >= b { (a, b) } else { (b, a) };
    if b.is_zero() {
        return a.clone();
    }
    // Reduce a very unequal pair with one division first (the Lehmer loop would do the same).
    let (a, b) = if a.bits() > b.bits() + 64 {
        (b.clone(), a % b)
    } else {
        (a.clone(), b.clone())
    };
    big_of(&lehmer(a.to_u64_digits(), b.to_u64_digits(), None))
}

/// The inverse of `a` modulo `m`, or `None` when gcd(a, m) != 1 (and for m <= 1).
pub fn mod_inverse(a: &BigUint, m: &BigUint) -> Option<BigUint> {
    if m <= &BigUint::from(1u8) {
        return None;
    }
    let x = if a >= m { a % m } else { a.clone() };
    if x.is_zero() {
        return None;
    }
    // A = m ≡ 0 = σ·0·x; B = x ≡ -σ·1·x with σ = -1.
    let mut cof = Cofactors {
        sa: Vec::new(),
        sb: vec![1],
        positive: false,
        tmp_a: Vec::new(),
        tmp_b: Vec::new(),
    };
    let g = lehmer(m.to_u64_digits(), x.to_u64_digits(), Some(&mut cof));
    if g != [1] {
        return None;
    }
    // 1 ≡ σ·sa·x.
    let s = big_of(&cof.sa) % m;
    Some(if cof.positive || s.is_zero() {
        s
    } else {
        m - s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::{BigInt, BigRng010};
    use num_traits::One;
    use proptest::prelude::*;

    fn reference_inverse(a: &BigUint, m: &BigUint) -> Option<BigUint> {
        let e = BigInt::from(a.clone()).extended_gcd(&BigInt::from(m.clone()));
        if !e.gcd.is_one() || m <= &BigUint::one() {
            return None;
        }
        let mm = BigInt::from(m.clone());
        let x = ((e.x % &mm) + &mm) % &mm;
        x.to_biguint()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn gcd_and_inverse_match_reference(
            abits in 1u64..=16640,
            bbits in 1u64..=16640,
            common in 0u64..200,
        ) {
            let mut rng = rand::rng();
            let g = rng.random_biguint(common) | BigUint::one();
            let a = rng.random_biguint(abits) * &g;
            let b = rng.random_biguint(bbits) * &g;
            prop_assert_eq!(gcd(&a, &b), a.gcd(&b));
            let m = &b | BigUint::one();
            let inv = mod_inverse(&a, &m);
            prop_assert_eq!(&inv, &reference_inverse(&(&a % &m), &m));
            if let Some(i) = inv {
                prop_assert!(i < m);
                prop_assert!((&a * &i % &m).is_one());
            }
        }
    }

    #[test]
    fn edge_cases() {
        let n = |v: u64| BigUint::from(v);
        assert_eq!(gcd(&n(0), &n(0)), n(0));
        assert_eq!(gcd(&n(0), &n(5)), n(5));
        assert_eq!(gcd(&n(12), &n(18)), n(6));
        assert_eq!(mod_inverse(&n(3), &n(7)), Some(n(5)));
        assert_eq!(mod_inverse(&n(10), &n(7)), Some(n(5)));
        assert_eq!(mod_inverse(&n(0), &n(7)), None);
        assert_eq!(mod_inverse(&n(7), &n(7)), None);
        assert_eq!(mod_inverse(&n(6), &n(9)), None);
        assert_eq!(mod_inverse(&n(1), &n(1)), None);
        assert_eq!(mod_inverse(&n(1), &n(0)), None);
        assert_eq!(mod_inverse(&n(1), &n(2)), Some(n(1)));
        assert_eq!(mod_inverse(&n(5), &n(8)), Some(n(5)));
        // m - 1 is its own inverse; huge quotients (1 against a 4096-bit m).
        let mut rng = rand::rng();
        let m = rng.random_biguint(4096) | BigUint::one();
        assert_eq!(mod_inverse(&(&m - 1u32), &m), Some(&m - 1u32));
        assert_eq!(mod_inverse(&n(1), &m), Some(n(1)));
        assert_eq!(mod_inverse(&n(2), &m), Some((&m + 1u32) >> 1u8));
        let big = BigUint::one() << 4000u32;
        assert_eq!(
            gcd(&big, &(BigUint::one() << 3000u32)),
            BigUint::one() << 3000u32
        );
        // Fibonacci neighbours: all quotients 1, the longest Euclid run.
        let (mut f0, mut f1) = (BigUint::one(), BigUint::one());
        for _ in 0..6000 {
            let f2 = &f0 + &f1;
            f0 = f1;
            f1 = f2;
        }
        assert!(gcd(&f0, &f1).is_one());
        let i = mod_inverse(&f0, &f1).unwrap();
        assert!((&f0 * &i % &f1).is_one());
    }
}
