/**
 * python-paillier's known-answer vectors (paillier/tests/vectors/phe_vectors.json, made by
 * make_vectors.py with fixed primes and nonces) against the page's crypto: every encoding,
 * every encryption with python's nonce, every decryption and decoding, the pheutil key file and
 * ciphertexts. Homomorphic results (computed by python) must decrypt to python's values.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  decodeMantissa,
  decodeToNumber,
  encodeBigint,
  encodeFloat,
  EncodingError,
  mantissaToNumber,
} from "../src/crypto/encoding";
import { privateJwk, privateKeyFromJwk } from "../src/crypto/jwk";
import { PrivateKey } from "../src/crypto/paillier";
import { isProbablePrime } from "../src/crypto/primes";

type Json = Record<string, any>;
const doc: Json = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../paillier/tests/vectors/phe_vectors.json", import.meta.url)), "utf8"),
);
const key = new PrivateKey(BigInt(doc.key.p), BigInt(doc.key.q));
const pk = key.publicKey;

/** A python float recorded as repr and IEEE bits: taken from the bits, checked against the repr. */
function float(value: string, bits: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt("0x" + bits));
  const x = view.getFloat64(0);
  const repr: Record<string, number> = { inf: Infinity, "-inf": -Infinity, nan: NaN };
  expect(x, `float ${value}`).toBe(value in repr ? repr[value] : Number(value));
  return x;
}

const ERROR_KINDS: Record<string, string> = {
  EncodingOverflow: "encoding_overflow",
  NonFinite: "non_finite",
  DecodingOverflow: "decoding_overflow",
  FloatOverflow: "float_overflow",
};

function encodeVector(v: Json) {
  if (v.kind === "float") {
    const value = v.bits ? float(v.value, v.bits) : Number(v.value);
    const precision = v.precision ? float(v.precision.value, v.precision.bits) : undefined;
    return encodeFloat(pk, value, precision, v.max_exponent);
  }
  return encodeBigint(pk, BigInt(v.value));
}

describe("python-paillier known answers", () => {
  it("uses python's key", () => {
    expect(pk.n.toString()).toBe(doc.key.n);
    expect(pk.nSquared.toString()).toBe(doc.key.n_squared);
    expect(pk.maxInt.toString()).toBe(doc.key.max_int);
    expect(pk.bits).toBe(doc.key.bits);
  });

  it("encodes every value as python does", () => {
    expect(doc.encodings.length).toBeGreaterThan(100);
    const mismatches: string[] = [];
    for (const v of doc.encodings as Json[]) {
      try {
        const e = encodeVector(v);
        if (v.error) mismatches.push(`${v.name}: encoded, python raised ${v.error}`);
        else if (e.encoding.toString() !== v.encoding || e.exponent !== v.exponent) {
          mismatches.push(`${v.name}: (${e.encoding}, ${e.exponent})`);
        } else if (decodeMantissa(pk, e.encoding).toString() !== v.mantissa) {
          mismatches.push(`${v.name}: mantissa`);
        }
      } catch (err) {
        if (!(err instanceof EncodingError) || err.kind !== ERROR_KINDS[v.error]) {
          mismatches.push(`${v.name}: ${String(err)} (python: ${v.error ?? "ok"})`);
        }
      }
    }
    expect(mismatches).toEqual([]);
  });

  it("encrypts with python's nonces to python's ciphertexts, publicly and decrypts them back", () => {
    const mismatches: string[] = [];
    for (const v of doc.encryptions as Json[]) {
      const e = encodeVector(v);
      if (e.encoding.toString() !== v.encoding || e.exponent !== v.exponent) mismatches.push(`${v.name}: encoding`);
      const c = pk.encryptRaw(e.encoding, BigInt(v.r));
      if (c.toString() !== v.ciphertext) mismatches.push(`${v.name}: ciphertext`);
      const m = key.decryptRaw(c);
      if (m.toString() !== v.encoding) mismatches.push(`${v.name}: decryption`);
      if (v.f64 !== undefined) {
        const f = decodeToNumber(pk, { encoding: m, exponent: v.exponent });
        if (f !== Number(v.f64)) mismatches.push(`${v.name}: f64 ${f} != ${v.f64}`);
      } else {
        expect(() => decodeToNumber(pk, { encoding: m, exponent: v.exponent })).toThrow(EncodingError);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it("decrypts python's homomorphic results to python's values", () => {
    const mismatches: string[] = [];
    for (const v of doc.homomorphic as Json[]) {
      const m = decodeMantissa(pk, key.decryptRaw(BigInt(v.ciphertext)));
      if (m.toString() !== v.mantissa) mismatches.push(`${v.name}: mantissa ${m}`);
      if (v.f64 !== undefined && mantissaToNumber(m, v.exponent) !== Number(v.f64)) {
        mismatches.push(`${v.name}: f64`);
      }
    }
    expect(doc.homomorphic.length).toBeGreaterThan(50);
    expect(mismatches).toEqual([]);
  });

  it("decodes as python does, overflow and float rounding included", () => {
    const mismatches: string[] = [];
    for (const v of doc.decodings as Json[]) {
      const m = key.decryptRaw(BigInt(v.ciphertext));
      if (m.toString() !== v.encoding) mismatches.push(`${v.name}: decryption`);
      try {
        const mantissa = decodeMantissa(pk, m);
        if (v.error) {
          mismatches.push(`${v.name}: decoded, python raised ${v.error}`);
          continue;
        }
        if (mantissa.toString() !== v.mantissa) mismatches.push(`${v.name}: mantissa`);
        try {
          const f = mantissaToNumber(mantissa, v.exponent);
          if (v.f64_error || f !== Number(v.f64)) mismatches.push(`${v.name}: f64 ${f} (python: ${v.f64 ?? v.f64_error})`);
        } catch (err) {
          if (!(err instanceof EncodingError) || err.kind !== ERROR_KINDS[v.f64_error]) mismatches.push(`${v.name}: ${err}`);
        }
      } catch (err) {
        if (!(err instanceof EncodingError) || err.kind !== ERROR_KINDS[v.error]) mismatches.push(`${v.name}: ${err}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it("reads pheutil's private key file and decrypts pheutil's ciphertexts", () => {
    const imported = privateKeyFromJwk(JSON.parse(doc.pheutil_private_jwk), (x) => isProbablePrime(x, 4), 1024);
    expect(imported.publicKey.n).toBe(pk.n);
    for (const v of doc.pheutil_ciphertexts as Json[]) {
      const c = JSON.parse(v.json);
      const m = decodeMantissa(pk, imported.decryptRaw(BigInt(c.v)));
      expect(c.e).toBe(v.exponent);
      expect(m.toString()).toBe(v.mantissa);
      expect(mantissaToNumber(m, c.e)).toBe(Number(v.f64));
    }
  });

  it("writes the same key file as pheutil, but for the kid", () => {
    const python = JSON.parse(doc.pheutil_private_jwk);
    const ours = privateJwk(key, python.kid);
    expect(ours.p).toBe(python.p);
    expect(ours.q).toBe(python.q);
    expect(ours.pub.n).toBe(python.pub.n);
    expect(ours.kty).toBe(python.kty);
    expect(ours.pub.alg).toBe(python.pub.alg);
    expect(ours.key_ops).toEqual(python.key_ops);
  });
});
