/**
 * Big-integer helpers over native BigInt: the arithmetic Paillier needs, with randomness from
 * `crypto.getRandomValues` only.
 *
 * BigInt arithmetic is not constant-time: timings depend on the values. The key owner's
 * operations run in the owner's own browser, where an attacker who can time them closely can
 * usually read memory too; see the security notes in web/README.md.
 */

/** Most bytes `crypto.getRandomValues` fills in one call (the Web Crypto limit). */
const RANDOM_CHUNK = 65536;

/** `count` bytes from the platform's CSPRNG. */
export function randomBytes(count: number): Uint8Array {
  const bytes = new Uint8Array(count);
  for (let offset = 0; offset < count; offset += RANDOM_CHUNK) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(count, offset + RANDOM_CHUNK)));
  }
  return bytes;
}

/** A uniform integer in [0, 2^bits). */
export function randomBits(bits: number): bigint {
  if (bits <= 0) return 0n;
  const bytes = randomBytes(Math.ceil(bits / 8));
  const excess = bytes.length * 8 - bits;
  bytes[0] &= 0xff >> excess;
  return fromBytes(bytes);
}

/** A uniform integer in [low, high) by rejection sampling (no modulo bias). */
export function randomBetween(low: bigint, high: bigint): bigint {
  const range = high - low;
  if (range <= 0n) throw new RangeError("empty range");
  const bits = bitLength(range - 1n);
  for (;;) {
    const candidate = randomBits(bits);
    if (candidate < range) return low + candidate;
  }
}

/** Number of bits of a non-negative integer (0 for 0). */
export function bitLength(x: bigint): number {
  if (x < 0n) throw new RangeError("bitLength of a negative number");
  if (x === 0n) return 0;
  // toString(16) is linear; exact from the leading hex digit.
  const hex = x.toString(16);
  return (hex.length - 1) * 4 + (32 - Math.clz32(parseInt(hex[0], 16)));
}

/** Big-endian bytes to a non-negative integer. */
export function fromBytes(bytes: Uint8Array): bigint {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex.length === 0 ? 0n : BigInt("0x" + hex);
}

/** A non-negative integer as minimal big-endian bytes (empty for 0). */
export function toBytes(x: bigint): Uint8Array {
  if (x < 0n) throw new RangeError("toBytes of a negative number");
  let hex = x.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** x mod m in [0, m) for any sign of x. */
export function mod(x: bigint, m: bigint): bigint {
  const r = x % m;
  return r < 0n ? r + m : r;
}

/** Window width for sliding-window exponentiation, by exponent length. */
function windowBits(exponentBits: number): number {
  if (exponentBits > 768) return 6;
  if (exponentBits > 256) return 5;
  if (exponentBits > 64) return 4;
  return 1;
}

/**
 * base^exponent mod m (m > 1, exponent >= 0), left-to-right sliding window: about
 * bits(exponent) squarings and bits/(w+1) multiplications, a third fewer multiplications than
 * square-and-multiply.
 */
export function modPow(base: bigint, exponent: bigint, m: bigint): bigint {
  if (m <= 0n) throw new RangeError("modulus must be positive");
  if (exponent < 0n) throw new RangeError("negative exponent");
  if (m === 1n) return 0n;
  const b = mod(base, m);
  const bits = exponent.toString(2);
  const w = windowBits(bits.length);
  if (w === 1) {
    let result = 1n;
    for (let i = 0; i < bits.length; i++) {
      result = (result * result) % m;
      if (bits.charCodeAt(i) === 49) result = (result * b) % m;
    }
    return result;
  }
  // Odd powers b, b^3, ..., b^(2^w - 1).
  const table: bigint[] = new Array(1 << (w - 1));
  table[0] = b;
  const square = (b * b) % m;
  for (let i = 1; i < table.length; i++) table[i] = (table[i - 1] * square) % m;
  let result = 1n;
  let i = 0;
  while (i < bits.length) {
    if (bits.charCodeAt(i) === 48) {
      result = (result * result) % m;
      i++;
      continue;
    }
    // The longest window of at most w bits starting here that ends in a 1.
    let end = Math.min(i + w, bits.length);
    while (bits.charCodeAt(end - 1) === 48) end--;
    const value = parseInt(bits.slice(i, end), 2);
    for (let k = i; k < end; k++) result = (result * result) % m;
    result = (result * table[value >> 1]) % m;
    i = end;
  }
  return result;
}

/** a^-1 mod m, or throws when gcd(a, m) != 1. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [mod(a, m), m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new RangeError("not invertible");
  return mod(oldS, m);
}

/** Greatest common divisor of non-negative integers. */
export function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** A uniform element of Z*_m: uniform in [1, m), resampled if it shares a factor with m. */
export function randomUnit(m: bigint): bigint {
  for (;;) {
    const r = randomBetween(1n, m);
    if (gcd(r, m) === 1n) return r;
  }
}

/** Parses plain decimal digits (no sign, no spaces), refusing anything else or over `maxDigits`. */
export function parseDecimal(text: unknown, maxDigits = 5000): bigint {
  if (typeof text !== "string" || !/^[0-9]+$/.test(text) || text.length > maxDigits) {
    throw new TypeError("not a non-negative decimal integer");
  }
  return BigInt(text);
}
