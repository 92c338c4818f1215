//! # paillier
//!
//! The Paillier cryptosystem for computing on encrypted readings: validated keys, the key
//! owner's CRT fast paths, python-paillier compatible encoding and JSON. Pure: no I/O, no
//! async, no broker; randomness only from the OS-seeded CSPRNG (`rand::rng()`, ChaCha12
//! reseeded from the operating system).
//!
//! ## Layout
//! - [`keys`](PublicKey): [`PublicKey`] (n, n², max_int and a Montgomery context for n², computed
//!   once) and [`PrivateKey`] (p < q and the CRT constants, computed once); key generation and
//!   the raw encryption/decryption primitives.
//! - `primes`: incremental-sieve prime search and Miller–Rabin (error bound documented there:
//!   below 2^-120 per prime for the generated sizes).
//! - `encoding`: [`EncodedNumber`], python-paillier's mantissa × 16^exponent encoding.
//! - `encrypted`: [`EncryptedNumber`] and the homomorphic operations.
//! - [`json`]: python-paillier's JWK keys and ciphertext JSON, and the big-number serde helpers
//!   (decimal and base64url integers, objects-only structs) the pipeline's messages are built from.
//! - the `paillier-arith` crate: Montgomery arithmetic, modular inverse and gcd over
//!   num-bigint's limbs.
//!
//! ## `unsafe`
//! None here: the crate forbids it (the workspace's `unsafe_code = "forbid"`). The arithmetic
//! kernels, including the only `unsafe` code of the workspace (an x86-64 inline-assembly row
//! kernel on BMI2/ADX and an AVX-512 IFMA kernel, each behind a cached run-time CPU check and
//! a safe function), live in the `paillier-arith` crate.
//!
//! ## Key sizes
//! [`PrivateKey::generate`] makes 2048, 3072 ([`DEFAULT_KEY_BITS`]) or 4096-bit moduli from two
//! primes of half the length whose two top bits are set, so n has exactly the asked length;
//! p ≠ q and |p − q| > 2^(bits/2 − 100). 3072 bits is the default because it gives 128-bit
//! security, which health data kept past 2030 needs. Smaller keys exist only through
//! `PrivateKey::generate_insecure_for_tests`, which needs the `hazmat` feature.
//!
//! ## The `hazmat` feature
//! Off by default; production builds never enable it. It adds the functions that are only
//! safe in tests: `PrivateKey::generate_insecure_for_tests` (keys of any length from 128 bits)
//! and `PublicKey::encrypt_with_nonce` (a caller-chosen nonce, for known answers against
//! python-paillier). Test code enables it through its `[dev-dependencies]`.
//!
//! ## What is validated, and why
//! Keys and ciphertexts from outside are hostile until checked:
//! - a public key's n must be odd, within [`KeyBounds`] (default 2048..=8192 bits: weak keys
//!   are refused, and a million-bit n cannot stall a worker), and free of prime factors below
//!   2^16; a peer's g must be n + 1;
//! - a ciphertext must satisfy 0 < c < n² and gcd(c, n) = 1 (anything else is not an
//!   encryption, and a c sharing a factor with n would expose the key);
//! - exponents are bounded (±10,000), and aligning exponents may not scale a mantissa past
//!   max_int, so no input can demand an unbounded computation;
//! - decimal integers in JSON are at most [`json::MAX_DECIMAL_DIGITS`] digits and never pass
//!   through f64;
//! - decoding refuses a result between max_int and n − max_int: an overflowed computation is
//!   an error, never a wrong number.
//!
//! Operations mixing numbers of different keys return [`Error::KeyMismatch`].
//!
//! ## Encoding
//! A real value is `mantissa · 16^exponent`, with the mantissa modulo n (negative mantissas
//! wrap to n − |m|) and `max_int = n/3 − 1`. Integers get exponent 0; floats the exponent
//! `floor((frexp(v).1 − 53) / 4)`, which keeps all 53 bits; an explicit precision gives
//! `floor(log16(precision))`. These are python-paillier 1.5's choices, so both produce the same
//! (mantissa, exponent) and results decrypt identically on either side.
//!
//! ## Example
//! (Small test keys need the `hazmat` feature; real code uses `PrivateKey::generate(3072)`.)
//! ```
//! use paillier::PrivateKey;
//! let key = PrivateKey::generate_insecure_for_tests(512); // use PrivateKey::generate(3072)
//! let glucose = key.encrypt_f64(5.4)?;                    // the owner's CRT fast path
//! let in_mg_dl = glucose.mul_f64(18.016)?.obfuscated();   // computed without the key
//! assert!((key.decrypt_f64(&in_mg_dl)? - 97.2864).abs() < 1e-9);
//! # Ok::<(), paillier::Error>(())
//! ```
//!
//! ## Side channels
//! Every exponentiation with a secret exponent runs in constant time
//! (`paillier_arith::Modulus::pow_secret`): decryption (exponents p − 1, q − 1), the key
//! owner's CRT encryption (exponents p, q) and the Miller–Rabin checks of a loaded key's p and q
//! (the odd parts of p − 1, q − 1). Fixed windows over the primes' public length, a table read
//! in full and selected by mask, and a Montgomery step without a branch on the data, on the
//! fastest kernel the CPU has (AVX-512 IFMA with the two CRT halves side by side, else the
//! scalar ones). Still variable time: the rest of a
//! decryption (the divisions and products of the CRT recombination, on num-bigint), reducing
//! the ciphertext modulo p² and q², key loading (inverses), prime generation (its candidates
//! are secret once chosen, but a rejected candidate tells nothing and a run happens once per
//! key), and, in the key checks, finding the odd part of p − 1 and the squarings after the
//! exponentiation. Public-exponent work (r^n, scalar products, the worker's operations) stays
//! variable time and fast.
//!
//! ## Secrets in memory
//! [`PrivateKey`] is not `Clone`. When it drops, p, q, p − 1, q − 1, h_p, h_q, p⁻¹ mod q and
//! (p²)⁻¹ mod q² are overwritten in place (num-bigint exposes no buffer, so each is assigned an
//! all-ones value of its own length, which num-bigint writes into the same allocation), and
//! the Montgomery contexts of p² and q² (modulus, R mod m, R² mod m, normalised copy) are
//! zeroed by their own drop. The constant-time exponentiation zeroes its exponent limbs,
//! table and scratch. Not wiped (beyond what this representation allows): buffers num-bigint
//! freed while computing these values (construction temporaries such as p², q² and q⁻¹ mod p,
//! and reallocations), the intermediate values of each decryption and owner encryption
//! (x mod p², m mod p, m mod q, the random s_p, s_q and their residues), the plaintexts
//! returned, and any copy a caller makes through [`PrivateKey::p`] / [`PrivateKey::q`] or a key
//! file's text.

mod encoding;
mod encrypted;
mod error;
pub mod json;
mod keys;
mod primes;

pub use encoding::{BASE, Decoded, EncodedNumber, MAX_ABS_EXPONENT};
pub use encrypted::EncryptedNumber;
pub use error::Error;
pub use keys::{DEFAULT_KEY_BITS, GENERATED_KEY_BITS, KeyBounds, PrivateKey, PublicKey};
