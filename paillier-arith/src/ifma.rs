//! The base-2 Miller–Rabin round of prime generation on AVX-512 IFMA (`vpmadd52luq` /
//! `vpmadd52huq`), for candidates of up to [`MAX_BITS`] bits; and the same kernel for
//! numbers of up to sixteen vectors behind [`crate::Modulus::pow`] ([`PowContext`]).
//!
//! Key generation spends nearly all its time squaring modulo 1024- and 1536-bit candidates,
//! where the scalar kernel's carry chains (one `adcx`/`adox` pair per limb product, serialised
//! on this machine's cores) cost about two cycles per limb product. IFMA multiplies eight
//! 52-bit digits at once and accumulates into 64-bit lanes without carries, so a Montgomery
//! square is a few dozen vector instructions per digit of the multiplier. Those instructions
//! form one dependency chain (each quotient digit waits for the previous multiply-adds), so
//! prime generation tests two candidates at a time ([`base_2_round_pair`]): two chains side by
//! side take about the time of one. Measured on this project's machine (Zen 4): a base-2 round
//! on a 1024-bit candidate 0.23 ms alone against 0.36 ms on the scalar kernel, and a pair in
//! about the time of one.
//!
//! Numbers are little-endian 52-bit digits in [`LANES`] 64-bit lanes (four 512-bit vectors),
//! k = bits/52 + 1 of them used, so that R = 2^(52k) > 2m. Residues are kept canonical: every
//! digit below 2^52 and the value below m, so equality of residues is equality of digits.
//!
//! The exponentiations of encryption and decryption (moduli p², q² and n²: 2048 to 6144 bits
//! for the key sizes in use) spend their time the same way, so [`PowContext`] runs
//! [`crate::Modulus::pow`] on this kernel too, with the scalar kernel's sliding windows.
//! The CRT halves of decryption and owner encryption run side by side ([`amm_v2`]), as the
//! base-2 rounds do. Measured on the same machine (`op_timing`, 2048-bit key): r^n mod n²
//! 7.8 → 2.6 ms; owner encryption and decryption 2.2 → 1.1 ms one half after the other,
//! 0.75 ms side by side.
//!
//! [`PowContext::pow`] and [`PowContext::pow_pair`] are variable time in the exponent, exactly
//! as the scalar kernel they stand in for (same windows, same skipped zero bits).
//! [`PowContext::pow_secret`] is the constant-time exponentiation for secret exponents: the
//! product [`amm_v`] has no branch on the data (its loops run over the public digit count, the
//! quotient digit is a multiplication), the lanes are carried by shifts and masks, values stay
//! below 2m without comparisons, and around that fixed windows, masked table scans and a
//! masked final subtraction.

use std::sync::atomic::{AtomicU8, Ordering};

use core::arch::x86_64::{
    __m512i, _mm_cvtsi128_si64, _mm512_alignr_epi64, _mm512_castsi512_si128, _mm512_loadu_epi64,
    _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_mask_add_epi64, _mm512_set1_epi64,
    _mm512_setzero_si512, _mm512_srli_epi64, _mm512_storeu_epi64,
};
use num_bigint::BigUint;

use super::montgomery::{WindowStep, sliding_windows};
use num_traits::One;

/// 64-bit lanes of a base-2 round's numbers: four vectors of eight.
const LANES: usize = 32;
/// Bits per digit.
const DIGIT: u32 = 52;
const MASK: u64 = (1 << DIGIT) - 1;
/// The longest modulus handled: k = bits/52 + 1 digits must fit in [`LANES`].
pub(crate) const MAX_BITS: u64 = DIGIT as u64 * LANES as u64 - 1;

/// Digits of one vector.
type Chunk = [u64; 8];

/// A base-2 round's number: [`LANES`] digits, in the vectors [`amm_v`] works on.
type Digits = [Chunk; LANES / 8];

/// Proof that the running CPU has AVX-512F and AVX-512 IFMA (only [`Ifma::detect`] makes one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ifma(());

/// 0: not yet checked, 1: absent, 2: present.
static DETECTED: AtomicU8 = AtomicU8::new(0);

