/**
 * python-paillier's encoding (paillier/src/encoding.rs): a value is `mantissa · 16^exponent`,
 * the mantissa at most max_int = n/3 - 1 in absolute value and stored modulo n (negative
 * mantissas wrap). Mantissas are computed exactly from the f64's bits, rounding half to even
 * as Python's `round(Fraction)`; decoding rounds the exact value to the nearest f64 (half to
 * even) as Python's integer true division does.
 */
import { bitLength, mod } from "./bigint";
import type { PublicKey } from "./paillier";

/** Exponent base. */
export const BASE = 16;

/** Exponents beyond ±10,000 are refused, as by the Rust crate. */
export const MAX_ABS_EXPONENT = 10_000;

/** Why a value could not be encoded or decoded. */
export class EncodingError extends Error {
  constructor(
    /** Stable code: "non_finite", "exponent_range", "encoding_overflow", "decoding_overflow", "float_overflow", "corrupt_encoding". */
    readonly kind: string,
    message: string,
  ) {
    super(message);
    this.name = "EncodingError";
  }
}

/** An encoded value: mantissa mod n and exponent. */
export interface Encoded {
  encoding: bigint;
  exponent: number;
}

function checkExponent(exponent: number): void {
  if (!Number.isInteger(exponent) || Math.abs(exponent) > MAX_ABS_EXPONENT) {
    throw new EncodingError("exponent_range", `exponent ${exponent} out of range`);
  }
}

/** An f64 as an exact integer mantissa and binary exponent: value = mantissa · 2^exponent. */
export function f64Parts(value: number): { mantissa: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const negative = hi >>> 31 === 1;
  const biased = (hi >>> 20) & 0x7ff;
  const fraction = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  const [m, e] = biased === 0 ? [fraction, -1074] : [fraction | (1n << 52n), biased - 1075];
  return { mantissa: negative ? -m : m, exponent: e };
}

/** The e of frexp(v) = (f, e) with 0.5 <= |f| < 1 (0 for zero), as C's and Python's. */
export function frexpExponent(value: number): number {
  if (value === 0) return 0;
  const { mantissa, exponent } = f64Parts(Math.abs(value));
  return exponent + bitLength(mantissa);
}

/** python-paillier's exponent for a float: floor((frexp(v).e - 53) / 4). */
export function floatExponent(value: number): number {
  return Math.floor((frexpExponent(value) - 53) / 4);
}

/** python-paillier's exponent for a precision: floor(log16(precision)). */
export function precisionExponent(precision: number): number {
  if (!Number.isFinite(precision) || precision <= 0) {
    throw new EncodingError("non_finite", "precision must be a positive finite number");
  }
  return Math.floor(Math.log(precision) / Math.log(BASE));
}

/** round(x / 2^shift) for x >= 0, half to even. */
function roundShiftRightHalfEven(x: bigint, shift: number): bigint {
  if (shift === 0) return x;
  const s = BigInt(shift);
  const quotient = x >> s;
  const remainder = x - (quotient << s);
  const half = 1n << (s - 1n);
  if (remainder > half || (remainder === half && (quotient & 1n) === 1n)) return quotient + 1n;
  return quotient;
}

/** round(value · 16^-exponent), exact, half to even. */
export function roundScaled(value: number, exponent: number): bigint {
  const { mantissa, exponent: binary } = f64Parts(value);
  const shift = binary - 4 * exponent;
  if (shift >= 0) return mantissa << BigInt(shift);
  const magnitude = roundShiftRightHalfEven(mantissa < 0n ? -mantissa : mantissa, -shift);
  return mantissa < 0n ? -magnitude : magnitude;
}

/** Encodes a signed mantissa at an exponent, refusing |mantissa| > max_int. */
export function encodeMantissa(key: PublicKey, mantissa: bigint, exponent: number): Encoded {
  checkExponent(exponent);
  const magnitude = mantissa < 0n ? -mantissa : mantissa;
  if (magnitude > key.maxInt) {
    throw new EncodingError("encoding_overflow", "value too large for this key");
  }
  return { encoding: mod(mantissa, key.n), exponent };
}

/** Encodes an integer with exponent 0. */
export function encodeBigint(key: PublicKey, value: bigint): Encoded {
  return encodeMantissa(key, value, 0);
}

/**
 * Encodes a float as python-paillier's `EncodedNumber.encode(key, value, precision,
 * max_exponent)`: exponent floor(log16(precision)) when a precision is given, else the one that
 * keeps every bit of the f64; lowered to `maxExponent` when given.
 */
export function encodeFloat(
  key: PublicKey,
  value: number,
  precision?: number,
  maxExponent?: number,
): Encoded {
  if (!Number.isFinite(value)) throw new EncodingError("non_finite", `${value} is not finite`);
  let exponent = precision === undefined ? floatExponent(value) : precisionExponent(precision);
  if (maxExponent !== undefined) exponent = Math.min(exponent, maxExponent);
  checkExponent(exponent);
  return encodeMantissa(key, roundScaled(value, exponent), exponent);
}

/** Encodes a float at exactly `exponent` (the study's fixed exponent of a metric). */
export function encodeAtExponent(key: PublicKey, value: number, exponent: number): Encoded {
  if (!Number.isFinite(value)) throw new EncodingError("non_finite", `${value} is not finite`);
  checkExponent(exponent);
  return encodeMantissa(key, roundScaled(value, exponent), exponent);
}

/** The signed mantissa of an encoding: [0, max_int] non-negative, [n - max_int, n) negative, else overflow. */
export function decodeMantissa(key: PublicKey, encoding: bigint): bigint {
  if (encoding < 0n || encoding >= key.n) {
    throw new EncodingError("corrupt_encoding", "encoding outside [0, n)");
  }
  if (encoding <= key.maxInt) return encoding;
  if (encoding >= key.n - key.maxInt) return encoding - key.n;
  throw new EncodingError("decoding_overflow", "the decrypted value overflowed");
}

/** mantissa · 2^shift as the nearest f64 (half to even); throws if it overflows. */
export function scaledToF64(mantissa: bigint, shift: number): number {
  const negative = mantissa < 0n;
  const magnitude = negative ? -mantissa : mantissa;
  if (magnitude === 0n) return 0;
  const top = bitLength(magnitude) - 1 + shift;
  if (top > 1024) throw new EncodingError("float_overflow", "value too large for a float");
  let unit = Math.max(top - 52, -1074);
  const drop = unit - shift;
  let kept =
    drop >= 0 ? roundShiftRightHalfEven(magnitude, drop) : magnitude << BigInt(-drop);
  let bits: bigint;
  if (unit === -1074) {
    bits = kept;
  } else {
    if (kept === 1n << 53n) {
      kept = 1n << 52n;
      unit += 1;
    }
    const biased = unit + 52 + 1023;
    if (biased >= 0x7ff) throw new EncodingError("float_overflow", "value too large for a float");
    bits = (BigInt(biased) << 52n) | (kept - (1n << 52n));
  }
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, bits);
  const value = view.getFloat64(0);
  return negative ? -value : value;
}

/** mantissa · 16^exponent as the nearest f64. */
export function mantissaToNumber(mantissa: bigint, exponent: number): number {
  checkExponent(exponent);
  return scaledToF64(mantissa, 4 * exponent);
}

/** Decodes an encoding to the nearest f64, as python-paillier's `decode`. */
export function decodeToNumber(key: PublicKey, encoded: Encoded): number {
  return mantissaToNumber(decodeMantissa(key, encoded.encoding), encoded.exponent);
}
