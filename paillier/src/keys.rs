//! Public and private keys: validation on construction, per-key constants computed once, key
//! generation, and the raw (integer) encryption and decryption primitives.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use num_bigint::{BigRng010 as _, BigUint};
use num_integer::Integer;
use num_traits::{One, Zero};

use crate::primes;
use crate::{EncodedNumber, EncryptedNumber, Error};
use paillier_arith::{self as arith, Modulus, Residue};

/// The key length generated when none is asked for: 3072-bit n gives 128-bit security (NIST
/// SP 800-57), which data kept past 2030 needs; python-paillier 1.5 uses the same default.
pub const DEFAULT_KEY_BITS: u64 = 3072;

/// Key lengths [`PrivateKey::generate`] accepts.
pub const GENERATED_KEY_BITS: [u64; 3] = [2048, 3072, 4096];

/// Which modulus lengths a public key read from outside may have.
///
/// The lower bound keeps weak keys out; the upper bound keeps a hostile peer from handing a
/// worker a million-bit modulus whose every operation would take minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBounds {
    /// Smallest accepted bit length of n.
    pub min_bits: u64,
    /// Largest accepted bit length of n.
    pub max_bits: u64,
}

impl KeyBounds {
    /// Bounds from an inclusive range of bit lengths.
    pub fn new(bits: RangeInclusive<u64>) -> Self {
        KeyBounds {
            min_bits: *bits.start(),
            max_bits: *bits.end(),
        }
    }

    /// No bounds accept a modulus shorter than this, whatever `min_bits` says: below 8 (n < 8:
    /// 1, 3, 5, 7) n is no product of two odd primes and the key's derived values (n/3 − 1)
    /// would be degenerate. From 8 bits up the small-factor check refuses what is not a
    /// Paillier modulus.
    pub const FLOOR_BITS: u64 = 4;

    fn check(&self, bits: u64) -> Result<(), Error> {
        let min = self.min_bits.max(Self::FLOOR_BITS);
        if (min..=self.max_bits).contains(&bits) {
            Ok(())
        } else {
            Err(Error::KeySize {
                bits,
                min,
                max: self.max_bits,
            })
        }
    }
}

impl Default for KeyBounds {
    /// 2048..=8192 bits.
    fn default() -> Self {
        KeyBounds::new(2048..=8192)
    }
}

/// A Paillier public key: the modulus n (with g = n + 1 implied) and the values every operation
/// under it needs, computed once. Cheap to clone: clones share one allocation.
#[derive(Clone)]
pub struct PublicKey(Arc<PublicKeyInner>);

struct PublicKeyInner {
    n: BigUint,
    n_squared: BigUint,
    /// Largest mantissa an encoding may carry: n/3 - 1, as in python-paillier. Values between
    /// max_int and n - max_int are treated as overflow when decoding.
    max_int: BigUint,
    /// Montgomery context for n², where ciphertexts live.
    n_squared_ctx: Modulus,
    bits: u64,
}

impl PublicKey {
    /// A public key from a modulus read from outside, checked against the default [`KeyBounds`].
    pub fn from_n(n: BigUint) -> Result<Self, Error> {
        Self::from_n_with_bounds(n, KeyBounds::default())
    }

    /// A public key from a modulus read from outside: n must be odd, of a length within
    /// `bounds`, and free of prime factors below 2^16 (a product of two large primes has none;
    /// a hostile or corrupt n usually does).
    pub fn from_n_with_bounds(n: BigUint, bounds: KeyBounds) -> Result<Self, Error> {
        bounds.check(n.bits())?;
        if n.is_even() {
            return Err(Error::EvenModulus);
        }
        if let Some(p) = primes::small_factor(&n) {
            return Err(Error::SmallFactor(p));
        }
        Ok(Self::from_trusted_n(n))
    }

    /// A public key from our own key generation or a validated private key: no checks.
    fn from_trusted_n(n: BigUint) -> Self {
        let n_squared = &n * &n;
        let n_squared_ctx = Modulus::new(&n_squared).expect("n is odd and > 1, so n² is too");
        let max_int = &n / 3u32 - 1u32;
        let bits = n.bits();
        PublicKey(Arc::new(PublicKeyInner {
            n,
            n_squared,
            max_int,
            n_squared_ctx,
            bits,
        }))
    }

