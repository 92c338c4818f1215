/**
 * Paillier with g = n + 1, as python-paillier and the Rust crate (paillier/src/keys.rs): the
 * public key encrypts with c = (1 + m·n)·r^n mod n²; the key owner encrypts and decrypts through
 * the CRT over p² and q² (half-length exponents on half-length moduli).
 */
import { bitLength, gcd, mod, modInverse, modPow, randomUnit } from "./bigint";
import { randomPrime } from "./primes";

/** Key lengths the page generates; python-paillier and `producer keygen` use the same. */
export const KEY_BITS = [2048, 3072, 4096] as const;

/** A Paillier public key (g = n + 1 implied). */
export class PublicKey {
  /** The modulus. */
  readonly n: bigint;
  /** n², the modulus of ciphertexts. */
  readonly nSquared: bigint;
  /** Largest absolute mantissa an encoding may carry: n/3 - 1 (python-paillier's max_int). */
  readonly maxInt: bigint;

  constructor(n: bigint) {
    if (n < 8n || n % 2n === 0n) throw new RangeError("a Paillier modulus is odd and at least 8");
    this.n = n;
    this.nSquared = n * n;
    this.maxInt = n / 3n - 1n;
  }

  /** Bit length of n. */
  get bits(): number {
    return bitLength(this.n);
  }

  /** (1 + m·n)·x mod n² for an encoding m < n: g^m without an exponentiation. */
  timesGPow(x: bigint, encoding: bigint): bigint {
    return (((1n + encoding * this.n) % this.nSquared) * x) % this.nSquared;
  }

  /** Encrypts an encoding m in [0, n) with the public key only; r uniform in Z*_n unless given. */
  encryptRaw(encoding: bigint, r?: bigint): bigint {
    if (encoding < 0n || encoding >= this.n) throw new RangeError("encoding outside [0, n)");
    const nonce = r ?? randomUnit(this.n);
    return this.timesGPow(modPow(nonce, this.n, this.nSquared), encoding);
  }

  /** Whether a ciphertext is a valid element of Z*_{n²}: 0 < c < n², gcd(c, n) = 1. */
  isValidCiphertext(c: bigint): boolean {
    return c > 0n && c < this.nSquared && gcd(c, this.n) === 1n;
  }

  /** A short identifier of the key (leading and trailing hex digits of n), never a secret. */
  fingerprint(): string {
    const hex = this.n.toString(16);
    return `${hex.slice(0, 8)}…${hex.slice(-8)}`;
  }
}

/** A Paillier private key: p < q and the CRT constants, computed once. */
export class PrivateKey {
  readonly publicKey: PublicKey;
  readonly p: bigint;
  readonly q: bigint;
  private readonly pSquared: bigint;
  private readonly qSquared: bigint;
  private readonly hp: bigint;
  private readonly hq: bigint;
  private readonly pInvModQ: bigint;
  private readonly pSquaredInvModQSquared: bigint;

  /** A key from two distinct primes of equal length (checked: shape only, not primality). */
  constructor(p: bigint, q: bigint) {
    if (p === q) throw new RangeError("p and q are equal");
    if (bitLength(p) !== bitLength(q)) throw new RangeError("p and q differ in length");
    if (bitLength(p) < 64) throw new RangeError("primes shorter than 64 bits");
    if (p % 2n === 0n || q % 2n === 0n) throw new RangeError("p and q must be odd");
    // python-paillier keeps p < q.
    if (p > q) [p, q] = [q, p];
    this.p = p;
    this.q = q;
    this.publicKey = new PublicKey(p * q);
    this.pSquared = p * p;
    this.qSquared = q * q;
    this.pInvModQ = modInverse(p, q);
    const qInvModP = modInverse(q % p, p);
    // h_p = L_p(g^(p-1) mod p²)^-1 mod p = -(q^-1) mod p in closed form (see keys.rs).
    this.hp = mod(-qInvModP, p);
    this.hq = mod(-this.pInvModQ, q);
    this.pSquaredInvModQSquared = modInverse(this.pSquared, this.qSquared);
  }

  /**
   * r^n mod n² for r uniform in Z*_n, by the key owner: s^p mod p² for s uniform in Z*_p has
   * the distribution of r^n mod p² (q does not divide p - 1), likewise mod q² (keys.rs).
   */
  ownerObfuscator(): bigint {
    const xp = modPow(randomUnit(this.p), this.p, this.pSquared);
    const xq = modPow(randomUnit(this.q), this.q, this.qSquared);
    return this.crtSquared(xp, xq);
  }

  /** x mod n² with x ≡ xp (mod p²), x ≡ xq (mod q²) (Garner). */
  private crtSquared(xp: bigint, xq: bigint): bigint {
    const t = (mod(xq - xp, this.qSquared) * this.pSquaredInvModQSquared) % this.qSquared;
    return xp + this.pSquared * t;
  }

  /**
   * Encrypts an encoding in [0, n) with the owner's fast path (same distribution as public).
   * `obfuscator`: an r^n mod n² computed ahead by [`ownerObfuscator`] and never used before
   * (see obfuscators.ts); computed here when absent.
   */
  encryptRaw(encoding: bigint, obfuscator?: bigint): bigint {
    const n = this.publicKey.n;
    if (encoding < 0n || encoding >= n) throw new RangeError("encoding outside [0, n)");
    return this.publicKey.timesGPow(obfuscator ?? this.ownerObfuscator(), encoding);
  }

  /** The plaintext in [0, n) of a ciphertext (CRT decryption). */
  decryptRaw(c: bigint): bigint {
    if (!this.publicKey.isValidCiphertext(c)) throw new RangeError("not a ciphertext under this key");
    const { p, q } = this;
    const xp = modPow(c % this.pSquared, p - 1n, this.pSquared);
    const xq = modPow(c % this.qSquared, q - 1n, this.qSquared);
    const mp = (((xp - 1n) / p) * this.hp) % p;
    const mq = (((xq - 1n) / q) * this.hq) % q;
    return mp + p * ((mod(mq - mp, q) * this.pInvModQ) % q);
  }
}

/** Progress of key generation: candidates tested so far and primes found (0 to 2). */
export interface KeygenProgress {
  candidates: number;
  primesFound: number;
}

/**
 * A new key whose modulus has exactly `bits` bits, p and q far apart (FIPS 186-5:
 * |p - q| > 2^(bits/2 - 100)).
 */
export function generateKey(bits: number, onProgress?: (p: KeygenProgress) => void): PrivateKey {
  if (!Number.isInteger(bits) || bits < 128 || bits % 2 !== 0) {
    throw new RangeError("key length must be an even number of bits, at least 128");
  }
  const half = bits / 2;
  const progress: KeygenProgress = { candidates: 0, primesFound: 0 };
  const tick = () => {
    progress.candidates++;
    onProgress?.({ ...progress });
  };
  const p = randomPrime(half, tick);
  progress.primesFound = 1;
  onProgress?.({ ...progress });
  for (;;) {
    const q = randomPrime(half, tick);
    const distance = p > q ? p - q : q - p;
    if (bitLength(distance) + 100 > half) {
      progress.primesFound = 2;
      onProgress?.({ ...progress });
      return new PrivateKey(p, q);
    }
  }
}