#[cfg(test)]
thread_local! {
    /// Tests set this to run the scalar path on a machine that has IFMA.
    pub(crate) static FORCE_SCALAR: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

impl Ifma {
    /// The token when the CPU has AVX-512F and IFMA (checked once per process).
    pub(crate) fn detect() -> Option<Ifma> {
        #[cfg(test)]
        if FORCE_SCALAR.with(|f| f.get()) {
            return None;
        }
        match DETECTED.load(Ordering::Relaxed) {
            2 => Some(Ifma(())),
            1 => None,
            _ => {
                let yes = crate::KernelLimit::get() >= crate::KernelLimit::Ifma
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512ifma");
                DETECTED.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes.then_some(Ifma(()))
            }
        }
    }
}

/// Little-endian 52-bit digits of `x` (which must have fewer than 52·LANES bits).
fn digits_of(x: &BigUint) -> Digits {
    let mut out = [[0u64; 8]; LANES / 8];
    digits_from_limbs(&x.to_u64_digits(), out.as_flattened_mut());
    out
}

/// Montgomery context in radix 2^52 for one odd modulus.
struct Context {
    token: Ifma,
    /// Digits in use: R = 2^(52k).
    k: usize,
    m: Digits,
    /// `-m⁻¹ mod 2^52`.
    m_inv: u64,
}

impl Context {
    /// Montgomery product `a·b·R⁻¹`, canonical (< m) for canonical inputs.
    fn mul(&self, a: &Digits, b: &Digits) -> Digits {
        let mut t = self.token.amm_v(a, b, &self.m, self.m_inv, self.k);
        self.normalise(&mut t);
        t
    }

    /// Carries the lanes into 52-bit digits and subtracts m once if the value is >= m
    /// (inputs below 2m < R, which both the product and a doubling give).
    fn normalise(&self, t: &mut Digits) {
        carry_digits(t.as_flattened_mut(), self.k);
        subtract_if_ge(t.as_flattened_mut(), self.m.as_flattened(), self.k);
    }

    /// `2·a mod m`.
    fn double(&self, a: &mut Digits) {
        for d in a.as_flattened_mut()[..self.k].iter_mut() {
            *d <<= 1;
        }
        self.normalise(a);
    }
}

/// One candidate's base-2 round: its context and the values it compares with.
struct Round {
    ctx: Context,
    one: Digits,
    minus_one: Digits,
    /// `n - 1 = d·2^s`.
    d: BigUint,
    s: u64,
}

impl Round {
    /// `None` when the kernel cannot run for `n` (no IFMA, `n` too long, even or below 5).
    fn new(n: &BigUint) -> Option<Round> {
        let token = Ifma::detect()?;
        let bits = n.bits();
        if !(3..=MAX_BITS).contains(&bits) || !n.bit(0) {
            return None;
        }
        let k = (bits / u64::from(DIGIT) + 1) as usize;
        let r = BigUint::one() << (u64::from(DIGIT) * k as u64);
        let m = digits_of(n);
        let one_big = &r % n;
        let n_minus_1 = n - 1u32;
        let s = n_minus_1.trailing_zeros().unwrap_or(0);
        Some(Round {
            ctx: Context {
                token,
                k,
                m,
                m_inv: neg_inv_52(m[0][0]),
            },
            one: digits_of(&one_big),
            minus_one: digits_of(&(n - &one_big)),
            d: &n_minus_1 >> s,
            s,
        })
    }

    /// Given x = 2^d: x ≡ ±1, or x^(2^r) ≡ -1 for some 0 < r < s.
    fn finish(&self, mut x: Digits) -> bool {
        if x == self.one || x == self.minus_one {
            return true;
        }
        for _ in 1..self.s {
            x = self.ctx.mul(&x, &x);
            if x == self.minus_one {
                return true;
            }
            if x == self.one {
                return false;
            }
        }
        false
    }
}

/// The base-2 strong-probable-prime test (one Miller–Rabin round to base 2) of the odd
/// `n > 3`, or `None` when this kernel cannot run it (no IFMA, or `n` too long). With
/// `n - 1 = d·2^s`: 2^d ≡ ±1, or 2^(d·2^r) ≡ -1 for some 0 < r < s.
pub(crate) fn base_2_round(n: &BigUint) -> Option<bool> {
    let round = Round::new(n)?;
    let ctx = &round.ctx;
    // 2^d, left to right: a square per bit, a doubling per one bit.
    let mut x = round.one;
    ctx.double(&mut x);
    for i in (0..round.d.bits() - 1).rev() {
        x = ctx.mul(&x, &x);
        if round.d.bit(i) {
            ctx.double(&mut x);
        }
    }
    Some(round.finish(x))
}

/// [`base_2_round`] of two candidates of the same length at once (see [`amm_v2`]): about the
/// time of one. `None` when the kernel cannot run for either.
pub(crate) fn base_2_round_pair(n: [&BigUint; 2]) -> Option<[bool; 2]> {
    let rounds = [Round::new(n[0])?, Round::new(n[1])?];
    let k = rounds[0].ctx.k;
    if rounds[1].ctx.k != k {
        return None;
    }
    // 2^d for both, over the longer exponent; the other starts with leading zero bits
    // (squaring one keeps one), so both take the same steps.
    let top = rounds[0].d.bits().max(rounds[1].d.bits());
    let mut x = [rounds[0].one, rounds[1].one];
    for i in (0..top).rev() {
        let [a, b] = &x;
        let [c0, c1] = [&rounds[0].ctx, &rounds[1].ctx];
        x = c0
            .token
            .amm_v2([(a, a, &c0.m, c0.m_inv), (b, b, &c1.m, c1.m_inv)], k);
        for (x, round) in x.iter_mut().zip(&rounds) {
            round.ctx.normalise(x);
            if round.d.bit(i) {
                round.ctx.double(x);
            }
        }
    }
    let [x0, x1] = x;
    Some([rounds[0].finish(x0), rounds[1].finish(x1)])
}

/// `-m0⁻¹ mod 2^52` for odd `m0` (Newton iteration modulo 2^64, then truncated).
fn neg_inv_52(m0: u64) -> u64 {
    let mut x = m0;
    for _ in 0..5 {
        x = x.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(x)));
    }
    x.wrapping_neg() & MASK
}

/// Most vectors per number for [`PowContext`]: 128 digits.
const POW_MAX_VECTORS: usize = 16;
/// The longest modulus [`PowContext`] handles: R = 2^(52k) > 4m with k ≤ 128 digits.
pub(crate) const POW_MAX_BITS: u64 = DIGIT as u64 * 8 * POW_MAX_VECTORS as u64 - 2;
/// The shortest modulus [`PowContext`] takes. Measured on this project's machine (Zen 4,
/// `timing::ifma_pow_crossover`): the two kernels break even near 640 bits (the vector one
/// wastes lanes on short numbers and its single dependency chain dominates), 1.16× at 768,
/// 1.37× at 1024, 2× at 2048, 3× at 4096 and 6144.
pub(crate) const POW_MIN_BITS: u64 = 700;

/// Digits of a number below R for [`PowContext`], `8·vectors` of them (all below 2^52).
type Wide = Box<[u64]>;

/// Montgomery context in radix 2^52 for [`crate::Modulus::pow`] on moduli of
/// [`POW_MIN_BITS`]..=[`POW_MAX_BITS`] bits.
///
/// k digits with R = 2^(52k) > 4m, so the almost-Montgomery product of two values below 2m is
/// again below 2m: between multiplications only the lanes' carries are propagated (the digits
/// must be below 2^52 for the multiplier), never a comparison with m; one subtraction at the
/// end makes the result canonical.
#[derive(Clone, Debug)]
pub(crate) struct PowContext {
    /// Vectors per number (`k ≤ 8·vectors`).
    vectors: usize,
    k: usize,
    m: Wide,
    /// `-m⁻¹ mod 2^52`.
    m_inv: u64,
    /// `R52²·R64⁻¹ mod m`: one product with it takes a residue of the scalar kernel
    /// (x·R64) to x·R52.
    to_ifma: Wide,
    /// `R64 mod m`: one product with it takes x·R52 back to x·R64.
    from_ifma: Wide,
}

/// Digits (52-bit, `out.len()` of them) of the number with little-endian u64 limbs `limbs`.
fn digits_from_limbs(limbs: &[u64], out: &mut [u64]) {
    let mut buf: u128 = 0;
    let mut have = 0u32;
    let mut it = limbs.iter();
    for d in out.iter_mut() {
        if have < DIGIT
            && let Some(&l) = it.next()
        {
            buf |= u128::from(l) << have;
            have += 64;
        }
        *d = buf as u64 & MASK;
        buf >>= DIGIT;
        have = have.saturating_sub(DIGIT);
    }
    debug_assert!(buf == 0 && it.all(|&l| l == 0), "number fits the digits");
}

/// Little-endian u64 limbs (`out.len()` of them) of the number with 52-bit digits `digits`.
fn limbs_from_digits(digits: &[u64], out: &mut [u64]) {
    let mut buf: u128 = 0;
    let mut have = 0u32;
    let mut it = digits.iter();
    for l in out.iter_mut() {
        while have < 64 {
            match it.next() {
                Some(&d) => {
                    buf |= u128::from(d) << have;
                    have += DIGIT;
                }
                None => break,
            }
        }
        *l = buf as u64;
        buf >>= 64;
        have = have.saturating_sub(64);
    }
    debug_assert!(buf == 0 && it.all(|&d| d == 0), "number fits the limbs");
}

