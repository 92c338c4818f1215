//! Montgomery arithmetic modulo one odd modulus: context, residues, exponentiation.

use super::limbs::COMBA_THRESHOLD;
use super::limbs::{
    Acc, add_n, addmul_1, adx, cmp_n, dot_rev, mul_basecase, mul_comba, mul_n, mul_scratch_len,
    rem_normalized, sqr_basecase, sqr_comba, sqr_n, sub_assign_n, sub_n,
};
use core::cmp::Ordering;
use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::One;

/// Exponents of at most this many bits use plain left-to-right square-and-multiply: no table
/// of odd powers to build, which wins for tiny scalars (7, 3). Longer ones, such as the ~56-bit
/// mantissas of float scalars, save more multiplications with a window than its table costs
/// (measured: about 12% faster at 56 bits with 3-bit windows).
const SHORT_EXP_BITS: u64 = 16;

/// Montgomery context for one odd modulus m > 1, built once per key (n², p², q², p, ...):
/// the modulus as limbs, `-m⁻¹ mod 2⁶⁴`, `R mod m` and `R² mod m` for `R = 2^(64·limbs)`.
#[derive(Clone, Debug)]
pub struct Modulus {
    m: BigUint,
    limbs: Box<[u64]>,
    /// `-m⁻¹ mod 2⁶⁴`: multiplying a limb by it gives the multiple of m that clears that limb.
    m_inv: u64,
    /// `R mod m`: one in Montgomery form.
    one: Box<[u64]>,
    /// `R² mod m`: multiplying by it (and reducing) converts into Montgomery form.
    r2: Box<[u64]>,
    /// `m` shifted left so its top limb's top bit is set (for division by m).
    m_norm: Box<[u64]>,
    /// The shift that normalises m.
    norm_shift: u32,
    /// The AVX-512 IFMA exponentiation context, made on the first [`Modulus::pow`] on a CPU
    /// that has IFMA (`None` inside when the modulus's length is outside the kernel's range).
    #[cfg(target_arch = "x86_64")]
    ifma: std::sync::OnceLock<Option<super::ifma::PowContext>>,
}

impl Drop for Modulus {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// A residue `x·R mod m` in Montgomery form for one [`Modulus`]: exactly as many limbs as
/// the modulus and always fully reduced (< m), so equality of residues is equality mod m.
/// Only meaningful with the `Modulus` that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residue(Box<[u64]>);

/// Little-endian u64 limbs of `x`, zero-padded to `n` limbs (`x` must fit).
fn limbs_of(x: &BigUint, n: usize) -> Vec<u64> {
    let mut v: Vec<u64> = x.iter_u64_digits().collect();
    debug_assert!(v.len() <= n);
    v.resize(n, 0);
    v
}

/// The `BigUint` with little-endian u64 limbs `l`.
pub(crate) fn big_of(l: &[u64]) -> BigUint {
    let mut v = Vec::with_capacity(2 * l.len());
    for &d in l {
        v.push(d as u32);
        v.push((d >> 32) as u32);
    }
    BigUint::new(v)
}

/// `out[..src.len()+1] = src << s` for `s < 64`.
fn shl_into(out: &mut [u64], src: &[u64], s: u32) {
    if s == 0 {
        out[..src.len()].copy_from_slice(src);
        out[src.len()] = 0;
        return;
    }
    let mut prev = 0u64;
    for (o, &x) in out.iter_mut().zip(src) {
        *o = (x << s) | (prev >> (64 - s));
        prev = x;
    }
    out[src.len()] = prev >> (64 - s);
}

/// `out = src >> s` for `s < 64` (equal lengths).
fn shr_into(out: &mut [u64], src: &[u64], s: u32) {
    if s == 0 {
        out.copy_from_slice(src);
        return;
    }
    let n = src.len();
    for i in 0..n {
        let hi = if i + 1 < n { src[i + 1] << (64 - s) } else { 0 };
        out[i] = (src[i] >> s) | hi;
    }
}

/// `-m0⁻¹ mod 2⁶⁴` for odd `m0`, by Newton iteration (each step doubles the correct bits,
/// and `m0` is its own inverse modulo 8).
fn neg_inv_u64(m0: u64) -> u64 {
    let mut x = m0;
    for _ in 0..5 {
        x = x.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(x)));
    }
    debug_assert_eq!(m0.wrapping_mul(x), 1);
    x.wrapping_neg()
}

/// Sliding-window width for an exponent of `bits` bits (GMP's crossover points: the table of
/// 2^(k-1) odd powers must pay for itself in saved multiplications).
fn window_bits(bits: u64) -> usize {
    match bits {
        0..=25 => 2,
        26..=81 => 3,
        82..=241 => 4,
        242..=673 => 5,
        674..=1793 => 6,
        1794..=4609 => 7,
        _ => 8,
    }
}

/// One step of a left-to-right sliding-window exponentiation (see [`sliding_windows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowStep {
    /// A zero bit between windows: square.
    Square,
    /// A window of `len` exponent bits with the odd value `value`: square `len` times, then
    /// multiply by base^value (the first window instead starts the accumulator at base^value).
    Window {
        /// Bits in the window.
        len: u32,
        /// Its value, odd.
        value: usize,
    },
}

/// The steps of a left-to-right sliding-window exponentiation over bits `bits - 1 ..= 0` of
/// an exponent (`bit(i)`, the top one set), with windows of at most `width` bits ending in a
/// one, so that a table of the odd powers base^1, base^3, ... base^(2^width - 1) serves.
/// Shared by the scalar and the IFMA kernels, which differ only in how they multiply.
pub(crate) fn sliding_windows(
    bits: u64,
    width: usize,
    bit: impl Fn(u64) -> bool,
) -> impl Iterator<Item = WindowStep> {
    let mut i = bits as i64 - 1;
    std::iter::from_fn(move || {
        if i < 0 {
            return None;
        }
        if !bit(i as u64) {
            i -= 1;
            return Some(WindowStep::Square);
        }
        // Window [j, i]: at most `width` bits, ending in a one.
        let mut j = (i - width as i64 + 1).max(0);
        while !bit(j as u64) {
            j += 1;
        }
        let value = (j..=i)
            .rev()
            .fold(0usize, |v, b| (v << 1) | bit(b as u64) as usize);
        let len = (i - j + 1) as u32;
        i = j - 1;
        Some(WindowStep::Window { len, value })
    })
}

/// Scratch space for one Montgomery operation: the double-length product and what the
/// product routines need below it.
struct Scratch {
    t: Vec<u64>,
    s: Vec<u64>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            t: vec![0; 2 * n],
            s: vec![0; mul_scratch_len(n)],
        }
    }
}