    /// The modulus n.
    pub fn n(&self) -> &BigUint {
        &self.0.n
    }

    /// n², the modulus of the ciphertext space.
    pub fn n_squared(&self) -> &BigUint {
        &self.0.n_squared
    }

    /// The generator g = n + 1.
    pub fn g(&self) -> BigUint {
        &self.0.n + 1u32
    }

    /// Bit length of n.
    pub fn bits(&self) -> u64 {
        self.0.bits
    }

    /// Largest absolute mantissa an encoding may hold (n/3 - 1).
    pub fn max_int(&self) -> &BigUint {
        &self.0.max_int
    }

    /// A short, human-readable identifier of the key (leading and trailing hex digits of n),
    /// for logs: enough to tell keys apart, never a secret.
    pub fn fingerprint(&self) -> String {
        let hex = self.0.n.to_str_radix(16);
        if hex.len() <= 16 {
            hex
        } else {
            format!("{}…{}", &hex[..8], &hex[hex.len() - 8..])
        }
    }

    pub(crate) fn n_squared_ctx(&self) -> &Modulus {
        &self.0.n_squared_ctx
    }

    /// x·g^m mod n² for a residue x and an encoding m < n: g^m = 1 + n·m for g = n + 1, and
    /// multiplying by it needs only half-length arithmetic (see
    /// `Modulus::mul_one_plus_root_multiple`).
    pub(crate) fn times_g_pow(&self, x: &Residue, encoding: &BigUint) -> Residue {
        self.n_squared_ctx()
            .mul_one_plus_root_multiple(x, &self.0.n, encoding)
    }

    /// r^n mod n² for a fresh r uniform in Z*_n: the random factor of an encryption.
    pub(crate) fn random_obfuscator(&self) -> Residue {
        let r = random_unit(&self.0.n);
        let ctx = self.n_squared_ctx();
        ctx.pow(&ctx.to_residue(&r), &self.0.n)
    }

    /// Encrypts an encoding with the public key only: c = g^m · r^n mod n², r uniform in Z*_n
    /// from the OS-seeded CSPRNG.
    pub fn encrypt(&self, encoded: &EncodedNumber) -> Result<EncryptedNumber, Error> {
        self.check_same(encoded.public_key())?;
        let c = self.times_g_pow(&self.random_obfuscator(), encoded.encoding());
        Ok(EncryptedNumber::from_parts(
            self.clone(),
            c,
            encoded.exponent(),
        ))
    }

    /// Encodes and encrypts an f64 (python-paillier's exponent choice).
    pub fn encrypt_f64(&self, value: f64) -> Result<EncryptedNumber, Error> {
        self.encrypt(&self.encode_f64(value)?)
    }

    /// Encodes and encrypts an integer (exponent 0).
    pub fn encrypt_i64(&self, value: i64) -> Result<EncryptedNumber, Error> {
        self.encrypt(&self.encode_i64(value)?)
    }

    /// Encrypts with a caller-chosen nonce r. Hazardous: only for known-answer tests against
    /// python-paillier (whose `encrypt` takes an `r_value`). A reused or predictable r
    /// reveals the plaintext relation between ciphertexts; use [`PublicKey::encrypt`]. Only
    /// with the `hazmat` feature.
    #[cfg(feature = "hazmat")]
    pub fn encrypt_with_nonce(
        &self,
        encoded: &EncodedNumber,
        r: &BigUint,
    ) -> Result<EncryptedNumber, Error> {
        self.check_same(encoded.public_key())?;
        if r.is_zero() || r >= self.n() || !arith::gcd(r, self.n()).is_one() {
            return Err(Error::ScalarOutOfRange);
        }
        let ctx = self.n_squared_ctx();
        let obfuscator = ctx.pow(&ctx.to_residue(r), self.n());
        let c = self.times_g_pow(&obfuscator, encoded.encoding());
        Ok(EncryptedNumber::from_parts(
            self.clone(),
            c,
            encoded.exponent(),
        ))
    }

