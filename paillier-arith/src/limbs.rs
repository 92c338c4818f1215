//! Little-endian `u64` limb primitives shared by the Montgomery kernel and the gcd.
//!
//! Slices are little-endian (limb 0 least significant). Functions document the lengths
//! they expect; they index with `debug_assert`-checked lengths and let the compiler's bounds
//! checks guard the rest. The row kernels `addmul_1` / `mul_1` run the assembly of
//! `super::adx` when the CPU has BMI2 and ADX, and their portable versions otherwise.

#[cfg(target_arch = "x86_64")]
use super::adx::Adx;
/// Elsewhere there is no assembly kernel: a token type with no values.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
pub(crate) enum Adx {}

/// From this many limbs on, products and reductions scan columns (product scanning, one
/// three-limb accumulator, no stores of partial rows) instead of rows (operand scanning,
/// whose carry chain through each row limits it to about three cycles a limb product).
/// Rows win below it: the columns are too short to amortise their setup.
pub(crate) const COMBA_THRESHOLD: usize = 24;
/// Below this many limbs products use a schoolbook basecase, at or above it Karatsuba.
pub(crate) const KARATSUBA_MUL_THRESHOLD: usize = 40;
/// Same for squaring (the squaring basecase is cheaper, so its crossover is higher).
pub(crate) const KARATSUBA_SQR_THRESHOLD: usize = 64;
/// The Karatsuba crossovers when the assembly row kernel runs (schoolbook rows of `addmul_1`
/// at every size below them, no column products). Measured at 32–96 limbs: crossovers from 24
/// to 100 limbs change products and squares by less than this shared machine's noise (the
/// Montgomery reduction, n² limb products in rows, dominates), so the portable values stay.
pub(crate) const KARATSUBA_MUL_THRESHOLD_ADX: usize = 40;
/// Same for squaring with the assembly kernel.
pub(crate) const KARATSUBA_SQR_THRESHOLD_ADX: usize = 64;