/// Fixed window width of [`Modulus::pow_secret`] for an exponent bound of `bits` bits (public):
/// the table of 2^w powers costs 2^w − 2 multiplications and saves one per w exponent bits.
fn secret_window_bits(bits: u64) -> u32 {
    if bits >= 512 { 5 } else { 4 }
}

/// All ones when `a == b`, else zero, without a branch on either.
pub(crate) fn eq_mask(a: u64, b: u64) -> u64 {
    let x = a ^ b;
    // The top bit of x | −x is set exactly when x ≠ 0.
    ((x | x.wrapping_neg()) >> 63).wrapping_sub(1)
}

/// `out = table[index]` for a table of `out.len()`-limb entries, reading every entry and
/// keeping the wanted one by mask: the memory accesses do not depend on `index`.
fn select_entry(table: &[u64], index: u64, out: &mut [u64]) {
    out.fill(0);
    for (j, entry) in table.chunks_exact(out.len()).enumerate() {
        let mask = core::hint::black_box(eq_mask(j as u64, index));
        for (o, &e) in out.iter_mut().zip(entry) {
            *o |= e & mask;
        }
    }
    #[cfg(test)]
    trace::record(trace::Op::Scan);
}

/// The u64 limbs of a secret exponent of at most `max_bits` bits, zero-padded to
/// `max_bits / 64 + 2` limbs (room for the last window to read one limb past the top), so
/// the limbs a window reads depend on `max_bits` only.
fn padded_exponent(exp: &BigUint, max_bits: u64) -> Vec<u64> {
    let mut e = vec![0u64; (max_bits / 64 + 2) as usize];
    for (slot, d) in e.iter_mut().zip(exp.iter_u64_digits()) {
        *slot = d;
    }
    e
}

/// Overwrites secret limbs with zeros in a way the optimiser keeps (the slice escapes into
/// `black_box` after the writes).
pub(crate) fn wipe(limbs: &mut [u64]) {
    limbs.fill(0);
    core::hint::black_box(&limbs);
}

/// Overwrites the digits of `x` in place, for a secret about to be dropped. num-bigint does not
/// expose its digit buffer, so this assigns `x` a value of the same number of digits (all
/// ones), which num-bigint writes into the buffer it already has (its capacity suffices), and
/// lets the result escape into `black_box` so the writes are not optimised away. Copies
/// num-bigint made earlier (when `x` was computed or grew) are beyond reach.
pub fn wipe_biguint(x: &mut BigUint) {
    let digits = x.iter_u32_digits().len().max(1);
    x.assign_from_slice(&vec![u32::MAX; digits]);
    core::hint::black_box(&*x);
}

/// The sequence of operations of the constant-time exponentiation, recorded per thread in
/// tests, so that a test can check that it does not depend on the exponent.
#[cfg(test)]
pub(crate) mod trace {
    use std::cell::RefCell;

    /// One step of [`super::Modulus::pow_secret`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Op {
        /// A Montgomery squaring.
        Square,
        /// A Montgomery multiplication.
        Multiply,
        /// A full scan of the table.
        Scan,
    }

    thread_local! {
        static OPS: RefCell<Vec<Op>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(op: Op) {
        OPS.with(|o| o.borrow_mut().push(op));
    }

    /// The operations recorded on this thread since the last call.
    pub(crate) fn take() -> Vec<Op> {
        OPS.with(|o| std::mem::take(&mut *o.borrow_mut()))
    }
}

impl Modulus {
    /// The context for `m`; `None` unless `m` is odd and greater than one.
    pub fn new(m: &BigUint) -> Option<Modulus> {
        if m.is_even() || *m <= BigUint::one() {
            return None;
        }
        let limbs: Box<[u64]> = m.iter_u64_digits().collect();
        let n = limbs.len();
        let m_inv = neg_inv_u64(limbs[0]);
        let one = limbs_of(&((BigUint::one() << (64 * n)) % m), n).into_boxed_slice();
        let r2 = limbs_of(&((BigUint::one() << (128 * n)) % m), n).into_boxed_slice();
        let norm_shift = limbs[n - 1].leading_zeros();
        let m_norm = limbs_of(&(m << norm_shift), n).into_boxed_slice();
        Some(Modulus {
            m: m.clone(),
            limbs,
            m_inv,
            one,
            r2,
            m_norm,
            norm_shift,
            #[cfg(target_arch = "x86_64")]
            ifma: std::sync::OnceLock::new(),
        })
    }

    /// The modulus.
    pub fn value(&self) -> &BigUint {
        &self.m
    }

    fn n(&self) -> usize {
        self.limbs.len()
    }

    /// Montgomery reduction: `out = t·R⁻¹ mod m` for `t < m·R` (2n limbs, clobbered).
    /// Each row's carry is parked in the limb the row just cleared and added back in one
    /// pass at the end, so no carry ever ripples through the upper half.
    fn redc(&self, t: &mut [u64], out: &mut [u64]) {
        // Rows of the assembly kernel beat columns at every size; without it, columns win
        // from COMBA_THRESHOLD limbs on.
        if adx().is_none() && self.n() >= COMBA_THRESHOLD {
            return self.redc_comba(t, out);
        }
        let n = self.n();
        let m = &self.limbs[..];
        let t = &mut t[..2 * n];
        for i in 0..n {
            let q = t[i].wrapping_mul(self.m_inv);
            let c = addmul_1(&mut t[i..i + n], m, q);
            t[i] = c;
        }
        let (lo, hi) = t.split_at(n);
        let carry = add_n(out, hi, lo);
        if carry != 0 || cmp_n(out, m) != Ordering::Less {
            sub_assign_n(out, m);
        }
    }

    /// Product-scanning Montgomery reduction (column by column). Column k < n fixes the
    /// multiple q_k of m that clears it; q_k is stored over t[k], which is no longer needed.
    fn redc_comba(&self, t: &mut [u64], out: &mut [u64]) {
        let carry = self.redc_comba_columns(t, out);
        let m = &self.limbs[..];
        if carry != 0 || cmp_n(out, m) != Ordering::Less {
            sub_assign_n(out, m);
        }
    }

    /// The columns of [`Modulus::redc_comba`], shared with [`Modulus::redc_comba_ct`]: writes
    /// t·R⁻¹ (mod m, below 2m) to `out` and returns the carry out of its top limb (0 or 1). The
    /// columns are straight-line: nothing here branches on the data.
    fn redc_comba_columns(&self, t: &mut [u64], out: &mut [u64]) -> u64 {
        let n = self.n();
        let m = &self.limbs[..];
        let mut acc = Acc::new();
        for k in 0..n {
            let (q, rest) = t.split_at_mut(k);
            acc.add(rest[0] as u128);
            dot_rev(&mut acc, q, &m[1..=k]);
            let qk = acc.w0.wrapping_mul(self.m_inv);
            rest[0] = qk;
            acc.mac(qk, m[0]);
            acc.shift();
        }
        let (q, hi) = t.split_at(n);
        for k in n..2 * n {
            acc.add(hi[k - n] as u128);
            dot_rev(&mut acc, &q[k + 1 - n..], &m[k + 1 - n..]);
            out[k - n] = acc.shift();
        }
        acc.w0 | acc.w1 | acc.w2
    }