    /// An encrypted number received from outside, after checking that the ciphertext is a
    /// valid element of Z*_{n²}: 0 < c < n² and gcd(c, n) = 1.
    pub fn encrypted_number(
        &self,
        ciphertext: BigUint,
        exponent: i32,
    ) -> Result<EncryptedNumber, Error> {
        crate::encoding::check_exponent(i64::from(exponent))?;
        if ciphertext.is_zero() || ciphertext >= self.0.n_squared {
            return Err(Error::CiphertextOutOfRange);
        }
        // gcd(c, n) = gcd(c mod n, n): reduce first so the gcd runs on numbers half the size.
        if !arith::gcd(&(&ciphertext % &self.0.n), &self.0.n).is_one() {
            return Err(Error::CiphertextNotInvertible);
        }
        let residue = self.n_squared_ctx().to_residue(&ciphertext);
        Ok(EncryptedNumber::from_parts(self.clone(), residue, exponent))
    }

    pub(crate) fn check_same(&self, other: &PublicKey) -> Result<(), Error> {
        if self == other {
            Ok(())
        } else {
            Err(Error::KeyMismatch)
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.n == other.0.n
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.bits())
            .field("n", &self.fingerprint())
            .finish()
    }
}

/// A uniform element of Z*_m: uniform in [1, m) and resampled in the (negligibly rare) case
/// that it shares a factor with m.
pub(crate) fn random_unit(m: &BigUint) -> BigUint {
    let mut rng = rand::rng();
    let one = BigUint::one();
    loop {
        let r = rng.random_biguint_range(&one, m);
        if arith::gcd(&r, m).is_one() {
            return r;
        }
    }
}

/// A Paillier private key: the primes p < q, and the CRT values that make the key owner's
/// encryption and decryption fast, computed once. `Debug` never prints a secret.
///
/// Not `Clone`: share one key (`&PrivateKey`, `Arc<PrivateKey>`) instead of copying its
/// secrets. On drop its secrets are overwritten in place (see the crate documentation, "Secrets
/// in memory", for what that covers and what it cannot).
pub struct PrivateKey {
    public: PublicKey,
    p: BigUint,
    q: BigUint,
    p_squared: Modulus,
    q_squared: Modulus,
    p_minus_1: BigUint,
    q_minus_1: BigUint,
    /// h_p = L_p(g^(p-1) mod p²)⁻¹ mod p, the CRT decryption constant (likewise h_q).
    hp: BigUint,
    hq: BigUint,
    /// p⁻¹ mod q, to recombine m mod p and m mod q.
    p_inv_mod_q: BigUint,
    /// (p²)⁻¹ mod q², to recombine r^n mod p² and mod q² into r^n mod n².
    p_squared_inv_mod_q_squared: BigUint,
}

impl PrivateKey {
    /// Generates a key whose modulus has exactly `bits` bits: 2048, 3072 (the default, see
    /// [`DEFAULT_KEY_BITS`]) or 4096. Randomness comes from the OS-seeded CSPRNG.
    pub fn generate(bits: u64) -> Result<Self, Error> {
        if !GENERATED_KEY_BITS.contains(&bits) {
            return Err(Error::UnsupportedKeyLength(bits));
        }
        Ok(Self::generate_unchecked(bits))
    }

    /// Generates a key of any even length from 128 bits up. INSECURE below 2048 bits: only
    /// for tests that need many keys fast, and only with the `hazmat` feature.
    #[cfg(feature = "hazmat")]
    pub fn generate_insecure_for_tests(bits: u64) -> Self {
        assert!(
            bits >= 128 && bits.is_multiple_of(2),
            "test keys need an even length of at least 128 bits"
        );
        Self::generate_unchecked(bits)
    }

    fn generate_unchecked(bits: u64) -> Self {
        let mut rng = rand::rng();
        let half = bits / 2;
        let p = primes::random_prime(half, &mut rng);
        loop {
            let q = primes::random_prime(half, &mut rng);
            // p and q far apart (FIPS 186-5 asks |p - q| > 2^(half - 100)), so that Fermat's
            // method cannot factor n; for random primes this never loops in practice.
            let distance = if p > q { &p - &q } else { &q - &p };
            if distance.bits() + 100 > half {
                return Self::from_validated_primes(p, q);
            }
        }
    }