/// Whether the x86-64 `mulx`/`adcx`/`adox` row kernels run on this CPU (checked once).
#[inline(always)]
pub(crate) fn adx() -> Option<Adx> {
    #[cfg(target_arch = "x86_64")]
    {
        Adx::detect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// `r += a * b` over `a.len()` limbs of `r`; returns the carry limb.
#[inline]
pub(crate) fn addmul_1(r: &mut [u64], a: &[u64], b: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = adx() {
        return k.addmul_1(r, a, b);
    }
    addmul_1_portable(r, a, b)
}

/// `r = a * b` over `a.len()` limbs of `r`; returns the carry limb.
#[inline]
pub(crate) fn mul_1(r: &mut [u64], a: &[u64], b: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = adx() {
        r[..a.len()].fill(0);
        return k.addmul_1(r, a, b);
    }
    mul_1_portable(r, a, b)
}

/// Portable `addmul_1` (the fallback, and the reference for the assembly kernel's tests).
#[inline]
pub(crate) fn addmul_1_portable(r: &mut [u64], a: &[u64], b: u64) -> u64 {
    debug_assert!(r.len() >= a.len());
    let r = &mut r[..a.len()];
    let mut carry = 0u64;
    for (ri, &ai) in r.iter_mut().zip(a) {
        let t = (ai as u128) * (b as u128) + (*ri as u128) + (carry as u128);
        *ri = t as u64;
        carry = (t >> 64) as u64;
    }
    carry
}

/// Portable `mul_1`.
#[inline]
pub(crate) fn mul_1_portable(r: &mut [u64], a: &[u64], b: u64) -> u64 {
    debug_assert!(r.len() >= a.len());
    let r = &mut r[..a.len()];
    let mut carry = 0u64;
    for (ri, &ai) in r.iter_mut().zip(a) {
        let t = (ai as u128) * (b as u128) + (carry as u128);
        *ri = t as u64;
        carry = (t >> 64) as u64;
    }
    carry
}

/// `r -= a * b` over `a.len()` limbs of `r`; returns the borrow limb.
#[inline]
pub(crate) fn submul_1(r: &mut [u64], a: &[u64], b: u64) -> u64 {
    debug_assert!(r.len() >= a.len());
    let r = &mut r[..a.len()];
    let mut carry = 0u64;
    for (ri, &ai) in r.iter_mut().zip(a) {
        let t = (ai as u128) * (b as u128) + (carry as u128);
        let (d, borrow) = ri.overflowing_sub(t as u64);
        *ri = d;
        carry = ((t >> 64) as u64) + borrow as u64;
    }
    carry
}

/// Remainder of `u` (any length) modulo the normalised divisor `d` (top bit set, at least two
/// limbs), Knuth's algorithm D: each quotient limb is estimated from the top two limbs of the
/// remainder and the top limb of `d`, corrected with the second limb (then at most one
/// too big), and subtracted in one row. `u` must have a spare zero top limb; the remainder is
/// left in `u[..d.len()]`.
pub(crate) fn rem_normalized(u: &mut [u64], d: &[u64]) {
    let n = d.len();
    debug_assert!(n >= 2 && d[n - 1] >> 63 == 1 && u.len() > n);
    let (d1, d0) = (d[n - 1], d[n - 2]);
    for j in (0..u.len() - n).rev() {
        let (u2, u1, u0) = (u[j + n], u[j + n - 1], u[j + n - 2]);
        let qhat = if u2 >= d1 {
            u64::MAX
        } else {
            let num = ((u2 as u128) << 64) | u1 as u128;
            let mut q = (num / d1 as u128) as u64;
            let mut rhat = (num - q as u128 * d1 as u128) as u64;
            // Knuth's test: while q·d0 > rhat·2⁶⁴ + u0, q is too big.
            while (q as u128) * (d0 as u128) > (((rhat as u128) << 64) | u0 as u128) {
                q -= 1;
                let (r2, o) = rhat.overflowing_add(d1);
                rhat = r2;
                if o {
                    break;
                }
            }
            q
        };
        if qhat == 0 {
            continue;
        }
        let borrow = submul_1(&mut u[j..j + n], d, qhat);
        let (top, neg) = u[j + n].overflowing_sub(borrow);
        u[j + n] = top;
        if neg {
            // qhat was one too big: add d back (the carry cancels the borrow). Only the
            // remainder is kept, so the corrected quotient limb is not needed.
            let c = add_assign_n(&mut u[j..j + n], d);
            u[j + n] = u[j + n].wrapping_add(c);
        }
        debug_assert_eq!(u[j + n], 0);
    }
}

/// `r = a + b` (equal lengths); returns the carry bit.
#[inline]
pub(crate) fn add_n(r: &mut [u64], a: &[u64], b: &[u64]) -> u64 {
    debug_assert!(r.len() == a.len() && a.len() == b.len());
    let mut carry = false;
    for ((ri, &ai), &bi) in r.iter_mut().zip(a).zip(b) {
        let (s, c1) = ai.overflowing_add(bi);
        let (s, c2) = s.overflowing_add(carry as u64);
        *ri = s;
        carry = c1 | c2;
    }
    carry as u64
}

/// `r += a` (equal lengths); returns the carry bit.
#[inline]
pub(crate) fn add_assign_n(r: &mut [u64], a: &[u64]) -> u64 {
    debug_assert!(r.len() == a.len());
    let mut carry = false;
    for (ri, &ai) in r.iter_mut().zip(a) {
        let (s, c1) = ri.overflowing_add(ai);
        let (s, c2) = s.overflowing_add(carry as u64);
        *ri = s;
        carry = c1 | c2;
    }
    carry as u64
}

/// `r += r` (a one-bit left shift); returns the bit shifted out.
#[inline]
pub(crate) fn shl1_n(r: &mut [u64]) -> u64 {
    let mut carry = 0u64;
    for ri in r.iter_mut() {
        let out = *ri >> 63;
        *ri = (*ri << 1) | carry;
        carry = out;
    }
    carry
}

/// `r -= a` (equal lengths); returns the borrow bit.
#[inline]
pub(crate) fn sub_assign_n(r: &mut [u64], a: &[u64]) -> u64 {
    debug_assert!(r.len() == a.len());
    let mut borrow = false;
    for (ri, &ai) in r.iter_mut().zip(a) {
        let (s, b1) = ri.overflowing_sub(ai);
        let (s, b2) = s.overflowing_sub(borrow as u64);
        *ri = s;
        borrow = b1 | b2;
    }
    borrow as u64
}

/// `r = a - b` (equal lengths); returns the borrow bit.
#[inline]
pub(crate) fn sub_n(r: &mut [u64], a: &[u64], b: &[u64]) -> u64 {
    debug_assert!(r.len() == a.len() && a.len() == b.len());
    let mut borrow = false;
    for ((ri, &ai), &bi) in r.iter_mut().zip(a).zip(b) {
        let (s, b1) = ai.overflowing_sub(bi);
        let (s, b2) = s.overflowing_sub(borrow as u64);
        *ri = s;
        borrow = b1 | b2;
    }
    borrow as u64
}

/// Adds the single limb `c` into `r`, propagating the carry; returns the carry out.
#[inline]
pub(crate) fn add_1(r: &mut [u64], mut c: u64) -> u64 {
    for ri in r.iter_mut() {
        if c == 0 {
            return 0;
        }
        let (s, o) = ri.overflowing_add(c);
        *ri = s;
        c = o as u64;
    }
    c
}

/// Subtracts the single limb `c` from `r`, propagating the borrow; returns the borrow out.
#[inline]
pub(crate) fn sub_1(r: &mut [u64], mut c: u64) -> u64 {
    for ri in r.iter_mut() {
        if c == 0 {
            return 0;
        }
        let (s, o) = ri.overflowing_sub(c);
        *ri = s;
        c = o as u64;
    }
    c
}

/// Compares equal-length numbers.
#[inline]
pub(crate) fn cmp_n(a: &[u64], b: &[u64]) -> core::cmp::Ordering {
    debug_assert!(a.len() == b.len());
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x.cmp(y);
        }
    }
    core::cmp::Ordering::Equal
}

