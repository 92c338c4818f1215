//! x86-64 row kernels with `mulx` (BMI2) and `adcx`/`adox` (ADX): with `ifma`, the crate's
//! only `unsafe`.
//!
//! `r += a·b` for one limb b is the inner loop of every schoolbook product, square and
//! Montgomery reduction here. Written in Rust, each limb's sum `lo + r[i] + hi_prev` is one
//! carry chain through the flags, which LLVM serialises (and spills); `adcx` and `adox` carry
//! through two different flags (CF and OF), so the two additions of each limb run as two
//! independent chains, and `mulx` multiplies without touching either flag.
//!
//! The kernels are chosen at run time: [`Adx::detect`] checks the CPU once (cached) and
//! returns a token only when both extensions are present, and the kernels take that token,
//! so no code path can execute the instructions on a CPU without them. The portable code in
//! `limbs` stays the fallback and the reference the tests compare these kernels with.

use std::sync::atomic::{AtomicU8, Ordering};

/// Proof that the running CPU has BMI2 and ADX (only [`Adx::detect`] makes one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Adx(());

/// 0: not yet checked, 1: absent, 2: present.
static DETECTED: AtomicU8 = AtomicU8::new(0);

#[cfg(test)]
thread_local! {
    /// Tests set this to run the portable code on a machine that has ADX.
    pub(crate) static FORCE_PORTABLE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

impl Adx {
    /// The token when the CPU has BMI2 and ADX. The feature check runs once per process;
    /// afterwards this is one relaxed atomic load.
    #[inline]
    pub(crate) fn detect() -> Option<Adx> {
        #[cfg(test)]
        if FORCE_PORTABLE.with(|f| f.get()) {
            return None;
        }
        match DETECTED.load(Ordering::Relaxed) {
            2 => Some(Adx(())),
            1 => None,
            _ => {
                let yes = crate::KernelLimit::get() >= crate::KernelLimit::Adx
                    && std::is_x86_feature_detected!("bmi2")
                    && std::is_x86_feature_detected!("adx");
                DETECTED.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes.then_some(Adx(()))
            }
        }
    }

    /// `r[..a.len()] += a·b`; returns the carry limb. Panics if `r` is shorter than `a`.
    #[inline]
    pub(crate) fn addmul_1(self, r: &mut [u64], a: &[u64], b: u64) -> u64 {
        assert!(r.len() >= a.len());
        let n = a.len();
        if n == 0 {
            return 0;
        }
        let carry: u64;
        // SAFETY:
        // - `self` exists only if the CPU has BMI2 (mulx) and ADX (adcx/adox).
        // - The loops read exactly `n` limbs from `a` and read and write exactly `n` limbs of
        //   `r` (4 per iteration for n/4 iterations, then 1 per iteration for n%4), and
        //   `r.len() >= n` was asserted; both pointers come from live slices.
        // - `r` is a `&mut` borrow, so it cannot alias `a`.
        // - Only the declared registers and the flags are modified; no stack is used.
        unsafe {
            core::arch::asm!(
                // c = 0, and CF = OF = 0.
                "xor {c:e}, {c:e}",
                "2:",
                "jrcxz 3f",
                "mulx {h}, {l}, [{a}]",
                "adcx {l}, [{r}]",
                "adox {l}, {c}",
                "mov [{r}], {l}",
                "mulx {c}, {l}, [{a} + 8]",
                "adcx {l}, [{r} + 8]",
                "adox {l}, {h}",
                "mov [{r} + 8], {l}",
                "mulx {h}, {l}, [{a} + 16]",
                "adcx {l}, [{r} + 16]",
                "adox {l}, {c}",
                "mov [{r} + 16], {l}",
                "mulx {c}, {l}, [{a} + 24]",
                "adcx {l}, [{r} + 24]",
                "adox {l}, {h}",
                "mov [{r} + 24], {l}",
                // lea and jrcxz leave CF and OF alone, so both chains survive the loop.
                "lea {a}, [{a} + 32]",
                "lea {r}, [{r} + 32]",
                "lea rcx, [rcx - 1]",
                "jmp 2b",
                "3:",
                "mov rcx, {rem}",
                "4:",
                "jrcxz 5f",
                "mulx {h}, {l}, [{a}]",
                "adcx {l}, [{r}]",
                "adox {l}, {c}",
                "mov [{r}], {l}",
                "mov {c}, {h}",
                "lea {a}, [{a} + 8]",
                "lea {r}, [{r} + 8]",
                "lea rcx, [rcx - 1]",
                "jmp 4b",
                "5:",
                // carry = last high limb + CF + OF (cannot overflow: r + a·b < 2^(64(n+1))).
                "mov {l:e}, 0",
                "adcx {c}, {l}",
                "adox {c}, {l}",
                a = inout(reg) a.as_ptr() => _,
                r = inout(reg) r.as_mut_ptr() => _,
                rem = in(reg) n % 4,
                in("rdx") b,
                inout("rcx") n / 4 => _,
                c = out(reg) carry,
                h = out(reg) _,
                l = out(reg) _,
                options(nostack),
            );
        }
        carry
    }
}