    /// A private key from its primes, e.g. from a key file someone else made. Checks that they
    /// are distinct odd primes of equal length whose product has at least 128 bits, with the
    /// full Miller–Rabin rounds of key generation (about a dozen exponentiations modulo the
    /// primes).
    pub fn from_primes(p: BigUint, q: BigUint) -> Result<Self, Error> {
        Self::check_prime_pair(&p, &q)?;
        let mut rng = rand::rng();
        if !primes::is_prime(&p, &mut rng) || !primes::is_prime(&q, &mut rng) {
            return Err(Error::InvalidPrivateKey("p or q is not prime"));
        }
        Ok(Self::from_validated_primes(p, q))
    }

    /// A private key from primes this program generated and stored itself (the participant's
    /// own key store, read on every encryption and decryption). The same shape checks as
    /// [`PrivateKey::from_primes`], the small-prime sieve, and one base-2 strong-probable-prime
    /// test per prime instead of the full rounds: that catches a damaged or mixed-up file (a
    /// random composite passes base 2 with negligible probability) at a sixth of the cost. It
    /// is no defence against a crafted file, which whoever can write one's key store does not
    /// need; use `from_primes` for keys from elsewhere.
    pub fn from_own_primes(p: BigUint, q: BigUint) -> Result<Self, Error> {
        Self::check_prime_pair(&p, &q)?;
        let mut rng = rand::rng();
        if !primes::is_probable_prime_base_2(&p, &mut rng)
            || !primes::is_probable_prime_base_2(&q, &mut rng)
        {
            return Err(Error::InvalidPrivateKey("p or q is not prime"));
        }
        Ok(Self::from_validated_primes(p, q))
    }

    /// The checks on p and q that need no exponentiation.
    fn check_prime_pair(p: &BigUint, q: &BigUint) -> Result<(), Error> {
        if p == q {
            return Err(Error::InvalidPrivateKey("p and q are equal"));
        }
        if p.bits() != q.bits() {
            return Err(Error::InvalidPrivateKey("p and q differ in length"));
        }
        if p.bits() < 64 {
            return Err(Error::InvalidPrivateKey("primes shorter than 64 bits"));
        }
        Ok(())
    }

    fn from_validated_primes(p: BigUint, q: BigUint) -> Self {
        // python-paillier keeps p < q; doing the same keeps p_inv_mod_q's meaning identical.
        let (p, q) = if p < q { (p, q) } else { (q, p) };
        let public = PublicKey::from_trusted_n(&p * &q);
        let p_sq = &p * &p;
        let q_sq = &q * &q;
        let p_squared = Modulus::new(&p_sq).expect("p is an odd prime");
        let q_squared = Modulus::new(&q_sq).expect("q is an odd prime");
        let p_minus_1 = &p - 1u32;
        let q_minus_1 = &q - 1u32;
        let p_inv_mod_q = arith::mod_inverse(&p, &q).expect("distinct primes are coprime");
        let q_inv_mod_p = arith::mod_inverse(&(&q % &p), &p).expect("distinct primes are coprime");
        let hp = h_from_inverse(&p, &q_inv_mod_p);
        let hq = h_from_inverse(&q, &p_inv_mod_q);
        let p_squared_inv_mod_q_squared =
            arith::mod_inverse(&p_sq, &q_sq).expect("distinct primes are coprime");
        PrivateKey {
            public,
            p,
            q,
            p_squared,
            q_squared,
            p_minus_1,
            q_minus_1,
            hp,
            hq,
            p_inv_mod_q,
            p_squared_inv_mod_q_squared,
        }
    }

    /// The public half of this key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The smaller prime. Secret.
    pub fn p(&self) -> &BigUint {
        &self.p
    }

    /// The larger prime. Secret.
    pub fn q(&self) -> &BigUint {
        &self.q
    }