    /// Overwrites the modulus and the values derived from it, in place (the [`Drop`] of a
    /// `Modulus` does this, as its modulus may be a secret: p², q², a candidate prime).
    fn wipe(&mut self) {
        wipe_biguint(&mut self.m);
        for limbs in [
            &mut self.limbs,
            &mut self.one,
            &mut self.r2,
            &mut self.m_norm,
        ] {
            wipe(limbs);
        }
        self.m_inv = 0;
        core::hint::black_box(&self.m_inv);
    }

    /// [`Modulus::redc_comba`] without a branch on the data: the columns are straight-line
    /// already; the final subtraction of m is computed always and kept by mask. `spare` is n
    /// limbs of scratch.
    fn redc_comba_ct(&self, t: &mut [u64], out: &mut [u64], spare: &mut [u64]) {
        let carry = self.redc_comba_columns(t, out);
        let borrow = sub_n(spare, out, &self.limbs);
        let take_difference = core::hint::black_box((carry | (borrow ^ 1)).wrapping_neg());
        for (o, &d) in out.iter_mut().zip(spare.iter()) {
            *o = (*o & !take_difference) | (d & take_difference);
        }
    }

    /// Montgomery reduction without a branch on the data: rows of `addmul_1` (straight-line
    /// on both the ADX and the portable kernel), then the final subtraction of m computed
    /// always and kept by mask. `spare` is n limbs of scratch.
    fn redc_ct(&self, t: &mut [u64], out: &mut [u64], spare: &mut [u64]) {
        let n = self.n();
        let m = &self.limbs[..];
        let t = &mut t[..2 * n];
        for i in 0..n {
            let q = t[i].wrapping_mul(self.m_inv);
            let c = addmul_1(&mut t[i..i + n], m, q);
            t[i] = c;
        }
        let (lo, hi) = t.split_at(n);
        let carry = add_n(out, hi, lo);
        let borrow = sub_n(spare, out, m);
        // The sum is at least m when it carried out or when subtracting m did not borrow.
        let take_difference = core::hint::black_box((carry | (borrow ^ 1)).wrapping_neg());
        for (o, &d) in out.iter_mut().zip(spare.iter()) {
            *o = (*o & !take_difference) | (d & take_difference);
        }
    }

    /// Whether the constant-time products scan columns (the portable kernel from
    /// `COMBA_THRESHOLD` limbs on, as the public path does) rather than rows of `addmul_1`
    /// (the ADX kernel, and short numbers). Depends only on the CPU and the modulus's length.
    fn ct_columns(&self) -> bool {
        adx().is_none() && self.n() >= COMBA_THRESHOLD
    }

    /// `out = a·b` in Montgomery form, constant time: the public path's schoolbook rows or
    /// columns (not Karatsuba, whose middle term branches on which half is larger) and a
    /// reduction whose final subtraction is a mask ([`Modulus::redc_ct`],
    /// [`Modulus::redc_comba_ct`]).
    fn mul_ct(&self, out: &mut [u64], a: &[u64], b: &[u64], w: &mut Scratch, spare: &mut [u64]) {
        if self.ct_columns() {
            mul_comba(&mut w.t, a, b);
            self.redc_comba_ct(&mut w.t, out, spare);
        } else {
            mul_basecase(&mut w.t, a, b);
            self.redc_ct(&mut w.t, out, spare);
        }
        #[cfg(test)]
        trace::record(trace::Op::Multiply);
    }

    /// `out = a²` in Montgomery form, constant time (see [`Modulus::mul_ct`]).
    fn sqr_ct(&self, out: &mut [u64], a: &[u64], w: &mut Scratch, spare: &mut [u64]) {
        if self.ct_columns() {
            sqr_comba(&mut w.t, a);
            self.redc_comba_ct(&mut w.t, out, spare);
        } else {
            sqr_basecase(&mut w.t, a);
            self.redc_ct(&mut w.t, out, spare);
        }
        #[cfg(test)]
        trace::record(trace::Op::Square);
    }

    /// `base^exp mod m` for a secret exponent below `2^max_bits` (`max_bits` public, e.g. the
    /// length of p for exponents p − 1 and p), in time and memory accesses that do not depend
    /// on the exponent: fixed windows of w bits over all `max_bits` bits (zero windows
    /// included), a table of all 2^w powers read in full for each window and selected by
    /// mask, a multiplication for every window, and Montgomery products whose final
    /// subtraction is a mask. On the IFMA kernel from 700 bits on where the CPU has it
    /// (`ifma::PowContext::pow_secret`), else on the scalar kernels (ADX rows, portable rows or
    /// columns; never Karatsuba). The exponent's limbs, the table and the scratch are zeroed
    /// before returning.
    ///
    /// # Panics
    /// If `exp` has more than `max_bits` bits.
    pub fn pow_secret(&self, base: &Residue, exp: &BigUint, max_bits: u64) -> Residue {
        assert!(exp.bits() <= max_bits, "exponent longer than its bound");
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = super::ifma::Ifma::detect()
            && let Some(ctx) = self.ifma_context()
        {
            let mut e = padded_exponent(exp, max_bits);
            let r = super::ifma::PowContext::pow_secret(
                token,
                [ctx],
                [&base.0],
                [&e],
                max_bits,
                secret_window_bits(max_bits),
            );
            wipe(&mut e);
            if let Some([r]) = r {
                return Residue(r.into_boxed_slice());
            }
        }
        self.pow_secret_scalar(base, exp, max_bits)
    }

    /// [`Modulus::pow_secret`] of two numbers, each with its own modulus and exponent under
    /// one public bound: the CRT halves of decryption and of the owner's encryption. On the
    /// IFMA kernel, when both moduli take the same digit count, the two run side by side (two
    /// dependency chains fill the vector units one leaves idle, as in [`Modulus::pow_pair`]);
    /// otherwise one after the other. Which path runs depends on the CPU and the moduli's
    /// lengths only.
    ///
    /// # Panics
    /// If an exponent has more than `max_bits` bits.
    pub fn pow_secret_pair(x: [(&Modulus, &Residue, &BigUint); 2], max_bits: u64) -> [Residue; 2] {
        assert!(
            x.iter().all(|(_, _, e)| e.bits() <= max_bits),
            "exponent longer than its bound"
        );
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = super::ifma::Ifma::detect()
            && let (Some(c0), Some(c1)) = (x[0].0.ifma_context(), x[1].0.ifma_context())
        {
            let mut e = x.map(|(_, _, e)| padded_exponent(e, max_bits));
            let r = super::ifma::PowContext::pow_secret(
                token,
                [c0, c1],
                [&x[0].1.0, &x[1].1.0],
                [&e[0], &e[1]],
                max_bits,
                secret_window_bits(max_bits),
            );
            for e in e.iter_mut() {
                wipe(e);
            }
            if let Some(r) = r {
                return r.map(|v| Residue(v.into_boxed_slice()));
            }
        }
        x.map(|(md, base, exp)| md.pow_secret(base, exp, max_bits))
    }