/// Schoolbook product: `r[..a.len() + b.len()] = a * b`, `b` non-empty.
pub(crate) fn mul_basecase(r: &mut [u64], a: &[u64], b: &[u64]) {
    let an = a.len();
    debug_assert!(r.len() >= an + b.len() && !b.is_empty());
    r[an] = mul_1(&mut r[..an], a, b[0]);
    for (i, &bi) in b.iter().enumerate().skip(1) {
        r[an + i] = addmul_1(&mut r[i..i + an], a, bi);
    }
}

/// Schoolbook square: `r[..2n] = a * a`. Each cross product is computed once, the sum is
/// doubled by a shift and the diagonal squares added: about n²/2 limb products instead of n².
pub(crate) fn sqr_basecase(r: &mut [u64], a: &[u64]) {
    let n = a.len();
    debug_assert!(r.len() >= 2 * n);
    let r = &mut r[..2 * n];
    if n == 1 {
        let t = (a[0] as u128) * (a[0] as u128);
        r[0] = t as u64;
        r[1] = (t >> 64) as u64;
        return;
    }
    // Cross products a[i]*a[j], i < j, at position i + j.
    r[0] = 0;
    r[n] = mul_1(&mut r[1..n], &a[1..], a[0]);
    for i in 1..n - 1 {
        r[n + i] = addmul_1(&mut r[2 * i + 1..n + i], &a[i + 1..], a[i]);
    }
    r[2 * n - 1] = 0;
    // Double and add the diagonal in one pass.
    let mut shift_in = 0u64;
    let mut carry = false;
    for i in 0..n {
        let lo = r[2 * i];
        let hi = r[2 * i + 1];
        let d_lo = (lo << 1) | shift_in;
        let d_hi = (hi << 1) | (lo >> 63);
        shift_in = hi >> 63;
        let sq = (a[i] as u128) * (a[i] as u128);
        let (s0, c0) = d_lo.overflowing_add(sq as u64);
        let (s0, c1) = s0.overflowing_add(carry as u64);
        let (s1, c2) = d_hi.overflowing_add((sq >> 64) as u64);
        let (s1, c3) = s1.overflowing_add((c0 | c1) as u64);
        r[2 * i] = s0;
        r[2 * i + 1] = s1;
        carry = c2 | c3;
    }
    debug_assert!(!carry && shift_in == 0);
}