    /// r^n mod n² for r uniform in Z*_n, computed by the key owner with CRT.
    ///
    /// r^n mod p² depends only on r mod p and equals (r^q mod p)^p mod p². Because q is prime
    /// and does not divide p - 1 (p and q have equal length), s = r^q mod p is uniform in Z*_p
    /// when r mod p is; so drawing s uniform in Z*_p and computing s^p mod p² gives exactly
    /// the distribution of r^n mod p², with a half-length exponent on a half-length modulus.
    /// Likewise mod q², and the two parts are independent by the CRT.
    fn owner_obfuscator(&self) -> BigUint {
        let (sp, sq) = (random_unit(&self.p), random_unit(&self.q));
        let (rp, rq) = (
            self.p_squared.to_residue(&sp),
            self.q_squared.to_residue(&sq),
        );
        // The exponents p and q are the secret: the constant-time exponentiation, bounded by
        // their (public) length.
        let bits = self.p.bits();
        let [xp, xq] = Modulus::pow_secret_pair(
            [
                (&self.p_squared, &rp, &self.p),
                (&self.q_squared, &rq, &self.q),
            ],
            bits,
        );
        let xp = self.p_squared.from_residue(&xp);
        let xq = self.q_squared.from_residue(&xq);
        self.crt_squared(&xp, &xq)
    }

    /// The x mod n² with x ≡ xp (mod p²) and x ≡ xq (mod q²) (Garner's formula).
    fn crt_squared(&self, xp: &BigUint, xq: &BigUint) -> BigUint {
        let q_sq = self.q_squared.value();
        let p_sq = self.p_squared.value();
        let diff = (xq + q_sq - (xp % q_sq)) % q_sq;
        let t = self
            .q_squared
            .mul_plain(&diff, &self.p_squared_inv_mod_q_squared);
        xp + p_sq * t
    }

    /// Encrypts with the key owner's fast path (CRT over p² and q²); the ciphertext has the
    /// same distribution as the public path's.
    pub fn encrypt(&self, encoded: &EncodedNumber) -> Result<EncryptedNumber, Error> {
        self.public.check_same(encoded.public_key())?;
        let ctx = self.public.n_squared_ctx();
        let c = self.public.times_g_pow(
            &ctx.to_residue(&self.owner_obfuscator()),
            encoded.encoding(),
        );
        Ok(EncryptedNumber::from_parts(
            self.public.clone(),
            c,
            encoded.exponent(),
        ))
    }

    /// Encodes and encrypts an f64 with the owner's fast path.
    pub fn encrypt_f64(&self, value: f64) -> Result<EncryptedNumber, Error> {
        self.encrypt(&self.public.encode_f64(value)?)
    }

    /// Encodes and encrypts an integer with the owner's fast path.
    pub fn encrypt_i64(&self, value: i64) -> Result<EncryptedNumber, Error> {
        self.encrypt(&self.public.encode_i64(value)?)
    }

    /// Decrypts to the raw encoding m mod n, with CRT (two half-size exponentiations).
    pub fn decrypt_raw(&self, ciphertext: &BigUint) -> BigUint {
        let (cp, cq) = (
            self.p_squared.to_residue(ciphertext),
            self.q_squared.to_residue(ciphertext),
        );
        // Secret exponents p − 1 and q − 1: the constant-time exponentiation, bounded by the
        // primes' (public) length.
        let bits = self.p.bits();
        let [xp, xq] = Modulus::pow_secret_pair(
            [
                (&self.p_squared, &cp, &self.p_minus_1),
                (&self.q_squared, &cq, &self.q_minus_1),
            ],
            bits,
        );
        let half = |prime: &BigUint, ctx: &Modulus, x: &Residue, h: &BigUint| {
            let x = ctx.from_residue(x);
            (((x - 1u32) / prime) * h) % prime
        };
        let mp = half(&self.p, &self.p_squared, &xp, &self.hp);
        let mq = half(&self.q, &self.q_squared, &xq, &self.hq);
        // m = mp + p·((mq - mp)·p⁻¹ mod q)
        let diff = (&mq + &self.q - (&mp % &self.q)) % &self.q;
        mp + &self.p * ((diff * &self.p_inv_mod_q) % &self.q)
    }