    /// [`Modulus::pow_secret`] on the scalar kernels (ADX rows or portable rows/columns).
    fn pow_secret_scalar(&self, base: &Residue, exp: &BigUint, max_bits: u64) -> Residue {
        let n = self.n();
        let width = secret_window_bits(max_bits);
        let windows = max_bits.div_ceil(u64::from(width));
        let mut e = padded_exponent(exp, max_bits);
        let mut w = Scratch::new(n);
        let mut spare = vec![0u64; n];
        // table[j] = base^j, j < 2^width.
        let entries = 1usize << width;
        let mut table = vec![0u64; entries * n];
        table[..n].copy_from_slice(&self.one);
        table[n..2 * n].copy_from_slice(&base.0);
        for j in 2..entries {
            let (prev, cur) = table.split_at_mut(j * n);
            self.mul_ct(
                &mut cur[..n],
                &prev[(j - 1) * n..],
                &base.0,
                &mut w,
                &mut spare,
            );
        }
        let mut acc = self.one.to_vec();
        let mut tmp = vec![0u64; n];
        let mut entry = vec![0u64; n];
        let window_mask = (1u64 << width) - 1;
        for i in (0..windows).rev() {
            // Public positions: which limbs to read depends on i only.
            let pos = i * u64::from(width);
            let (limb, shift) = ((pos / 64) as usize, pos % 64);
            let mut value = e[limb] >> shift;
            if shift + u64::from(width) > 64 {
                value |= e[limb + 1] << (64 - shift);
            }
            for _ in 0..width {
                self.sqr_ct(&mut tmp, &acc, &mut w, &mut spare);
                core::mem::swap(&mut acc, &mut tmp);
            }
            select_entry(&table, value & window_mask, &mut entry);
            self.mul_ct(&mut tmp, &acc, &entry, &mut w, &mut spare);
            core::mem::swap(&mut acc, &mut tmp);
        }
        for secret in [
            &mut e, &mut table, &mut tmp, &mut entry, &mut spare, &mut w.t, &mut w.s,
        ] {
            wipe(secret);
        }
        Residue(acc.into_boxed_slice())
    }

    fn mul_into(&self, out: &mut [u64], a: &[u64], b: &[u64], w: &mut Scratch) {
        mul_n(&mut w.t, a, b, &mut w.s);
        self.redc(&mut w.t, out);
    }

    fn sqr_into(&self, out: &mut [u64], a: &[u64], w: &mut Scratch) {
        sqr_n(&mut w.t, a, &mut w.s);
        self.redc(&mut w.t, out);
    }

    /// Limbs of `x mod m`.
    fn reduced_limbs(&self, x: &BigUint) -> Vec<u64> {
        if x.bits() > self.m.bits() || x >= &self.m {
            limbs_of(&(x % &self.m), self.n())
        } else {
            limbs_of(x, self.n())
        }
    }

    /// `x` (any size) in Montgomery form.
    pub fn to_residue(&self, x: &BigUint) -> Residue {
        let mut x = self.reduced_limbs(x);
        let mut w = Scratch::new(self.n());
        let a = x.clone();
        self.mul_into(&mut x, &a, &self.r2, &mut w);
        Residue(x.into_boxed_slice())
    }

    /// The ordinary value (< m) of a residue.
    // The context converts its own residues, as `to_residue` converts into them.
    #[allow(clippy::wrong_self_convention)]
    pub fn from_residue(&self, x: &Residue) -> BigUint {
        let n = self.n();
        let mut t = vec![0u64; 2 * n];
        t[..n].copy_from_slice(&x.0);
        let mut out = vec![0u64; n];
        self.redc(&mut t, &mut out);
        big_of(&out)
    }

    /// One in Montgomery form.
    pub fn one(&self) -> Residue {
        Residue(self.one.clone())
    }

    /// `a·b mod m`.
    pub fn mul(&self, a: &Residue, b: &Residue) -> Residue {
        let mut out = vec![0u64; self.n()];
        self.mul_into(&mut out, &a.0, &b.0, &mut Scratch::new(self.n()));
        Residue(out.into_boxed_slice())
    }

    /// `a² mod m`.
    pub fn square(&self, a: &Residue) -> Residue {
        let mut out = vec![0u64; self.n()];
        self.sqr_into(&mut out, &a.0, &mut Scratch::new(self.n()));
        Residue(out.into_boxed_slice())
    }

    /// The inverse of the residue `x` for a modulus that is the square of the odd `root`
    /// (n² with root n), or `None` when x is not a unit. The inverse is found modulo `root`
    /// (Lehmer on numbers half as long, about a quarter of the work) and lifted to root² by one
    /// Newton (Hensel) step y·(2 − x·y): if x·y = 1 + k·root then
    /// x·y·(2 − x·y) = 1 − k²·root² ≡ 1 (mod root²). All in Montgomery form, so no conversions
    /// of the result.
    pub fn inverse_mod_square(&self, x: &Residue, root: &BigUint) -> Option<Residue> {
        debug_assert_eq!(&(root * root), &self.m);
        let plain = self.from_residue(x);
        let y = super::mod_inverse(&(plain % root), root)?;
        let ry = self.to_residue(&y);
        let xy = self.mul(x, &ry);
        // t = 2 − x·y in Montgomery form: (1 + 1) − x·y, each step reduced modulo m.
        let m = &self.limbs[..];
        let mut t = self.one.to_vec();
        let carry = super::limbs::add_assign_n(&mut t, &self.one);
        if carry != 0 || cmp_n(&t, m) != Ordering::Less {
            sub_assign_n(&mut t, m);
        }
        if sub_assign_n(&mut t, &xy.0) != 0 {
            super::limbs::add_assign_n(&mut t, m);
        }
        Some(self.mul(&ry, &Residue(t.into_boxed_slice())))
    }