/// Scratch limbs `mul_n` / `sqr_n` need for operands of `n` limbs.
pub(crate) fn mul_scratch_len(n: usize) -> usize {
    // Each Karatsuba level needs 2*(h+1) limbs for the differences' product plus its own
    // operands; 4n + 64 bounds the sum over all levels.
    4 * n + 64
}

/// `r[..2n] = a * b` for equal lengths n, Karatsuba above the threshold.
pub(crate) fn mul_n(r: &mut [u64], a: &[u64], b: &[u64], scratch: &mut [u64]) {
    let n = a.len();
    debug_assert!(b.len() == n);
    if adx().is_some() {
        if n < KARATSUBA_MUL_THRESHOLD_ADX {
            mul_basecase(r, a, b);
        } else {
            karatsuba_mul(r, a, b, scratch);
        }
    } else if n < COMBA_THRESHOLD {
        mul_basecase(r, a, b);
    } else if n < KARATSUBA_MUL_THRESHOLD {
        mul_comba(r, a, b);
    } else {
        karatsuba_mul(r, a, b, scratch);
    }
}

/// `r[..2n] = a²`, Karatsuba above the threshold.
pub(crate) fn sqr_n(r: &mut [u64], a: &[u64], scratch: &mut [u64]) {
    if adx().is_some() {
        if a.len() < KARATSUBA_SQR_THRESHOLD_ADX {
            sqr_basecase(r, a);
        } else {
            karatsuba_sqr(r, a, scratch);
        }
    } else if a.len() < COMBA_THRESHOLD {
        sqr_basecase(r, a);
    } else if a.len() < KARATSUBA_SQR_THRESHOLD {
        sqr_comba(r, a);
    } else {
        karatsuba_sqr(r, a, scratch);
    }
}

/// `|x - y|` of a split: writes the difference of the low part `x` (len h) and the high part
/// `y` (len l <= h) into `d` (len h); returns true when it was negative (y > x).
fn abs_diff(d: &mut [u64], x: &[u64], y: &[u64]) -> bool {
    let h = x.len();
    let l = y.len();
    // Compare x with y zero-extended.
    let y_bigger = if x[l..].iter().any(|&v| v != 0) {
        false
    } else {
        cmp_n(&x[..l], y) == core::cmp::Ordering::Less
    };
    if y_bigger {
        sub_n(&mut d[..l], y, &x[..l]);
        d[l..h].fill(0);
        true
    } else {
        let b = sub_n(&mut d[..l], &x[..l], y);
        d[l..h].copy_from_slice(&x[l..]);
        sub_1(&mut d[l..h], b);
        false
    }
}

/// Karatsuba product of two n-limb numbers (n >= 2), subtractive form:
/// a*b = z0 + (z0 + z2 - (a0-a1)(b0-b1)) B^h + z2 B^2h.
fn karatsuba_mul(r: &mut [u64], a: &[u64], b: &[u64], scratch: &mut [u64]) {
    let n = a.len();
    let h = n.div_ceil(2);
    let l = n - h;
    let (a0, a1) = a.split_at(h);
    let (b0, b1) = b.split_at(h);
    let (da, rest) = scratch.split_at_mut(h);
    let (db, rest) = rest.split_at_mut(h);
    let (mid, rest) = rest.split_at_mut(2 * h);
    let neg_a = abs_diff(da, a0, a1);
    let neg_b = abs_diff(db, b0, b1);
    mul_n(mid, da, db, rest);
    {
        let (lo, hi) = r.split_at_mut(2 * h);
        mul_n(lo, a0, b0, rest);
        mul_n(&mut hi[..2 * l], a1, b1, rest);
    }
    // t = z0 + z2 (2h + 1 limbs), then +/- mid, then add at offset h.
    let t = &mut rest[..2 * h + 1];
    t[..2 * h].copy_from_slice(&r[..2 * h]);
    t[2 * h] = 0;
    {
        let z2 = &r[2 * h..2 * n];
        let c = add_assign_n(&mut t[..2 * l], z2);
        add_1(&mut t[2 * l..], c);
    }
    if neg_a != neg_b {
        // (a0-a1)(b0-b1) is negative: the middle term is t + mid.
        let c = add_assign_n(&mut t[..2 * h], mid);
        t[2 * h] += c;
    } else {
        let b = sub_assign_n(&mut t[..2 * h], mid);
        t[2 * h] -= b;
    }
    let len = (2 * h + 1).min(2 * n - h);
    let c = add_assign_n(&mut r[h..h + len], &t[..len]);
    debug_assert!(t[len..].iter().all(|&v| v == 0));
    add_1(&mut r[h + len..2 * n], c);
}

