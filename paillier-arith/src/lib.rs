//! # paillier-arith
//!
//! The big-integer arithmetic under the `paillier` crate: Montgomery multiplication and
//! exponentiation modulo odd moduli, and Lehmer's gcd / modular inverse, over num-bigint's u64
//! limbs. A crate of its own because it holds the workspace's only `unsafe` code: every other
//! crate forbids `unsafe`; this one denies it except in the two kernel modules, and every
//! `unsafe` block there carries a `// SAFETY:` comment (`clippy::undocumented_unsafe_blocks`
//! is denied).
//!
//! On x86-64 CPUs with BMI2 and ADX the innermost row loop (`limbs::addmul_1`) runs an
//! inline-assembly kernel (`adx`); elsewhere the portable code. On CPUs with AVX-512 IFMA the
//! base-2 Miller–Rabin round of prime generation and [`Modulus::pow`] on moduli of about
//! 700 to 6654 bits (n², p², q² of the key sizes in use) run on a vector kernel in radix 2^52
//! (`ifma`). These two modules are the crate's only `unsafe`.
//!
//! Why not num-bigint's own `modpow` / `modinv`: they are several times slower than GMP (which
//! python-paillier uses through gmpy2), and Paillier spends nearly all its time here.
//!
//! **Variable time, except [`Modulus::pow_secret`].** The public-exponent paths run in time
//! that depends on the operands: [`Modulus::pow`] skips work on zero bits of the exponent and
//! picks its window from the exponent's length, reductions subtract conditionally, and the
//! gcd's running time follows its quotients. This matches python-paillier on GMP (`powmod`,
//! `invert`) and is fine where the exponent is public (n, plaintext scalars).
//!
//! Secret exponents (decryption's p − 1 and q − 1, the key owner's p and q, the key checks'
//! odd parts of p − 1 and q − 1) go through [`Modulus::pow_secret`] (and
//! [`Modulus::pow_secret_pair`] for the two CRT halves): fixed windows over a public bound on
//! the exponent's length, a table of all powers read in full for every window and selected by
//! mask, a multiplication for every window, and Montgomery products whose final subtraction
//! is a mask. It runs on the fastest kernel the CPU has: the IFMA kernel from 700 bits on
//! (almost-Montgomery products that never compare with m; the CRT halves side by side), else
//! the ADX rows, else the portable rows or columns (never Karatsuba, whose middle term
//! branches on the operands). Which kernel and path run depends on the CPU and the moduli's
//! lengths only. Tests check it against num-bigint on every kernel and check that its
//! sequence of squarings, multiplications and table scans is the same for every exponent.
//!
//! `PAILLIER_KERNEL=portable` or `adx` (read once per process) limits the kernels used, so
//! that benchmarks can compare them.

// The two modules allowed `unsafe` (the crate denies it everywhere else).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod adx;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod ifma;
mod inverse;
mod limbs;
mod montgomery;
#[cfg(test)]
mod test_primes;
#[cfg(test)]
mod timing;

pub use inverse::{gcd, mod_inverse};

/// The kernels this process may use, from the environment variable `PAILLIER_KERNEL` (read
/// once, on the first kernel check): `portable` (neither the ADX nor the IFMA kernel), `adx`
/// (the ADX scalar kernel, not IFMA), anything else or unset: the fastest this CPU has. For
/// benchmarks and tests that compare the kernels; a kernel the CPU lacks is never used.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KernelLimit {
    /// The portable code only.
    Portable,
    /// Up to the ADX scalar kernel.
    Adx,
    /// Every kernel the CPU has.
    Ifma,
}

#[cfg(target_arch = "x86_64")]
impl KernelLimit {
    /// The limit set for this process by `PAILLIER_KERNEL`.
    pub(crate) fn get() -> KernelLimit {
        static LIMIT: std::sync::OnceLock<KernelLimit> = std::sync::OnceLock::new();
        *LIMIT.get_or_init(|| match std::env::var("PAILLIER_KERNEL").as_deref() {
            Ok("portable") => KernelLimit::Portable,
            Ok("adx") => KernelLimit::Adx,
            _ => KernelLimit::Ifma,
        })
    }
}
pub use montgomery::{Modulus, Residue, wipe_biguint};

/// The base-2 Miller–Rabin round of the odd `n` on the AVX-512 IFMA kernel, or `None` where
/// it cannot run (another CPU or architecture, or `n` too long): then use [`Modulus::pow_two`].
pub fn base_2_round(n: &num_bigint::BigUint) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::base_2_round(n)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = n;
        None
    }
}

/// [`base_2_round`] of two odd numbers of the same length at once, on the IFMA kernel (about
/// the time of one), or `None` where it cannot run.
pub fn base_2_round_pair(n: [&num_bigint::BigUint; 2]) -> Option<[bool; 2]> {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::base_2_round_pair(n)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = n;
        None
    }
}