    /// `x·(1 + root·k) mod m` for a modulus that is the square of `root` (Paillier's
    /// c·g^k with g = n + 1), `k < root`. Since root·y mod root² = root·(y mod root), this is
    /// x + root·((x mod root)·k mod root): products and divisions of half-length numbers
    /// instead of a conversion into Montgomery form and a full modular multiplication. It
    /// works on x in Montgomery form as well (multiplying by an ordinary value keeps the R).
    pub fn mul_one_plus_root_multiple(&self, x: &Residue, root: &BigUint, k: &BigUint) -> Residue {
        debug_assert_eq!(&(root * root), &self.m);
        debug_assert!(k < root);
        let xb = big_of(&x.0);
        let t = (&xb % root) * k % root;
        let mut sum = xb + root * t;
        if sum >= self.m {
            sum -= &self.m;
        }
        Residue(limbs_of(&sum, self.n()).into_boxed_slice())
    }

    /// The IFMA exponentiation context, made on first use; `None` when the modulus's length
    /// is outside the kernel's range.
    #[cfg(target_arch = "x86_64")]
    fn ifma_context(&self) -> Option<&super::ifma::PowContext> {
        self.ifma
            .get_or_init(|| {
                super::ifma::PowContext::new(&self.m, &big_of(&self.one), |x| {
                    self.from_residue(&Residue(limbs_of(x, self.n()).into_boxed_slice()))
                })
            })
            .as_ref()
    }

    /// Two exponentiations `base^exp` (each with its own modulus, variable time in the
    /// exponents), the CRT halves of decryption and owner encryption. On the IFMA kernel,
    /// when it takes both moduli at the same digit count and they are short enough to gain,
    /// they run side by side: one exponentiation's multiplications form a single dependency
    /// chain that leaves the vector units partly idle at these lengths, and two chains fill
    /// them. Otherwise one after the other, as [`Modulus::pow`].
    pub fn pow_pair(x: [(&Modulus, &Residue, &BigUint); 2]) -> [Residue; 2] {
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = super::ifma::Ifma::detect()
            && let (Some(c0), Some(c1)) = (x[0].0.ifma_context(), x[1].0.ifma_context())
        {
            let bits = x[0].2.bits().max(x[1].2.bits());
            if bits > 0 {
                let e = x.map(|(_, _, e)| e.iter_u64_digits().collect::<Vec<u64>>());
                // Fixed windows of all 2^w powers: one bit shorter than the sliding windows,
                // whose table holds only the odd half.
                let window = window_bits(bits) - 1;
                if let Some(r) = super::ifma::PowContext::pow_pair(
                    token,
                    [c0, c1],
                    [&x[0].1.0, &x[1].1.0],
                    [&e[0], &e[1]],
                    bits,
                    window,
                ) {
                    return r.map(|v| Residue(v.into_boxed_slice()));
                }
            }
        }
        x.map(|(md, base, exp)| md.pow(base, exp))
    }

    /// `base^exp mod m` (variable time in the exponent).
    pub fn pow(&self, base: &Residue, exp: &BigUint) -> Residue {
        let e: Vec<u64> = exp.iter_u64_digits().collect();
        Residue(self.pow_limbs(&base.0, &e).into_boxed_slice())
    }

    /// `2^exp mod m` in Montgomery form (variable time in the exponent): the base-2
    /// Miller–Rabin round of prime generation. Left to right, each one bit of the exponent
    /// costs a doubling (an addition and a conditional subtraction) instead of a Montgomery
    /// multiplication, and there is no table of odd powers: only the squarings remain, about
    /// 15% less work than [`Modulus::pow`] on a full-length exponent.
    pub fn pow_two(&self, exp: &BigUint) -> Residue {
        let n = self.n();
        let m = &self.limbs[..];
        let bits = exp.bits();
        if bits == 0 {
            return self.one();
        }
        let mut w = Scratch::new(n);
        let mut acc = self.one.to_vec();
        let mut tmp = vec![0u64; n];
        // Doubling in Montgomery form: 2·(xR) = (2x)R, reduced by one conditional subtraction
        // since both terms are below m.
        let double = |x: &mut [u64]| {
            let carry = super::limbs::shl1_n(x);
            if carry != 0 || cmp_n(x, m) != Ordering::Less {
                sub_assign_n(x, m);
            }
        };
        // The top bit: acc = 2 (no squaring of one needed).
        double(&mut acc);
        for i in (0..bits - 1).rev() {
            self.sqr_into(&mut tmp, &acc, &mut w);
            core::mem::swap(&mut acc, &mut tmp);
            if exp.bit(i) {
                double(&mut acc);
            }
        }
        Residue(acc.into_boxed_slice())
    }

    /// `a·b mod m` for ordinary (non-Montgomery) values of any size: one product and one
    /// division by m (Knuth D on the normalised modulus), about half the work of converting
    /// into Montgomery form and back.
    pub fn mul_plain(&self, a: &BigUint, b: &BigUint) -> BigUint {
        let n = self.n();
        if n == 1 {
            let m = self.limbs[0] as u128;
            let a = self.reduced_limbs(a)[0] as u128;
            let b = self.reduced_limbs(b)[0] as u128;
            return BigUint::from((a * b % m) as u64);
        }
        let a = self.reduced_limbs(a);
        let b = self.reduced_limbs(b);
        // u = (a·b) << shift, with a spare top limb.
        let mut u = vec![0u64; 2 * n + 1];
        let mut w = Scratch::new(n);
        mul_n(&mut w.t, &a, &b, &mut w.s);
        shl_into(&mut u, &w.t, self.norm_shift);
        rem_normalized(&mut u, &self.m_norm);
        let mut r = vec![0u64; n];
        shr_into(&mut r, &u[..n], self.norm_shift);
        big_of(&r)
    }

    /// `base^exp mod m` for ordinary values (the tests' reference path through the residues).
    #[cfg(test)]
    pub fn pow_plain(&self, base: &BigUint, exp: &BigUint) -> BigUint {
        let r = self.to_residue(base);
        self.from_residue(&self.pow(&r, exp))
    }