/// Karatsuba square: a² = z0 + (z0 + z2 - (a0-a1)²) B^h + z2 B^2h.
fn karatsuba_sqr(r: &mut [u64], a: &[u64], scratch: &mut [u64]) {
    let n = a.len();
    let h = n.div_ceil(2);
    let l = n - h;
    let (a0, a1) = a.split_at(h);
    let (da, rest) = scratch.split_at_mut(h);
    let (mid, rest) = rest.split_at_mut(2 * h);
    abs_diff(da, a0, a1);
    sqr_n(mid, da, rest);
    {
        let (lo, hi) = r.split_at_mut(2 * h);
        sqr_n(lo, a0, rest);
        sqr_n(&mut hi[..2 * l], a1, rest);
    }
    let (t, _) = rest.split_at_mut(2 * h + 1);
    t[..2 * h].copy_from_slice(&r[..2 * h]);
    t[2 * h] = 0;
    {
        let z2 = &r[2 * h..2 * n];
        let c = add_assign_n(&mut t[..2 * l], z2);
        add_1(&mut t[2 * l..], c);
    }
    let b = sub_assign_n(&mut t[..2 * h], mid);
    t[2 * h] -= b;
    let len = (2 * h + 1).min(2 * n - h);
    let c = add_assign_n(&mut r[h..h + len], &t[..len]);
    debug_assert!(t[len..].iter().all(|&v| v == 0));
    add_1(&mut r[h + len..2 * n], c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use proptest::prelude::*;

    fn big(x: &[u64]) -> BigUint {
        let mut v = Vec::with_capacity(2 * x.len());
        for &d in x {
            v.push(d as u32);
            v.push((d >> 32) as u32);
        }
        BigUint::new(v)
    }

    fn limbs_strategy(max: usize) -> impl Strategy<Value = Vec<u64>> {
        (1..=max).prop_flat_map(|n| {
            prop::collection::vec(
                prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), any::<u64>()],
                n,
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn mul_and_sqr_match_num_bigint(a in limbs_strategy(200), seed in any::<u64>()) {
            let n = a.len();
            let b: Vec<u64> = (0..n as u64)
                .map(|i| seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(i as u32) ^ i)
                .collect();
            let mut r = vec![0u64; 2 * n];
            let mut s = vec![0u64; mul_scratch_len(n)];
            mul_n(&mut r, &a, &b, &mut s);
            prop_assert_eq!(big(&r), big(&a) * big(&b));
            sqr_n(&mut r, &a, &mut s);
            prop_assert_eq!(big(&r), big(&a) * big(&a));
            mul_comba(&mut r, &a, &b);
            prop_assert_eq!(big(&r), big(&a) * big(&b));
            sqr_comba(&mut r, &a);
            prop_assert_eq!(big(&r), big(&a) * big(&a));
            mul_basecase(&mut r, &a, &b);
            prop_assert_eq!(big(&r), big(&a) * big(&b));
            sqr_basecase(&mut r, &a);
            prop_assert_eq!(big(&r), big(&a) * big(&a));
            if n >= 2 {
                karatsuba_mul(&mut r, &a, &b, &mut s);
                prop_assert_eq!(big(&r), big(&a) * big(&b));
                karatsuba_sqr(&mut r, &a, &mut s);
                prop_assert_eq!(big(&r), big(&a) * big(&a));
            }
        }
    }

    /// Limb vectors whose values favour carry-heavy cases: all-ones, zero, top-bit-only.
    fn edgy_limbs(max: usize) -> impl Strategy<Value = Vec<u64>> {
        (0..=max).prop_flat_map(|n| {
            prop::collection::vec(
                prop_oneof![
                    Just(0u64),
                    Just(u64::MAX),
                    Just(1u64 << 63),
                    Just(u64::MAX - 1),
                    any::<u64>()
                ],
                n,
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The assembly row kernel (when this CPU has it) agrees with the portable one.
        #[test]
        fn row_kernels_agree(a in edgy_limbs(70), r0 in edgy_limbs(75), b in prop_oneof![Just(u64::MAX), Just(0u64), Just(1u64), any::<u64>()]) {
            let mut r0 = r0;
            r0.resize(r0.len().max(a.len()), u64::MAX);
            let mut r1 = r0.clone();
            let mut r2 = r0.clone();
            let c1 = addmul_1(&mut r1, &a, b);
            let c2 = addmul_1_portable(&mut r2, &a, b);
            prop_assert_eq!(&r1, &r2);
            prop_assert_eq!(c1, c2);
            let c1 = mul_1(&mut r1, &a, b);
            let c2 = mul_1_portable(&mut r2, &a, b);
            prop_assert_eq!(&r1, &r2);
            prop_assert_eq!(c1, c2);
            // The limbs past a.len() are untouched.
            prop_assert_eq!(&r1[a.len()..], &r0[a.len()..]);
        }
    }

    #[test]
    fn row_kernels_all_ones() {
        for n in 0..40 {
            let a = vec![u64::MAX; n];
            for b in [0, 1, u64::MAX] {
                let mut r1 = vec![u64::MAX; n + 1];
                let mut r2 = r1.clone();
                assert_eq!(addmul_1(&mut r1, &a, b), addmul_1_portable(&mut r2, &a, b));
                assert_eq!(r1, r2);
            }
        }
    }

    /// The whole product chain on the portable path (this thread only), against num-bigint.
    #[test]
    fn portable_path_products() {
        #[cfg(target_arch = "x86_64")]
        crate::adx::FORCE_PORTABLE.with(|f| f.set(true));
        assert!(adx().is_none());
        let mut seed = 0x1234_5678_9abc_def1u64;
        for n in (1..200).step_by(7).chain([24, 40, 64, 96, 128]) {
            let mut next = || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                seed
            };
            let a: Vec<u64> = (0..n).map(|_| next()).collect();
            let b: Vec<u64> = (0..n).map(|_| next()).collect();
            let mut r = vec![0u64; 2 * n];
            let mut s = vec![0u64; mul_scratch_len(n)];
            mul_n(&mut r, &a, &b, &mut s);
            assert_eq!(big(&r), big(&a) * big(&b));
            sqr_n(&mut r, &a, &mut s);
            assert_eq!(big(&r), big(&a) * big(&a));
        }
    }

    #[test]
    fn all_ones_products() {
        for n in [1usize, 2, 3, 47, 48, 49, 64, 65, 97, 130, 256] {
            let a = vec![u64::MAX; n];
            let mut r = vec![0u64; 2 * n];
            let mut s = vec![0u64; mul_scratch_len(n)];
            mul_n(&mut r, &a, &a, &mut s);
            assert_eq!(big(&r), big(&a) * big(&a));
            sqr_n(&mut r, &a, &mut s);
            assert_eq!(big(&r), big(&a) * big(&a));
            sqr_comba(&mut r, &a);
            assert_eq!(big(&r), big(&a) * big(&a));
            mul_comba(&mut r, &a, &a);
            assert_eq!(big(&r), big(&a) * big(&a));
        }
    }
}

/// `*out = a + b + carry`, returning the carry out. On x86-64 through the `adc` intrinsic
/// (safe, baseline instruction set): written portably, LLVM recomputes carries with compares
/// and SIMD shuffles inside the product loops, which costs about a third of their speed.
#[inline(always)]
fn adc(carry: u8, a: u64, b: u64, out: &mut u64) -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        core::arch::x86_64::_addcarry_u64(carry, a, b, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let t = a as u128 + b as u128 + carry as u128;
        *out = t as u64;
        (t >> 64) as u8
    }
}

/// Three-limb column accumulator for product scanning (`w0 + w1·2⁶⁴ + w2·2¹²⁸`).
#[derive(Clone, Copy)]
pub(crate) struct Acc {
    pub(crate) w0: u64,
    pub(crate) w1: u64,
    pub(crate) w2: u64,
}

impl Acc {
    #[inline(always)]
    pub(crate) fn new() -> Acc {
        Acc {
            w0: 0,
            w1: 0,
            w2: 0,
        }
    }
    #[inline(always)]
    pub(crate) fn add(&mut self, x: u128) {
        let c = adc(0, self.w0, x as u64, &mut self.w0);
        let c = adc(c, self.w1, (x >> 64) as u64, &mut self.w1);
        adc(c, self.w2, 0, &mut self.w2);
    }
    #[inline(always)]
    pub(crate) fn mac(&mut self, a: u64, b: u64) {
        self.add((a as u128) * (b as u128));
    }
    #[inline(always)]
    pub(crate) fn add_acc(&mut self, o: &Acc) {
        let c = adc(0, self.w0, o.w0, &mut self.w0);
        let c = adc(c, self.w1, o.w1, &mut self.w1);
        adc(c, self.w2, o.w2, &mut self.w2);
    }
    #[inline(always)]
    pub(crate) fn double(&mut self) {
        self.w2 = (self.w2 << 1) | (self.w1 >> 63);
        self.w1 = (self.w1 << 1) | (self.w0 >> 63);
        self.w0 <<= 1;
    }
    /// Returns the low limb and shifts the accumulator down by one limb.
    #[inline(always)]
    pub(crate) fn shift(&mut self) -> u64 {
        let out = self.w0;
        self.w0 = self.w1;
        self.w1 = self.w2;
        self.w2 = 0;
        out
    }
}

/// `acc += Σ xs[t]·ys[len-1-t]` (one column of a product), unrolled by four.
#[inline(always)]
pub(crate) fn dot_rev(acc: &mut Acc, xs: &[u64], ys: &[u64]) {
    debug_assert_eq!(xs.len(), ys.len());
    let xc = xs.chunks_exact(4);
    let yc = ys.rchunks_exact(4);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (x, y) in xc.zip(yc) {
        acc.mac(x[0], y[3]);
        acc.mac(x[1], y[2]);
        acc.mac(x[2], y[1]);
        acc.mac(x[3], y[0]);
    }
    for (&x, &y) in xr.iter().zip(yr.iter().rev()) {
        acc.mac(x, y);
    }
}

/// Product-scanning square: column by column, cross products summed once and doubled.
pub(crate) fn sqr_comba(r: &mut [u64], a: &[u64]) {
    let n = a.len();
    let r = &mut r[..2 * n];
    let mut carry = Acc::new();
    for k in 0..2 * n - 1 {
        let lo = k.saturating_sub(n - 1);
        // pairs (i, k - i) with i < k - i
        let hi = k.div_ceil(2); // exclusive bound for i
        let mut s = Acc::new();
        if lo < hi {
            let xs = &a[lo..hi];
            let ys = &a[k + 1 - hi..=k - lo];
            dot_rev(&mut s, xs, ys);
        }
        s.double();
        if k % 2 == 0 {
            s.mac(a[k / 2], a[k / 2]);
        }
        s.add_acc(&carry);
        r[k] = s.shift();
        carry = s;
    }
    r[2 * n - 1] = carry.shift();
}

/// Product-scanning product of equal-length numbers.
pub(crate) fn mul_comba(r: &mut [u64], a: &[u64], b: &[u64]) {
    let n = a.len();
    let r = &mut r[..2 * n];
    let mut acc = Acc::new();
    for k in 0..2 * n - 1 {
        let lo = k.saturating_sub(n - 1);
        let hi = k.min(n - 1);
        let xs = &a[lo..=hi];
        let ys = &b[k - hi..=k - lo];
        dot_rev(&mut acc, xs, ys);
        r[k] = acc.shift();
    }
    r[2 * n - 1] = acc.shift();
}
