//! Big-integer arithmetic kernel: Montgomery multiplication and exponentiation modulo odd
//! moduli, and Lehmer's gcd / modular inverse, over num-bigint's u64 limbs.
//!
//! On x86-64 CPUs with BMI2 and ADX the innermost row loop (`limbs::addmul_1`) runs an
//! inline-assembly kernel (`adx`, the crate's only `unsafe`); elsewhere the portable code.
//!
//! Why not num-bigint's own `modpow` / `modinv`: they are several times slower than GMP (which
//! python-paillier uses through gmpy2), and Paillier spends nearly all its time here.
//!
//! **Variable time.** Everything here runs in time that depends on the operands: the
//! exponentiation skips work on zero bits of the exponent and picks its window from the
//! exponent's length, reductions subtract conditionally, and the gcd's running time follows
//! its quotients. This matches python-paillier on GMP (`powmod`, `invert`), the system this crate
//! replaces; it is not hardened against timing side channels.

#[cfg(target_arch = "x86_64")]
mod adx;
mod inverse;
mod limbs;
mod montgomery;
#[cfg(test)]
mod timing;

pub(crate) use inverse::{gcd, mod_inverse};
pub(crate) use montgomery::{Modulus, Residue};
