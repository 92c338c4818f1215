/**
 * Probable-prime generation as the Rust crate does it (paillier/src/primes.rs): a random odd
 * start with the top two bits set, an incremental sieve by the odd primes below 2^16, one
 * Miller–Rabin round to base 2, then random-base rounds by FIPS 186-5 table B.1 (4 rounds for
 * 1536-bit primes gives an error bound below 2^-133 by Damgård–Landrock–Pomerance).
 */
import { bitLength, modPow, randomBetween, randomBits } from "./bigint";

/** Primes below this divide no accepted candidate. */
const SIEVE_LIMIT = 1 << 16;

let smallPrimesCache: Uint32Array | undefined;

/** The odd primes below 2^16 (6,541 of them). */
export function smallOddPrimes(): Uint32Array {
  if (smallPrimesCache) return smallPrimesCache;
  const composite = new Uint8Array(SIEVE_LIMIT);
  const primes: number[] = [];
  for (let i = 3; i < SIEVE_LIMIT; i += 2) {
    if (composite[i]) continue;
    primes.push(i);
    for (let j = i * i; j < SIEVE_LIMIT; j += 2 * i) composite[j] = 1;
  }
  smallPrimesCache = Uint32Array.from(primes);
  return smallPrimesCache;
}

/** Random-base Miller–Rabin rounds after the base-2 round, for a prime of `bits` bits. */
export function millerRabinRounds(bits: number): number {
  if (bits < 512) return 20;
  if (bits < 1024) return 8;
  if (bits < 1536) return 5;
  return 4;
}

/** One Miller–Rabin round: false when `base` proves the odd n > 3 composite. */
function passesRound(n: bigint, d: bigint, s: number, base: bigint): boolean {
  let x = modPow(base, d, n);
  const nMinus1 = n - 1n;
  if (x === 1n || x === nMinus1) return true;
  for (let i = 1; i < s; i++) {
    x = (x * x) % n;
    if (x === nMinus1) return true;
    if (x === 1n) return false;
  }
  return false;
}

/** Miller–Rabin on an odd n > 3: base 2, then `rounds` uniformly random bases in [2, n-2]. */
export function isProbablePrime(n: bigint, rounds: number): boolean {
  if (n < 2n) return false;
  for (const p of smallOddPrimes()) {
    const bp = BigInt(p);
    if (n === bp) return true;
    if (n % bp === 0n) return false;
  }
  if (n % 2n === 0n) return n === 2n;
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  if (!passesRound(n, d, s, 2n)) return false;
  for (let i = 0; i < rounds; i++) {
    if (!passesRound(n, d, s, randomBetween(2n, n - 1n))) return false;
  }
  return true;
}

/** Candidates examined per sieve window (odd numbers start, start+2, ...). */
const WINDOW = 4096;

/**
 * A random probable prime of exactly `bits` bits (top two bits set, so that a product of two
 * has exactly 2·bits bits). `onCandidate` is told of every Miller–Rabin candidate (for
 * progress).
 */
export function randomPrime(bits: number, onCandidate?: () => void): bigint {
  if (bits < 32) throw new RangeError("primes this small are never generated");
  const rounds = millerRabinRounds(bits);
  const primes = smallOddPrimes();
  const top = (1n << BigInt(bits - 1)) | (1n << BigInt(bits - 2));
  const residues = new Uint32Array(primes.length);
  const composite = new Uint8Array(WINDOW);
  for (;;) {
    let start = randomBits(bits) | top | 1n;
    for (let i = 0; i < primes.length; i++) residues[i] = Number(start % BigInt(primes[i]));
    // Windows until the candidates run past the bit length; then a new random start.
    while (bitLength(start + BigInt(2 * WINDOW)) === bits) {
      composite.fill(0);
      for (let i = 0; i < primes.length; i++) {
        const p = primes[i];
        // First k >= 0 with start + 2k ≡ 0 (mod p): 2k ≡ -r, k = (p - r)/2 or (2p - r)/2.
        const r = residues[i];
        let k = r === 0 ? 0 : (r % 2 === 1 ? (p - r) / 2 : (2 * p - r) / 2);
        for (; k < WINDOW; k += p) composite[k] = 1;
        residues[i] = (r + 2 * WINDOW) % p;
      }
      for (let k = 0; k < WINDOW; k++) {
        if (composite[k]) continue;
        const candidate = start + BigInt(2 * k);
        onCandidate?.();
        if (isProbablePrimeSieved(candidate, rounds)) return candidate;
      }
      start += BigInt(2 * WINDOW);
    }
  }
}

/** Miller–Rabin without trial division (the sieve did it). */
function isProbablePrimeSieved(n: bigint, rounds: number): boolean {
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  if (!passesRound(n, d, s, 2n)) return false;
  for (let i = 0; i < rounds; i++) {
    if (!passesRound(n, d, s, randomBetween(2n, n - 1n))) return false;
  }
  return true;
}