    /// Exponentiation on limbs: plain square-and-multiply for short exponents, left-to-right
    /// sliding window over odd powers otherwise. All scratch is allocated once up front.
    fn pow_limbs(&self, base: &[u64], e: &[u64]) -> Vec<u64> {
        let n = self.n();
        let bits = e
            .iter()
            .rposition(|&d| d != 0)
            .map_or(0, |i| 64 * i as u64 + 64 - e[i].leading_zeros() as u64);
        if bits == 0 {
            return self.one.to_vec();
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = super::ifma::Ifma::detect()
            && let Some(ctx) = self.ifma_context()
        {
            // A window of one bit is plain square-and-multiply, as below.
            let window = if bits <= SHORT_EXP_BITS {
                1
            } else {
                window_bits(bits)
            };
            return ctx.pow(token, base, e, bits, window);
        }
        let bit = |i: u64| (e[(i / 64) as usize] >> (i % 64)) & 1 == 1;
        let mut w = Scratch::new(n);
        let mut acc = base.to_vec();
        if bits <= SHORT_EXP_BITS {
            let mut tmp = vec![0u64; n];
            for i in (0..bits - 1).rev() {
                self.sqr_into(&mut tmp, &acc, &mut w);
                if bit(i) {
                    self.mul_into(&mut acc, &tmp, base, &mut w);
                } else {
                    core::mem::swap(&mut acc, &mut tmp);
                }
            }
            return acc;
        }
        let k = window_bits(bits);
        // table[j] = base^(2j+1)
        let entries = 1usize << (k - 1);
        let mut table = vec![0u64; entries * n];
        table[..n].copy_from_slice(base);
        if entries > 1 {
            let mut b2 = vec![0u64; n];
            self.sqr_into(&mut b2, base, &mut w);
            for j in 1..entries {
                let (prev, cur) = table.split_at_mut(j * n);
                self.mul_into(&mut cur[..n], &prev[(j - 1) * n..], &b2, &mut w);
            }
        }
        let mut tmp = vec![0u64; n];
        let mut first = true;
        for step in sliding_windows(bits, k, bit) {
            let len = match step {
                WindowStep::Square => 1,
                WindowStep::Window { len, .. } if !first => len,
                WindowStep::Window { .. } => 0,
            };
            for _ in 0..len {
                self.sqr_into(&mut tmp, &acc, &mut w);
                core::mem::swap(&mut acc, &mut tmp);
            }
            if let WindowStep::Window { value, .. } = step {
                let entry = &table[(value >> 1) * n..][..n];
                if first {
                    acc.copy_from_slice(entry);
                    first = false;
                } else {
                    self.mul_into(&mut tmp, &acc, entry, &mut w);
                    core::mem::swap(&mut acc, &mut tmp);
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigRng010;
    use proptest::prelude::*;

    fn odd_modulus(limbs: usize, seed: u64) -> BigUint {
        let mut v: Vec<u64> = (0..limbs as u64)
            .map(|i| {
                (seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .wrapping_mul(0xd134_2543_de82_ef95)
                    .rotate_left((i % 63) as u32)
            })
            .collect();
        v[0] |= 1;
        if v[limbs - 1] == 0 {
            v[limbs - 1] = 1;
        }
        let m = big_of(&v);
        if m == BigUint::one() {
            BigUint::from(3u8)
        } else {
            m
        }
    }

    /// Exponents for the constant-time tests: the edges (0, 1, all ones, the top bit alone,
    /// the top bit and the lowest) and random ones of every length up to the bound.
    fn secret_exponents(max_bits: u64) -> Vec<BigUint> {
        let mut rng = rand::rng();
        let top = BigUint::one() << (max_bits - 1);
        let mut exps = vec![
            BigUint::ZERO,
            BigUint::one(),
            BigUint::from(2u8),
            (BigUint::one() << max_bits) - 1u8,
            top.clone(),
            &top + 1u8,
            &top - 1u8,
        ];
        for _ in 0..6 {
            exps.push(rng.random_biguint(max_bits));
            let len = rng.random_range(1..=max_bits);
            exps.push(rng.random_biguint(len));
        }
        // 2 does not fit a one-bit bound.
        exps.retain(|e| e.bits() <= max_bits);
        exps
    }

    #[cfg(target_arch = "x86_64")]
    /// Forces this thread onto one kernel: `Ifma` (whatever this CPU has), `Adx` (no IFMA),
    /// `Portable` (neither).
    fn force_kernel(kernel: crate::KernelLimit) {
        #[cfg(target_arch = "x86_64")]
        {
            crate::ifma::FORCE_SCALAR.with(|f| f.set(kernel < crate::KernelLimit::Ifma));
            crate::adx::FORCE_PORTABLE.with(|f| f.set(kernel < crate::KernelLimit::Adx));
        }
    }

    fn pow_secret_matches_modpow_on_this_thread() {
        let mut rng = rand::rng();
        // Below and above the column threshold of the portable kernel (24 limbs) and the IFMA
        // kernel's shortest modulus (700 bits), up to p² of 3072-bit keys and n of 4096-bit ones
        // (IFMA: 3 to 10 vectors).
        for limbs in [1usize, 2, 5, 11, 12, 16, 17, 24, 32, 48, 64] {
            for _ in 0..2 {
                let m = rng.random_biguint(64 * limbs as u64) | BigUint::one();
                let Some(md) = Modulus::new(&m) else { continue };
                // Bounds around the window widths, and the lengths of p − 1 against p².
                for max_bits in [1u64, 4, 5, 63, 64, 65, 511, 512, 32 * limbs as u64 + 3] {
                    let b = rng.random_biguint_below(&m);
                    let rb = md.to_residue(&b);
                    for e in secret_exponents(max_bits) {
                        assert_eq!(
                            md.from_residue(&md.pow_secret(&rb, &e, max_bits)),
                            b.modpow(&e, &m),
                            "m={m} b={b} e={e} max_bits={max_bits}"
                        );
                    }
                }
                // Edge bases: 0, 1, m − 1.
                for b in [BigUint::ZERO, BigUint::one(), &m - 1u8] {
                    let rb = md.to_residue(&b);
                    for e in secret_exponents(130) {
                        assert_eq!(
                            md.from_residue(&md.pow_secret(&rb, &e, 130)),
                            b.modpow(&e, &m)
                        );
                    }
                }
                // Moduli of all ones (the largest of their length): the final masked subtraction.
                let all_ones = (BigUint::one() << (64 * limbs)) - 1u8;
                let md = Modulus::new(&all_ones).unwrap();
                let b = &all_ones - 2u8;
                let rb = md.to_residue(&b);
                for e in secret_exponents(70) {
                    assert_eq!(
                        md.from_residue(&md.pow_secret(&rb, &e, 70)),
                        b.modpow(&e, &all_ones)
                    );
                }
            }
        }
    }

    /// The pair (CRT halves) against num-bigint: moduli of the same length (side by side on
    /// IFMA), of lengths one bit apart, and of different limb counts (one after the other).
    fn pow_secret_pair_matches_modpow_on_this_thread() {
        let mut rng = rand::rng();
        for bits in [600u64, 1024, 1536, 2048, 2049, 3072, 4096] {
            let odd = |rng: &mut rand::rngs::ThreadRng, bits: u64| {
                rng.random_biguint(bits) | BigUint::one() | (BigUint::one() << (bits - 1))
            };
            let m0 = odd(&mut rng, bits);
            for m1 in [
                odd(&mut rng, bits),
                odd(&mut rng, bits - 1),
                odd(&mut rng, bits + 130),
            ] {
                let (md0, md1) = (Modulus::new(&m0).unwrap(), Modulus::new(&m1).unwrap());
                let max_bits = bits / 2;
                let exps0 = secret_exponents(max_bits);
                let exps1 = secret_exponents(max_bits);
                for (e0, e1) in exps0.iter().zip(exps1.iter().rev()) {
                    let (x0, x1) = (rng.random_biguint_below(&m0), rng.random_biguint_below(&m1));
                    let (r0, r1) = (md0.to_residue(&x0), md1.to_residue(&x1));
                    let [y0, y1] =
                        Modulus::pow_secret_pair([(&md0, &r0, e0), (&md1, &r1, e1)], max_bits);
                    assert_eq!(md0.from_residue(&y0), x0.modpow(e0, &m0), "bits={bits}");
                    assert_eq!(md1.from_residue(&y1), x1.modpow(e1, &m1), "bits={bits}");
                }
            }
        }
    }

    /// The constant-time exponentiation agrees with num-bigint on random and edge exponents,
    /// moduli and bases, on the fastest kernels this CPU has (IFMA from 700 bits on where the
    /// CPU has it).
    #[test]
    fn pow_secret_matches_modpow() {
        pow_secret_matches_modpow_on_this_thread();
        pow_secret_pair_matches_modpow_on_this_thread();
    }

    /// And on the ADX scalar kernel (no IFMA).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pow_secret_matches_modpow_adx() {
        force_kernel(crate::KernelLimit::Adx);
        pow_secret_matches_modpow_on_this_thread();
        pow_secret_pair_matches_modpow_on_this_thread();
    }

    /// And on the portable kernel (neither ADX assembly nor IFMA).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pow_secret_matches_modpow_portable() {
        force_kernel(crate::KernelLimit::Portable);
        pow_secret_matches_modpow_on_this_thread();
        pow_secret_pair_matches_modpow_on_this_thread();
    }

    /// The constant-time exponentiation performs the same sequence of squarings,
    /// multiplications and table scans whatever the exponent (for one bound), on every
    /// kernel: nothing about the exponent's bits or length changes what it does.
    #[test]
    fn pow_secret_sequence_does_not_depend_on_the_exponent() {
        #[cfg(target_arch = "x86_64")]
        let kernels = [
            crate::KernelLimit::Ifma,
            crate::KernelLimit::Adx,
            crate::KernelLimit::Portable,
        ];
        #[cfg(not(target_arch = "x86_64"))]
        let kernels = [()];
        for kernel in kernels {
            #[cfg(target_arch = "x86_64")]
            force_kernel(kernel);
            let ifma = {
                #[cfg(target_arch = "x86_64")]
                {
                    crate::ifma::Ifma::detect().is_some()
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    false
                }
            };
            let _ = kernel;
            sequence_is_fixed(ifma);
        }
    }

    /// The sequence check of one kernel (`ifma`: whether the IFMA kernel takes moduli of 700
    /// bits or more on this thread).
    fn sequence_is_fixed(ifma: bool) {
        let mut rng = rand::rng();
        // Scalar (4 limbs), the portable kernel's columns from 24 limbs, IFMA from 700 bits.
        for (limbs, max_bits) in [
            (16usize, 512u64),
            (32, 1024),
            (48, 1536),
            (4, 100),
            (24, 700),
        ] {
            let on_ifma = ifma && limbs * 64 >= 700;
            let m = rng.random_biguint(64 * limbs as u64) | BigUint::one();
            let md = Modulus::new(&m).unwrap();
            let rb = md.to_residue(&rng.random_biguint_below(&m));
            let width = u64::from(secret_window_bits(max_bits));
            let windows = max_bits.div_ceil(width) as usize;
            let count = |ops: &[trace::Op], op| ops.iter().filter(|&&o| o == op).count();
            // 2^w − 2 multiplications for the table, then per window w squarings, one scan, one
            // multiplication; the IFMA path starts from the top window's entry instead of one
            // (a scan, no squarings, no multiplication).
            let (squares, multiplies) = if on_ifma {
                (
                    (windows - 1) * width as usize,
                    (1 << width) - 2 + windows - 1,
                )
            } else {
                (windows * width as usize, (1 << width) - 2 + windows)
            };
            for pair in [false, true] {
                trace::take();
                let mut sequences = Vec::new();
                let exps = secret_exponents(max_bits);
                for (e, f) in exps.iter().zip(exps.iter().rev()) {
                    if pair {
                        Modulus::pow_secret_pair([(&md, &rb, e), (&md, &rb, f)], max_bits);
                    } else {
                        md.pow_secret(&rb, e, max_bits);
                    }
                    sequences.push((e, trace::take()));
                }
                let (_, first) = &sequences[0];
                // A pair on IFMA is one sequence of paired operations; elsewhere two in a row.
                let runs = if pair && !on_ifma { 2 } else { 1 };
                assert_eq!(count(first, trace::Op::Square), runs * squares);
                assert_eq!(count(first, trace::Op::Scan), runs * windows);
                assert_eq!(count(first, trace::Op::Multiply), runs * multiplies);
                for (e, ops) in &sequences {
                    assert_eq!(ops, first, "exponent {e:x} changed the sequence");
                }
            }
        }
        // The variable-time path, for contrast, records nothing: the trace is the secret path's.
        md_pow_records_nothing();
    }

    fn md_pow_records_nothing() {
        let m = BigUint::from(1_000_003u32);
        let md = Modulus::new(&m).unwrap();
        md.pow(&md.to_residue(&BigUint::from(5u8)), &BigUint::from(77u8));
        assert!(trace::take().is_empty());
    }

    /// Wiping overwrites every digit: the value becomes all ones of the same length, whatever
    /// it was (one digit or many).
    #[test]
    fn wipe_overwrites_the_digits() {
        let mut rng = rand::rng();
        for bits in [1u64, 31, 64, 65, 1024, 1536] {
            let mut x = rng.random_biguint(bits) | (BigUint::one() << (bits - 1));
            let digits = x.iter_u32_digits().len() as u64;
            wipe_biguint(&mut x);
            assert_eq!(x, (BigUint::one() << (32 * digits)) - 1u8, "bits {bits}");
        }
        let mut m = Modulus::new(&(rng.random_biguint(1024) | BigUint::one())).unwrap();
        m.wipe();
        assert!(m.limbs.iter().chain(&*m.one).chain(&*m.r2).all(|&l| l == 0));
    }

    /// The masked selection returns exactly the asked entry, for every index.
    #[test]
    fn select_entry_picks_the_index() {
        let table: Vec<u64> = (0..32 * 3).map(|i| i * 7 + 1).collect();
        let mut out = vec![0u64; 3];
        for index in 0..32u64 {
            select_entry(&table, index, &mut out);
            assert_eq!(out, table[index as usize * 3..][..3]);
        }
        assert_eq!(eq_mask(5, 5), u64::MAX);
        assert_eq!(eq_mask(5, 4), 0);
        assert_eq!(eq_mask(0, 1 << 63), 0);
    }

    #[test]
    fn rejects_even_and_small() {
        assert!(Modulus::new(&BigUint::from(0u8)).is_none());
        assert!(Modulus::new(&BigUint::from(1u8)).is_none());
        assert!(Modulus::new(&BigUint::from(10u8)).is_none());
        assert!(Modulus::new(&BigUint::from(3u8)).is_some());
    }

    #[test]
    fn neg_inv_is_inverse() {
        for m0 in [1u64, 3, 5, u64::MAX, 0x1234_5678_9abc_def1] {
            assert_eq!(m0.wrapping_mul(neg_inv_u64(m0)), u64::MAX);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        #[test]
        fn ops_match_num_bigint(
            limbs in 1usize..=260,
            seed in any::<u64>(),
            ebits in 0u64..600,
            top_mod in any::<bool>(),
        ) {
            let mut rng = rand::rng();
            let mut m = odd_modulus(limbs, seed);
            if top_mod {
                m |= BigUint::one() << (64 * limbs - 1);
            }
            let md = Modulus::new(&m).unwrap();
            let a = rng.random_biguint(64 * limbs as u64 + 5);
            let b = rng.random_biguint_below(&m);
            let e = rng.random_biguint(ebits);
            // Round trip and equality.
            let ra = md.to_residue(&a);
            prop_assert_eq!(md.from_residue(&ra), &a % &m);
            let rb = md.to_residue(&b);
            prop_assert_eq!(md.from_residue(&md.mul(&ra, &rb)), &a * &b % &m);
            prop_assert_eq!(md.from_residue(&md.square(&ra)), &a * &a % &m);
            prop_assert_eq!(md.mul_plain(&a, &b), &a * &b % &m);
            prop_assert_eq!(md.from_residue(&md.pow(&ra, &e)), a.modpow(&e, &m));
            prop_assert_eq!(md.pow_plain(&b, &e), b.modpow(&e, &m));
            prop_assert_eq!(
                md.from_residue(&md.pow_two(&e)),
                BigUint::from(2u8).modpow(&e, &m)
            );
            // The inverse modulo a square, through the root.
            let root = odd_modulus(limbs.div_ceil(2), seed ^ 5);
            let sq = Modulus::new(&(&root * &root)).unwrap();
            let x = sq.to_residue(&a);
            let k = &b % &root;
            prop_assert_eq!(
                sq.from_residue(&sq.mul_one_plus_root_multiple(&x, &root, &k)),
                &a * (&root * &k + 1u8) % (&root * &root)
            );
            match sq.inverse_mod_square(&x, &root) {
                Some(inv) => prop_assert_eq!(sq.from_residue(&sq.mul(&inv, &x)), BigUint::one()),
                None => prop_assert!(crate::gcd(&a, &root) != BigUint::one()),
            }
            // A one-limb exponent takes the short path (no window table).
            let e64 = BigUint::from(e.iter_u64_digits().next().unwrap_or(0));
            prop_assert_eq!(md.from_residue(&md.pow(&rb, &e64)), b.modpow(&e64, &m));
        }
    }

    /// Exponentiation on the portable kernel (this thread only) matches num-bigint; the other
    /// tests cover the assembly kernel on CPUs that have it.
    #[test]
    fn portable_path_pow() {
        #[cfg(target_arch = "x86_64")]
        crate::adx::FORCE_PORTABLE.with(|f| f.set(true));
        // And not the IFMA kernel, which would take these lengths from 700 bits on.
        #[cfg(target_arch = "x86_64")]
        crate::ifma::FORCE_SCALAR.with(|f| f.set(true));
        assert!(adx().is_none());
        let mut rng = rand::rng();
        for limbs in [1usize, 3, 23, 24, 32, 48, 64, 96] {
            let m = odd_modulus(limbs, limbs as u64 * 31) | (BigUint::one() << (64 * limbs - 1));
            let md = Modulus::new(&m).unwrap();
            let b = rng.random_biguint_below(&m);
            for e in [
                BigUint::from(3u8),
                rng.random_biguint(56),
                rng.random_biguint(300),
            ] {
                assert_eq!(md.pow_plain(&b, &e), b.modpow(&e, &m));
            }
            let all_ones = (BigUint::one() << (64 * limbs)) - 1u8;
            assert_eq!(
                md.mul_plain(&all_ones, &all_ones),
                &all_ones * &all_ones % &m
            );
        }
    }

    #[test]
    fn edge_values() {
        edge_values_on_this_thread();
    }

    /// [`edge_values`] on the scalar kernel, which the IFMA kernel replaces for `pow` from
    /// 700 bits on where the CPU has it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn edge_values_scalar() {
        crate::ifma::FORCE_SCALAR.with(|f| f.set(true));
        edge_values_on_this_thread();
    }

    fn edge_values_on_this_thread() {
        let mut rng = rand::rng();
        for limbs in [1usize, 2, 16, 32, 63, 64, 65, 96, 130, 256] {
            for top in [false, true] {
                let mut m = odd_modulus(limbs, limbs as u64 * 77);
                if top {
                    m |= BigUint::one() << (64 * limbs - 1);
                }
                let md = Modulus::new(&m).unwrap();
                let m1 = &m - 1u32;
                let vals = [
                    BigUint::ZERO,
                    BigUint::one(),
                    m1.clone(),
                    m.clone(),
                    &m + 1u32,
                    &m * &m + 5u32,
                    rng.random_biguint_below(&m),
                ];
                let exps = [
                    BigUint::ZERO,
                    BigUint::one(),
                    BigUint::from(2u8),
                    BigUint::from(3u8),
                    BigUint::from(7u8),
                    BigUint::from(16u8).pow(5),
                    m1.clone(),
                    rng.random_biguint(56),
                    rng.random_biguint(m.bits() / 2) | BigUint::one(),
                    (rng.random_biguint(m.bits() / 2) >> 1u8) << 1u8,
                ];
                for x in &vals {
                    let rx = md.to_residue(x);
                    assert_eq!(md.from_residue(&rx), x % &m);
                    for y in &vals {
                        assert_eq!(md.mul_plain(x, y), x * y % &m);
                    }
                    // Keep the reference modpow affordable at the largest sizes.
                    for e in exps
                        .iter()
                        .filter(|e| e.bits() * (limbs * limbs) as u64 <= 1 << 24)
                    {
                        assert_eq!(md.pow_plain(x, e), x.modpow(e, &m), "m={m} x={x} e={e}");
                    }
                }
                for e in &exps {
                    let two = BigUint::from(2u8);
                    assert_eq!(
                        md.from_residue(&md.pow_two(e)),
                        two.modpow(e, &m),
                        "m={m} e={e}"
                    );
                }
                assert_eq!(md.from_residue(&md.one()), BigUint::one());
                assert_eq!(md.to_residue(&BigUint::one()), md.one());
                assert_eq!(md.to_residue(&m), md.to_residue(&BigUint::ZERO));
            }
        }
    }
}