impl PowContext {
    /// The context for the odd `m` of `POW_MIN_BITS..=POW_MAX_BITS` bits (else `None`);
    /// `from_scalar_residue(x)` must give `x·R64⁻¹ mod m`, the scalar kernel's conversion
    /// out of Montgomery form, and `r64` is `R64 mod m`.
    pub(crate) fn new(
        m: &BigUint,
        r64: &BigUint,
        from_scalar_residue: impl Fn(&BigUint) -> BigUint,
    ) -> Option<PowContext> {
        let bits = m.bits();
        if !(POW_MIN_BITS..=POW_MAX_BITS).contains(&bits) || !m.bit(0) {
            return None;
        }
        let k = (bits + 2).div_ceil(u64::from(DIGIT)) as usize;
        let vectors = k.div_ceil(8);
        let wide = |x: &BigUint| -> Wide {
            let mut out = vec![0u64; 8 * vectors];
            let limbs: Vec<u64> = x.iter_u64_digits().collect();
            digits_from_limbs(&limbs, &mut out);
            out.into_boxed_slice()
        };
        let r52_sq = (BigUint::one() << (2 * u64::from(DIGIT) * k as u64)) % m;
        let mw = wide(m);
        Some(PowContext {
            vectors,
            k,
            m_inv: neg_inv_52(mw[0]),
            m: mw,
            to_ifma: wide(&from_scalar_residue(&r52_sq)),
            from_ifma: wide(r64),
        })
    }

    /// `base^e` for a residue `base` of the scalar kernel (u64 limbs, x·R64 mod m, below m),
    /// as such a residue, with the exponent's u64 limbs `e` (nonzero, `bits` bits) and the
    /// sliding window width `window` (1: plain square-and-multiply).
    pub(crate) fn pow(
        &self,
        token: Ifma,
        base: &[u64],
        e: &[u64],
        bits: u64,
        window: usize,
    ) -> Vec<u64> {
        match self.vectors {
            1 => self.pow_v::<1>(token, base, e, bits, window),
            2 => self.pow_v::<2>(token, base, e, bits, window),
            3 => self.pow_v::<3>(token, base, e, bits, window),
            4 => self.pow_v::<4>(token, base, e, bits, window),
            5 => self.pow_v::<5>(token, base, e, bits, window),
            6 => self.pow_v::<6>(token, base, e, bits, window),
            7 => self.pow_v::<7>(token, base, e, bits, window),
            8 => self.pow_v::<8>(token, base, e, bits, window),
            9 => self.pow_v::<9>(token, base, e, bits, window),
            10 => self.pow_v::<10>(token, base, e, bits, window),
            11 => self.pow_v::<11>(token, base, e, bits, window),
            12 => self.pow_v::<12>(token, base, e, bits, window),
            13 => self.pow_v::<13>(token, base, e, bits, window),
            14 => self.pow_v::<14>(token, base, e, bits, window),
            15 => self.pow_v::<15>(token, base, e, bits, window),
            16 => self.pow_v::<16>(token, base, e, bits, window),
            _ => unreachable!("new() keeps vectors within 1..=POW_MAX_VECTORS"),
        }
    }

    fn pow_v<const V: usize>(
        &self,
        token: Ifma,
        base: &[u64],
        e: &[u64],
        bits: u64,
        window: usize,
    ) -> Vec<u64> {
        let chunks = |x: &[u64]| -> [Chunk; V] {
            let mut out = [[0u64; 8]; V];
            out.as_flattened_mut().copy_from_slice(x);
            out
        };
        let m = chunks(&self.m);
        let (k, m_inv) = (self.k, self.m_inv);
        // Product of two values below 2m with carried digits: below 2m, carried.
        let mul = |a: &[Chunk; V], b: &[Chunk; V]| -> [Chunk; V] {
            let mut t = token.amm_v(a, b, &m, m_inv, k);
            carry_digits(t.as_flattened_mut(), k);
            t
        };
        let mut x = [[0u64; 8]; V];
        digits_from_limbs(base, x.as_flattened_mut());
        let x = mul(&x, &chunks(&self.to_ifma));
        let bit = |i: u64| (e[(i / 64) as usize] >> (i % 64)) & 1 == 1;
        // table[j] = x^(2j+1)
        let entries = 1usize << (window - 1);
        let mut table = vec![x; entries];
        if entries > 1 {
            let x2 = mul(&x, &x);
            for j in 1..entries {
                table[j] = mul(&table[j - 1], &x2);
            }
        }
        let mut acc = x;
        let mut first = true;
        for step in sliding_windows(bits, window, bit) {
            match step {
                WindowStep::Square => acc = mul(&acc, &acc),
                WindowStep::Window { value, .. } if first => {
                    acc = table[value >> 1];
                    first = false;
                }
                WindowStep::Window { len, value } => {
                    for _ in 0..len {
                        acc = mul(&acc, &acc);
                    }
                    acc = mul(&acc, &table[value >> 1]);
                }
            }
        }
        let mut out_digits = mul(&acc, &chunks(&self.from_ifma));
        let d = out_digits.as_flattened_mut();
        subtract_if_ge(d, &self.m[..k], k);
        let mut out = vec![0u64; base.len()];
        limbs_from_digits(d, &mut out);
        out
    }
}

/// Carries the lanes of `t` (the first `k` in use) into 52-bit digits; the value must be
/// below 2^(52k).
fn carry_digits(t: &mut [u64], k: usize) {
    let mut carry = 0u64;
    for d in t[..k].iter_mut() {
        let v = *d + carry;
        *d = v & MASK;
        carry = v >> DIGIT;
    }
    debug_assert_eq!(carry, 0, "values stay below R");
}

/// `t -= m` if `t >= m` (carried digits, `k` in use, t below 2m).
fn subtract_if_ge(t: &mut [u64], m: &[u64], k: usize) {
    let ge = t[..k]
        .iter()
        .rev()
        .zip(m[..k].iter().rev())
        .find(|(x, y)| x != y)
        .is_none_or(|(x, y)| x > y);
    if ge {
        let mut borrow = 0u64;
        for (d, &md) in t[..k].iter_mut().zip(&m[..k]) {
            let v = d.wrapping_sub(md).wrapping_sub(borrow);
            borrow = v >> 63; // went below zero (digits and m are below 2^52)
            *d = v & MASK;
        }
        debug_assert_eq!(borrow, 0);
    }
}

impl Ifma {
    /// [`amm_v`], callable because the token proves the CPU has what it is compiled for.
    #[inline]
    fn amm_v<const V: usize>(
        self,
        a: &[Chunk; V],
        b: &[Chunk; V],
        m: &[Chunk; V],
        m_inv: u64,
        k: usize,
    ) -> [Chunk; V] {
        // SAFETY: the token exists only if the CPU has AVX-512F and IFMA, the features
        // `amm_v` is compiled for.
        unsafe { amm_v(a, b, m, m_inv, k) }
    }
}