    /// Decrypts to an encoded number under this key.
    pub fn decrypt_encoded(&self, value: &EncryptedNumber) -> Result<EncodedNumber, Error> {
        self.public.check_same(value.public_key())?;
        let m = self.decrypt_raw(&value.ciphertext());
        EncodedNumber::from_parts(self.public.clone(), m, value.exponent())
    }

    /// Decrypts and decodes; fails on a key mismatch or an overflowed result.
    pub fn decrypt(&self, value: &EncryptedNumber) -> Result<crate::Decoded, Error> {
        self.public.decode(&self.decrypt_encoded(value)?)
    }

    /// Decrypts and decodes to the nearest f64 (exactly as python-paillier's `decrypt`).
    pub fn decrypt_f64(&self, value: &EncryptedNumber) -> Result<f64, Error> {
        self.decrypt(value)?.to_f64()
    }
}

/// h = L(g^(prime-1) mod prime²)⁻¹ mod prime with g = n + 1 and L(x) = (x - 1) / prime, in
/// closed form: for prime = p and other = q, (1 + n)^(p-1) ≡ 1 + (p-1)·n (mod p²) because
/// n² ≡ 0 (mod p²), so L(..) = (p-1)·n / p = (p-1)·q ≡ -q (mod p) and h = -(q⁻¹) mod p. One
/// inverse instead of python-paillier's exponentiation modulo p² (which makes loading a key
/// from the key store cheaper); `other_inverse` is q⁻¹ mod p.
fn h_from_inverse(prime: &BigUint, other_inverse: &BigUint) -> BigUint {
    (prime - other_inverse) % prime
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        // p², q² and their Montgomery values are wiped by `Modulus`'s own drop.
        for secret in [
            &mut self.p,
            &mut self.q,
            &mut self.p_minus_1,
            &mut self.q_minus_1,
            &mut self.hp,
            &mut self.hq,
            &mut self.p_inv_mod_q,
            &mut self.p_squared_inv_mod_q_squared,
        ] {
            paillier_arith::wipe_biguint(secret);
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.public == other.public && self.p == other.p
    }
}

impl Eq for PrivateKey {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds that allow anything still refuse the moduli for which a key cannot be built,
    /// with an error and without a panic.
    #[test]
    fn tiny_moduli_are_refused_whatever_the_bounds() {
        let anything = KeyBounds::new(0..=64);
        for n in 0u32..8 {
            assert!(
                matches!(
                    PublicKey::from_n_with_bounds(BigUint::from(n), anything),
                    Err(Error::KeySize { min: 4, .. })
                ),
                "n = {n}"
            );
        }
        for n in (9u32..64).step_by(2) {
            // Accepted or refused (a small factor), never a panic.
            let _ = PublicKey::from_n_with_bounds(BigUint::from(n), anything);
        }
        assert!(PublicKey::from_n_with_bounds(BigUint::from(15u32), anything).is_err());
    }

    /// `Debug` of a private key shows the public part and no secret digit.
    #[test]
    fn debug_redacts_the_secrets() {
        let key = PrivateKey::generate_insecure_for_tests(256);
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains("<redacted>"));
        for secret in [&key.p, &key.q, &key.hp, &key.hq, &key.p_inv_mod_q] {
            assert!(!shown.contains(&secret.to_string()));
            assert!(!shown.contains(&secret.to_str_radix(16)));
        }
    }

    /// The closed form of h agrees with its definition, L(g^(p-1) mod p²)⁻¹ mod p.
    #[test]
    fn h_closed_form_matches_the_definition() {
        for _ in 0..8 {
            let key = PrivateKey::generate_insecure_for_tests(256);
            let n = key.public_key().n();
            let g = n + 1u32;
            for (prime, h) in [(&key.p, &key.hp), (&key.q, &key.hq)] {
                let prime_squared = prime * prime;
                let x = g.modpow(&(prime - 1u32), &prime_squared);
                let l = ((x - 1u32) / prime) % prime;
                assert_eq!((l * h) % prime, BigUint::from(1u32));
            }
        }
    }
}