/// Word-serial Montgomery multiplication over the k digits of b, eight digits of a and m per
/// instruction, for numbers of V vectors (k ≤ 8V digits in use, the rest zero): `a·b·2^(-52k)`
/// plus a multiple of m, below `(a·b + 2^(52k)·m)/2^(52k)`, in lanes not yet carried.
/// Lanes stay below 2^64: each step adds at most four products below 2^52 to a lane, and a
/// lane's content leaves through lane 0 within 8V ≤ 128 steps (2^2·2^52·2^7 = 2^61).
#[target_feature(enable = "avx512f,avx512ifma")]
fn amm_v<const V: usize>(
    a: &[Chunk; V],
    b: &[Chunk; V],
    m: &[Chunk; V],
    m_inv: u64,
    k: usize,
) -> [Chunk; V] {
    let load = |x: &Chunk| -> __m512i {
        // SAFETY: a whole [u64; 8] (64 bytes); unaligned loads are allowed.
        unsafe { _mm512_loadu_epi64(x.as_ptr().cast::<i64>()) }
    };
    let zero = _mm512_setzero_si512();
    let mut av = [zero; V];
    let mut mv = [zero; V];
    for ((av, mv), (a, m)) in av.iter_mut().zip(mv.iter_mut()).zip(a.iter().zip(m)) {
        *av = load(a);
        *mv = load(m);
    }
    let mut acc = [zero; V];
    for &bi in &b.as_flattened()[..k] {
        let bv = _mm512_set1_epi64(bi as i64);
        for (acc, &av) in acc.iter_mut().zip(&av) {
            *acc = _mm512_madd52lo_epu64(*acc, av, bv);
        }
        // q clears digit 0: (acc₀ + q·m₀) ≡ 0 (mod 2^52).
        let acc0 = _mm_cvtsi128_si64(_mm512_castsi512_si128(acc[0])) as u64;
        let q = acc0.wrapping_mul(m_inv) & MASK;
        let qv = _mm512_set1_epi64(q as i64);
        for (acc, &mv) in acc.iter_mut().zip(&mv) {
            *acc = _mm512_madd52lo_epu64(*acc, mv, qv);
        }
        // Divide by 2^52: lane 0 is now a multiple of 2^52; every lane moves down one place,
        // lane 0's high bits carry into the new lane 0. The high halves of this step's
        // products belong one digit up: after the move, in the same lanes as the low halves.
        let carry = _mm512_srli_epi64::<52>(acc[0]);
        for v in 0..V {
            let next = if v + 1 < V { acc[v + 1] } else { zero };
            acc[v] = _mm512_alignr_epi64::<1>(next, acc[v]);
        }
        acc[0] = _mm512_mask_add_epi64(acc[0], 1, acc[0], carry);
        for ((acc, &av), &mv) in acc.iter_mut().zip(&av).zip(&mv) {
            *acc = _mm512_madd52hi_epu64(*acc, av, bv);
            *acc = _mm512_madd52hi_epu64(*acc, mv, qv);
        }
    }
    let mut out = [[0u64; 8]; V];
    for (o, &x) in out.iter_mut().zip(&acc) {
        // SAFETY: a whole [u64; 8] (64 bytes); unaligned stores are allowed.
        unsafe { _mm512_storeu_epi64(o.as_mut_ptr().cast::<i64>(), x) };
    }
    out
}

/// Bits `i*w..(i+1)*w` of the exponent with u64 limbs `e` (zero past its end).
fn window_at(e: &[u64], i: u64, w: u64) -> usize {
    (i * w..(i + 1) * w).rev().fold(0usize, |acc, b| {
        let bit = e.get((b / 64) as usize).map_or(0, |&l| (l >> (b % 64)) & 1);
        (acc << 1) | bit as usize
    })
}

impl PowContext {
    /// Two exponentiations side by side (see [`amm_v2`]), each as [`PowContext::pow`]: the
    /// CRT halves of decryption and owner encryption. Fixed windows of `window` bits over the
    /// longer exponent (`bits` bits, nonzero), so both take the same steps. `None` when the
    /// two moduli use different digit counts, or are longer than [`PAIR_MAX_VECTORS`].
    pub(crate) fn pow_pair(
        token: Ifma,
        ctx: [&PowContext; 2],
        base: [&[u64]; 2],
        e: [&[u64]; 2],
        bits: u64,
        window: usize,
    ) -> Option<[Vec<u64>; 2]> {
        if ctx[0].k != ctx[1].k || ctx[0].vectors > PAIR_MAX_VECTORS {
            return None;
        }
        let args = (token, ctx, base, e, bits, window);
        Some(match ctx[0].vectors {
            1 => pow_pair_v::<1>(args),
            2 => pow_pair_v::<2>(args),
            3 => pow_pair_v::<3>(args),
            4 => pow_pair_v::<4>(args),
            5 => pow_pair_v::<5>(args),
            6 => pow_pair_v::<6>(args),
            7 => pow_pair_v::<7>(args),
            8 => pow_pair_v::<8>(args),
            9 => pow_pair_v::<9>(args),
            10 => pow_pair_v::<10>(args),
            11 => pow_pair_v::<11>(args),
            12 => pow_pair_v::<12>(args),
            13 => pow_pair_v::<13>(args),
            14 => pow_pair_v::<14>(args),
            15 => pow_pair_v::<15>(args),
            16 => pow_pair_v::<16>(args),
            _ => unreachable!("new() keeps vectors within 1..=POW_MAX_VECTORS"),
        })
    }
}

/// The longest numbers [`PowContext::pow_pair`] takes. Measured per exponentiation on this
/// project's machine (`timing::ifma_pow_crossover`, half-length exponents): side by side
/// 0.36 ms against 0.53 ms alone at 2048 bits (5 vectors), 1.21 against 1.35 ms at 3072 (8);
/// at 4096 bits (10 vectors) one chain already keeps the multipliers busy (2.50 against
/// 2.52 ms), and at 6144 (15) two chains' operands no longer fit the 32 vector registers
/// (9.9 against 8.1 ms).
const PAIR_MAX_VECTORS: usize = 8;

/// The arguments of [`PowContext::pow_pair`].
type PairArgs<'a> = (
    Ifma,
    [&'a PowContext; 2],
    [&'a [u64]; 2],
    [&'a [u64]; 2],
    u64,
    usize,
);

fn pow_pair_v<const V: usize>((token, ctx, base, e, bits, window): PairArgs<'_>) -> [Vec<u64>; 2] {
    let chunks = |x: &[u64]| -> [Chunk; V] {
        let mut out = [[0u64; 8]; V];
        out.as_flattened_mut().copy_from_slice(x);
        out
    };
    let m = ctx.map(|c| chunks(&c.m));
    let k = ctx[0].k;
    // Products of values below 2m with carried digits: below 2m, carried.
    let mul2 = |a: [&[Chunk; V]; 2], b: [&[Chunk; V]; 2]| -> [[Chunk; V]; 2] {
        let mut t = token.amm_v2(
            [
                (a[0], b[0], &m[0], ctx[0].m_inv),
                (a[1], b[1], &m[1], ctx[1].m_inv),
            ],
            k,
        );
        for t in t.iter_mut() {
            carry_digits(t.as_flattened_mut(), k);
        }
        t
    };
    let to = ctx.map(|c| chunks(&c.to_ifma));
    let from = ctx.map(|c| chunks(&c.from_ifma));
    let x = base.map(|b| {
        let mut x = [[0u64; 8]; V];
        digits_from_limbs(b, x.as_flattened_mut());
        x
    });
    let x = mul2([&x[0], &x[1]], [&to[0], &to[1]]);
    // One in this radix's Montgomery form: R64·(R52²·R64⁻¹)·R52⁻¹ = R52.
    let one = mul2([&from[0], &from[1]], [&to[0], &to[1]]);
    // table[d] = x^d for every w-bit d.
    let entries = 1usize << window;
    let mut table = vec![one; entries];
    table[1] = x;
    for d in 2..entries {
        let prev = table[d - 1];
        table[d] = mul2([&prev[0], &prev[1]], [&x[0], &x[1]]);
    }
    let w = window as u64;
    let windows = bits.div_ceil(w);
    let top = windows - 1;
    let mut acc = [0, 1].map(|j| table[window_at(e[j], top, w)][j]);
    for i in (0..top).rev() {
        for _ in 0..w {
            acc = mul2([&acc[0], &acc[1]], [&acc[0], &acc[1]]);
        }
        let d = [0, 1].map(|j| window_at(e[j], i, w));
        if d != [0, 0] {
            acc = mul2([&acc[0], &acc[1]], [&table[d[0]][0], &table[d[1]][1]]);
        }
    }
    let out = mul2([&acc[0], &acc[1]], [&from[0], &from[1]]);
    [0, 1].map(|j| {
        let mut d = out[j];
        let d = d.as_flattened_mut();
        subtract_if_ge(d, &ctx[j].m[..k], k);
        let mut limbs = vec![0u64; base[j].len()];
        limbs_from_digits(d, &mut limbs);
        limbs
    })
}

impl PowContext {
    /// `base^e` for secret exponents below `2^max_bits`, one number or a pair (`P` of 1 or 2,
    /// each with its own context of the same digit count), in time and memory accesses that do
    /// not depend on the exponents: fixed windows of `window` bits over all `max_bits` bits, a
    /// table of all 2^window powers read in full for every window and the entry kept by mask,
    /// a multiplication for every window (by one for a zero window), and almost-Montgomery
    /// products that never compare with m (values stay below 2m < R/2; the lanes' carries are
    /// propagated by shifts and masks). The one subtraction that makes the result canonical is
    /// computed always and kept by mask. `e` holds each exponent's u64 limbs zero-padded to at
    /// least `max_bits / 64 + 2` limbs, so which limbs are read depends only on `max_bits`.
    /// `None` when the contexts differ in digit count or a pair is longer than
    /// [`PAIR_MAX_VECTORS`]; all scratch (table, accumulator) is zeroed before returning.
    pub(crate) fn pow_secret<const P: usize>(
        token: Ifma,
        ctx: [&PowContext; P],
        base: [&[u64]; P],
        e: [&[u64]; P],
        max_bits: u64,
        window: u32,
    ) -> Option<[Vec<u64>; P]> {
        if ctx.iter().any(|c| c.k != ctx[0].k) || (P > 1 && ctx[0].vectors > PAIR_MAX_VECTORS) {
            return None;
        }
        debug_assert!(e.iter().all(|e| e.len() as u64 > max_bits / 64 + 1));
        let args = SecretArgs {
            token,
            ctx,
            base,
            e,
            max_bits,
            window,
        };
        Some(match ctx[0].vectors {
            1 => pow_secret_v::<1, P>(args),
            2 => pow_secret_v::<2, P>(args),
            3 => pow_secret_v::<3, P>(args),
            4 => pow_secret_v::<4, P>(args),
            5 => pow_secret_v::<5, P>(args),
            6 => pow_secret_v::<6, P>(args),
            7 => pow_secret_v::<7, P>(args),
            8 => pow_secret_v::<8, P>(args),
            9 => pow_secret_v::<9, P>(args),
            10 => pow_secret_v::<10, P>(args),
            11 => pow_secret_v::<11, P>(args),
            12 => pow_secret_v::<12, P>(args),
            13 => pow_secret_v::<13, P>(args),
            14 => pow_secret_v::<14, P>(args),
            15 => pow_secret_v::<15, P>(args),
            16 => pow_secret_v::<16, P>(args),
            _ => unreachable!("new() keeps vectors within 1..=POW_MAX_VECTORS"),
        })
    }
}

/// The arguments of [`PowContext::pow_secret`].
struct SecretArgs<'a, const P: usize> {
    token: Ifma,
    ctx: [&'a PowContext; P],
    base: [&'a [u64]; P],
    e: [&'a [u64]; P],
    max_bits: u64,
    window: u32,
}

/// `t -= m` when `t >= m` (carried digits, `k` in use, t below 2m), without a branch on the
/// value: the difference is always computed and kept by mask.
fn subtract_if_ge_ct(t: &mut [u64], m: &[u64], k: usize) {
    let mut diff = [0u64; 8 * POW_MAX_VECTORS];
    let mut borrow = 0u64;
    for ((d, &x), &md) in diff.iter_mut().zip(&t[..k]).zip(&m[..k]) {
        let v = x.wrapping_sub(md).wrapping_sub(borrow);
        borrow = v >> 63; // went below zero (digits and m are below 2^52)
        *d = v & MASK;
    }
    // No borrow out: t >= m, keep the difference.
    let keep_difference = core::hint::black_box(borrow.wrapping_sub(1));
    for (x, &d) in t[..k].iter_mut().zip(&diff) {
        *x = (*x & !keep_difference) | (d & keep_difference);
    }
    super::montgomery::wipe(&mut diff);
}

/// `out = table[index[j]][j]` for each of the `P` numbers, reading every entry of the table
/// and keeping the wanted ones by mask: the memory accesses do not depend on the indices.
fn select_entries<const V: usize, const P: usize>(
    table: &[[[Chunk; V]; P]],
    index: [u64; P],
) -> [[Chunk; V]; P] {
    let mut out = [[[0u64; 8]; V]; P];
    for (j, entry) in table.iter().enumerate() {
        for ((out, entry), &index) in out.iter_mut().zip(entry).zip(&index) {
            let mask = core::hint::black_box(super::montgomery::eq_mask(j as u64, index));
            for (o, &x) in out.as_flattened_mut().iter_mut().zip(entry.as_flattened()) {
                *o |= x & mask;
            }
        }
    }
    #[cfg(test)]
    super::montgomery::trace::record(super::montgomery::trace::Op::Scan);
    out
}

fn pow_secret_v<const V: usize, const P: usize>(args: SecretArgs<'_, P>) -> [Vec<u64>; P] {
    let SecretArgs {
        token,
        ctx,
        base,
        e,
        max_bits,
        window,
    } = args;
    let chunks = |x: &[u64]| -> [Chunk; V] {
        let mut out = [[0u64; 8]; V];
        out.as_flattened_mut().copy_from_slice(x);
        out
    };
    let m: [[Chunk; V]; P] = ctx.map(|c| chunks(&c.m));
    let k = ctx[0].k;
    // Products of values below 2m with carried digits: below 2m, carried. One dependency
    // chain alone, two side by side for a pair.
    let mul = |a: &[[Chunk; V]; P], b: &[[Chunk; V]; P]| -> [[Chunk; V]; P] {
        let mut t = [[[0u64; 8]; V]; P];
        if P == 2 {
            let [t0, t1] = token.amm_v2(
                [
                    (&a[0], &b[0], &m[0], ctx[0].m_inv),
                    (&a[1], &b[1], &m[1], ctx[1].m_inv),
                ],
                k,
            );
            t[0] = t0;
            t[1] = t1;
        } else {
            for j in 0..P {
                t[j] = token.amm_v(&a[j], &b[j], &m[j], ctx[j].m_inv, k);
            }
        }
        for t in t.iter_mut() {
            carry_digits(t.as_flattened_mut(), k);
        }
        t
    };
    let to = ctx.map(|c| chunks(&c.to_ifma));
    let from = ctx.map(|c| chunks(&c.from_ifma));
    let x = base.map(|b| {
        let mut x = [[0u64; 8]; V];
        digits_from_limbs(b, x.as_flattened_mut());
        x
    });
    let x = mul(&x, &to);
    // One in this radix's Montgomery form: R64·(R52²·R64⁻¹)·R52⁻¹ = R52.
    let one = mul(&from, &to);
    // table[d] = x^d for every w-bit d.
    let entries = 1usize << window;
    let mut table = vec![one; entries];
    table[1] = x;
    for d in 2..entries {
        table[d] = mul(&table[d - 1], &x);
        #[cfg(test)]
        super::montgomery::trace::record(super::montgomery::trace::Op::Multiply);
    }
    let w = u64::from(window);
    let window_mask = (1u64 << w) - 1;
    // Bits `i·w ..` of each exponent: which limbs are read depends on i only.
    let digit = |i: u64| -> [u64; P] {
        let pos = i * w;
        let (limb, shift) = ((pos / 64) as usize, pos % 64);
        e.map(|e| {
            let mut v = e[limb] >> shift;
            if shift + w > 64 {
                v |= e[limb + 1] << (64 - shift);
            }
            v & window_mask
        })
    };
    let windows = max_bits.div_ceil(w).max(1);
    let mut acc = select_entries(&table, digit(windows - 1));
    for i in (0..windows - 1).rev() {
        for _ in 0..w {
            acc = mul(&acc, &acc);
            #[cfg(test)]
            super::montgomery::trace::record(super::montgomery::trace::Op::Square);
        }
        let mut entry = select_entries(&table, digit(i));
        acc = mul(&acc, &entry);
        #[cfg(test)]
        super::montgomery::trace::record(super::montgomery::trace::Op::Multiply);
        entry = [[[0u64; 8]; V]; P];
        core::hint::black_box(&entry);
    }
    let mut out = mul(&acc, &from);
    let result = core::array::from_fn(|j| {
        let d = out[j].as_flattened_mut();
        subtract_if_ge_ct(d, &ctx[j].m[..k], k);
        let mut limbs = vec![0u64; base[j].len()];
        limbs_from_digits(d, &mut limbs);
        limbs
    });
    for t in table.iter_mut() {
        *t = [[[0u64; 8]; V]; P];
    }
    acc = [[[0u64; 8]; V]; P];
    out = [[[0u64; 8]; V]; P];
    core::hint::black_box((&table, &acc, &out));
    result
}

impl Ifma {
    /// [`amm_v2`], callable because the token proves the CPU has what it is compiled for.
    #[inline]
    fn amm_v2<const V: usize>(self, x: [PairOperands<'_, V>; 2], k: usize) -> [[Chunk; V]; 2] {
        // SAFETY: the token exists only if the CPU has AVX-512F and IFMA, the features
        // `amm_v2` is compiled for.
        unsafe { amm_v2(x, k) }
    }
}

/// One product of [`amm_v2`]: a, b, m and `-m⁻¹ mod 2^52`.
type PairOperands<'a, const V: usize> = (&'a [Chunk; V], &'a [Chunk; V], &'a [Chunk; V], u64);

/// [`amm_v`] of two independent products (same digit count) in one loop: two
/// dependency chains side by side in less than the time of two where one chain leaves the
/// vector units idle (see [`PAIR_MAX_VECTORS`]).
#[target_feature(enable = "avx512f,avx512ifma")]
fn amm_v2<const V: usize>(x: [PairOperands<'_, V>; 2], k: usize) -> [[Chunk; V]; 2] {
    let load = |x: &Chunk| -> __m512i {
        // SAFETY: a whole [u64; 8] (64 bytes); unaligned loads are allowed.
        unsafe { _mm512_loadu_epi64(x.as_ptr().cast::<i64>()) }
    };
    let zero = _mm512_setzero_si512();
    let mut av = [[zero; V]; 2];
    let mut mv = [[zero; V]; 2];
    for j in 0..2 {
        for ((av, mv), (a, m)) in av[j]
            .iter_mut()
            .zip(mv[j].iter_mut())
            .zip(x[j].0.iter().zip(x[j].2))
        {
            *av = load(a);
            *mv = load(m);
        }
    }
    let b = [x[0].1.as_flattened(), x[1].1.as_flattened()];
    let mut acc = [[zero; V]; 2];
    for (&b0, &b1) in b[0][..k].iter().zip(&b[1][..k]) {
        let bv = [b0, b1].map(|bi| _mm512_set1_epi64(bi as i64));
        for j in 0..2 {
            for (acc, &av) in acc[j].iter_mut().zip(&av[j]) {
                *acc = _mm512_madd52lo_epu64(*acc, av, bv[j]);
            }
        }
        let qv = [0, 1].map(|j| {
            let acc0 = _mm_cvtsi128_si64(_mm512_castsi512_si128(acc[j][0])) as u64;
            _mm512_set1_epi64((acc0.wrapping_mul(x[j].3) & MASK) as i64)
        });
        for j in 0..2 {
            for (acc, &mv) in acc[j].iter_mut().zip(&mv[j]) {
                *acc = _mm512_madd52lo_epu64(*acc, mv, qv[j]);
            }
        }
        for acc in acc.iter_mut() {
            let carry = _mm512_srli_epi64::<52>(acc[0]);
            for v in 0..V {
                let next = if v + 1 < V { acc[v + 1] } else { zero };
                acc[v] = _mm512_alignr_epi64::<1>(next, acc[v]);
            }
            acc[0] = _mm512_mask_add_epi64(acc[0], 1, acc[0], carry);
        }
        for j in 0..2 {
            for ((acc, &av), &mv) in acc[j].iter_mut().zip(&av[j]).zip(&mv[j]) {
                *acc = _mm512_madd52hi_epu64(*acc, av, bv[j]);
                *acc = _mm512_madd52hi_epu64(*acc, mv, qv[j]);
            }
        }
    }
    acc.map(|acc| {
        let mut out = [[0u64; 8]; V];
        for (o, &x) in out.iter_mut().zip(&acc) {
            // SAFETY: a whole [u64; 8] (64 bytes); unaligned stores are allowed.
            unsafe { _mm512_storeu_epi64(o.as_mut_ptr().cast::<i64>(), x) };
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Residue;
    use num_bigint::BigRng010 as _;

    /// The reference: the same round through num-bigint.
    fn reference(n: &BigUint) -> bool {
        let n_minus_1 = n - 1u32;
        let s = n_minus_1.trailing_zeros().unwrap_or(0);
        let d = &n_minus_1 >> s;
        let mut x = BigUint::from(2u8).modpow(&d, n);
        if x == BigUint::one() || x == n_minus_1 {
            return true;
        }
        for _ in 1..s {
            x = &x * &x % n;
            if x == n_minus_1 {
                return true;
            }
            if x == BigUint::one() {
                return false;
            }
        }
        false
    }

    #[test]
    fn digits_round_trip() {
        let mut rng = rand::rng();
        for bits in [1u64, 51, 52, 53, 64, 104, 1024, 1536, MAX_BITS] {
            let x = rng.random_biguint(bits);
            let d = digits_of(&x);
            let d = d.as_flattened();
            let back = d
                .iter()
                .rev()
                .fold(BigUint::ZERO, |acc, &v| (acc << DIGIT) | BigUint::from(v));
            assert_eq!(back, x);
            assert!(d.iter().all(|&v| v <= MASK));
        }
    }

    #[test]
    fn base_2_round_matches_num_bigint() {
        if Ifma::detect().is_none() {
            eprintln!("no AVX-512 IFMA on this CPU: kernel not tested here");
            return;
        }
        let mut rng = rand::rng();
        for bits in [
            5u64, 52, 53, 64, 100, 104, 105, 511, 1023, 1024, 1535, 1536, MAX_BITS,
        ] {
            for _ in 0..40 {
                let n = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
                let got = base_2_round(&n).expect("runs at this size");
                assert_eq!(got, reference(&n), "n={n}");
            }
        }
        // Known answers: 2^127 - 1 is prime, 2047 = 23·89 is a base-2 strong pseudoprime,
        // 3·5·7·... composites fail.
        assert_eq!(
            base_2_round(&((BigUint::one() << 127u32) - 1u32)),
            Some(true)
        );
        assert_eq!(base_2_round(&BigUint::from(2047u32)), Some(true));
        assert_eq!(base_2_round(&BigUint::from(561u32)), Some(false));
        let too_long = (BigUint::one() << (MAX_BITS + 1)) - 1u32;
        assert_eq!(base_2_round(&too_long), None);
        // And primes of the generated sizes pass.
        for bits in [1024u64, 1536] {
            let p = crate::test_primes::random_prime(bits);
            assert_eq!(base_2_round(&p), Some(true));
        }
    }

    #[test]
    fn pairs_match_single_rounds() {
        if Ifma::detect().is_none() {
            return;
        }
        let mut rng = rand::rng();
        for bits in [64u64, 1024, 1536] {
            let p = crate::test_primes::random_prime(bits);
            for _ in 0..30 {
                let n = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
                // n - 1 with many trailing zeros too: exponents of different lengths.
                let m = ((&n >> 12u32) << 12u32) | BigUint::one();
                for pair in [[&n, &p], [&p, &n], [&n, &m], [&m, &m]] {
                    let got = base_2_round_pair(pair).expect("same length");
                    assert_eq!(got, pair.map(reference), "{pair:?}");
                }
            }
        }
        let short = BigUint::from(1_000_003u32);
        let long = (BigUint::one() << 127u32) - 1u32;
        assert_eq!(base_2_round_pair([&short, &long]), None);
    }

    /// The base-2 round gives the same verdicts with and without the kernel (the scalar path,
    /// `Modulus::pow_two`, runs on this thread when forced): primes pass, products of primes
    /// fail.
    #[test]
    fn primality_is_the_same_on_the_scalar_path() {
        use crate::test_primes::random_prime;
        let p = random_prime(1024);
        let q = random_prime(512);
        let r = random_prime(512);
        let cases = [
            (p.clone(), true),
            (&q * &r, false),
            (&p * random_prime(64), false),
        ];
        let scalar_round = |n: &BigUint| {
            let ctx = crate::Modulus::new(n).expect("odd");
            let n_minus_1 = n - 1u32;
            let s = n_minus_1.trailing_zeros().unwrap_or(0);
            let mut x = ctx.from_residue(&ctx.pow_two(&(&n_minus_1 >> s)));
            if x.is_one() || x == n_minus_1 {
                return true;
            }
            for _ in 1..s {
                x = &x * &x % n;
                if x == n_minus_1 {
                    return true;
                }
            }
            false
        };
        for force in [false, true] {
            FORCE_SCALAR.with(|f| f.set(force));
            for (n, prime) in &cases {
                let verdict = base_2_round(n).unwrap_or_else(|| scalar_round(n));
                assert_eq!(verdict, *prime, "scalar: {force}");
                assert_eq!(reference(n), *prime);
            }
        }
        FORCE_SCALAR.with(|f| f.set(false));
    }

    #[test]
    fn products_match_num_bigint_with_edge_digits() {
        let Some(token) = Ifma::detect() else {
            return;
        };
        let mut rng = rand::rng();
        for bits in [53u64, 1024, 1536, MAX_BITS] {
            // Moduli with all-ones digits stress the lane sums and the final subtraction.
            let all_ones = (BigUint::one() << bits) - 1u32;
            let random = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
            for n in [all_ones, random] {
                let k = (bits / u64::from(DIGIT) + 1) as usize;
                let m = digits_of(&n);
                let ctx = Context {
                    token,
                    k,
                    m,
                    m_inv: neg_inv_52(m[0][0]),
                };
                let r_inv = (BigUint::one() << (u64::from(DIGIT) * k as u64))
                    .modinv(&n)
                    .unwrap();
                for x in [
                    BigUint::ZERO,
                    BigUint::one(),
                    &n - 1u32,
                    rng.random_biguint_below(&n),
                ] {
                    let y = rng.random_biguint_below(&n);
                    let got = ctx.mul(&digits_of(&x), &digits_of(&y));
                    let expected = &x * &y * &r_inv % &n;
                    assert_eq!(got, digits_of(&expected), "bits={bits}");
                    let mut dbl = digits_of(&x);
                    ctx.double(&mut dbl);
                    assert_eq!(dbl, digits_of(&(&x * 2u32 % &n)));
                }
            }
        }
    }

    /// The lengths the exponentiation kernel accepts that matter: the ends of its range, the
    /// key sizes' moduli, and both sides of every digit-count and vector-count step
    /// (k = ⌈(bits+2)/52⌉ digits, ⌈k/8⌉ vectors) and of u64 limb boundaries.
    fn pow_lengths() -> Vec<u64> {
        let mut v = vec![
            POW_MIN_BITS,
            1024,
            1025,
            1535,
            1536,
            2047,
            2048,
            2049,
            3072,
            4095,
            4096,
            4097,
            6144,
            POW_MAX_BITS,
        ];
        for vectors in 1..=POW_MAX_VECTORS as u64 {
            // k = 8·vectors (the longest of this vector count) and 8·vectors + 1.
            v.extend([416 * vectors - 3, 416 * vectors - 2, 416 * vectors - 1]);
        }
        // A digit step inside a vector: k = 25 → 26.
        v.extend([52 * 25 - 2, 52 * 25 - 1]);
        v.retain(|b| (POW_MIN_BITS..=POW_MAX_BITS).contains(b));
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn limbs_digits_round_trip() {
        let mut rng = rand::rng();
        for bits in [1u64, 63, 64, 65, 104, 2048, 4096, POW_MAX_BITS] {
            let x = rng.random_biguint(bits) | (BigUint::one() << (bits - 1));
            let limbs: Vec<u64> = x.iter_u64_digits().collect();
            let mut digits = vec![0u64; (bits as usize).div_ceil(52).next_multiple_of(8)];
            digits_from_limbs(&limbs, &mut digits);
            assert!(digits.iter().all(|&d| d <= MASK));
            let mut back = vec![0u64; limbs.len()];
            limbs_from_digits(&digits, &mut back);
            assert_eq!(back, limbs, "bits={bits}");
        }
    }

    #[test]
    fn pow_range() {
        let big = |bits: u64| (BigUint::one() << (bits - 1)) | BigUint::one();
        let ctx = |m: &BigUint| PowContext::new(m, &BigUint::one(), |x| x.clone());
        assert!(ctx(&big(POW_MIN_BITS - 1)).is_none());
        assert!(ctx(&big(POW_MIN_BITS)).is_some());
        assert!(ctx(&big(POW_MAX_BITS)).is_some());
        assert!(ctx(&big(POW_MAX_BITS + 1)).is_none());
        assert!(ctx(&(BigUint::one() << 2047u32)).is_none(), "even");
    }

    /// `Modulus::pow` (which runs this kernel at these lengths on an IFMA CPU) against
    /// num-bigint's `modpow` and against the scalar kernel, on random and edge inputs.
    #[test]
    fn pow_matches_num_bigint_and_scalar_path() {
        if Ifma::detect().is_none() {
            eprintln!("no AVX-512 IFMA on this CPU: kernel not tested here");
            return;
        }
        let mut rng = rand::rng();
        for bits in pow_lengths() {
            let all_ones = (BigUint::one() << bits) - 1u32;
            let random = rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1));
            // Top digit just above the previous power of 2: the smallest modulus of its length.
            let lowest = (BigUint::one() << (bits - 1)) | BigUint::one();
            for m in [all_ones, random, lowest] {
                let md = crate::Modulus::new(&m).unwrap();
                let m1 = &m - 1u32;
                // Full-length exponents where num-bigint's reference stays affordable.
                let long = rng.random_biguint(bits.min(1100));
                let exps = [
                    BigUint::ZERO,
                    BigUint::one(),
                    BigUint::from(2u8),
                    BigUint::from(3u8),
                    BigUint::from(0xffffu32),
                    rng.random_biguint(17) | (BigUint::one() << 16u32),
                    (BigUint::one() << 200u32) - 1u32,
                    (BigUint::one() << 200u32) | BigUint::one(),
                    long,
                ];
                let bases = [
                    BigUint::ZERO,
                    BigUint::one(),
                    BigUint::from(2u8),
                    m1.clone(),
                    rng.random_biguint_below(&m),
                ];
                for (i, x) in bases.iter().enumerate() {
                    for (j, e) in exps.iter().enumerate() {
                        // The reference on the long exponent only for two bases (its cost).
                        if j == exps.len() - 1 && i < 3 {
                            continue;
                        }
                        let got = md.pow_plain(x, e);
                        assert_eq!(got, x.modpow(e, &m), "bits={bits} m={m} x={x} e={e}");
                    }
                }
                // The scalar kernel on this thread gives the same residues.
                let x = md.to_residue(&bases[4]);
                let e = rng.random_biguint(bits);
                let fast = md.pow(&x, &e);
                FORCE_SCALAR.with(|f| f.set(true));
                let slow = md.pow(&x, &e);
                FORCE_SCALAR.with(|f| f.set(false));
                assert_eq!(fast, slow, "bits={bits} m={m}");
            }
        }
    }

    /// `Modulus::pow_pair` (side by side on this kernel when both moduli have the same digit
    /// count) against num-bigint, with exponents of different lengths, zero and one, and edge
    /// bases; pairs of different digit counts take the single path.
    #[test]
    fn pow_pair_matches_num_bigint() {
        use crate::Modulus;
        if Ifma::detect().is_none() {
            return;
        }
        let mut rng = rand::rng();
        let mut lengths = pow_lengths();
        lengths.push(POW_MIN_BITS - 1); // outside the range: the fallback
        for bits in lengths {
            let all_ones = (BigUint::one() << bits) - 1u32;
            let random = |rng: &mut rand::rngs::ThreadRng| {
                rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1))
            };
            // One bit shorter: the same digit count unless bits + 1 is a digit boundary.
            let shorter = random(&mut rng) >> 1u32 | BigUint::one();
            let moduli = [all_ones, random(&mut rng), shorter];
            for (m0, m1) in [(&moduli[0], &moduli[1]), (&moduli[1], &moduli[2])] {
                let (md0, md1) = (Modulus::new(m0).unwrap(), Modulus::new(m1).unwrap());
                let ebits = bits.min(600);
                let exps = [
                    (BigUint::ZERO, BigUint::ZERO),
                    (BigUint::ZERO, BigUint::one()),
                    (BigUint::one(), rng.random_biguint(ebits)),
                    (rng.random_biguint(ebits), BigUint::from(3u8)),
                    (rng.random_biguint(ebits), rng.random_biguint(ebits / 2)),
                    (
                        (BigUint::one() << ebits) - 1u32,
                        (BigUint::one() << (ebits - 1)) | BigUint::one(),
                    ),
                ];
                let bases = [
                    (BigUint::ZERO, BigUint::one()),
                    (m0 - 1u32, m1 - 1u32),
                    (rng.random_biguint_below(m0), rng.random_biguint_below(m1)),
                ];
                for (x0, x1) in &bases {
                    for (e0, e1) in &exps {
                        let (r0, r1) = (md0.to_residue(x0), md1.to_residue(x1));
                        let [y0, y1] = Modulus::pow_pair([(&md0, &r0, e0), (&md1, &r1, e1)]);
                        assert_eq!(md0.from_residue(&y0), x0.modpow(e0, m0), "bits={bits}");
                        assert_eq!(md1.from_residue(&y1), x1.modpow(e1, m1), "bits={bits}");
                    }
                }
            }
        }
        // Full-length exponents (window 7 and 8) against the scalar path.
        for bits in [2048u64, 3072, 3327, 4096, POW_MAX_BITS] {
            let m: Vec<BigUint> = (0..2)
                .map(|_| rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1)))
                .collect();
            let md: Vec<Modulus> = m.iter().map(|m| Modulus::new(m).unwrap()).collect();
            let x: Vec<Residue> = (0..2)
                .map(|j| md[j].to_residue(&rng.random_biguint_below(&m[j])))
                .collect();
            let e = [rng.random_biguint(bits), rng.random_biguint(bits - 70)];
            let fast = Modulus::pow_pair([(&md[0], &x[0], &e[0]), (&md[1], &x[1], &e[1])]);
            FORCE_SCALAR.with(|f| f.set(true));
            let slow = [md[0].pow(&x[0], &e[0]), md[1].pow(&x[1], &e[1])];
            FORCE_SCALAR.with(|f| f.set(false));
            assert_eq!(fast, slow, "bits={bits}");
        }
    }
}
