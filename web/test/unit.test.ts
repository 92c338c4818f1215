/**
 * Edge cases of the page's crypto and study handling: encoding at fixed exponents (rounding
 * half to even, negatives, range), packed-result unpacking and its refusals (never a wrong
 * number), key files, primes, readings validation.
 */
import { describe, expect, it } from "vitest";
import { bitLength, modInverse, modPow, randomBetween, toBytes, fromBytes } from "../src/crypto/bigint";
import {
  decodeMantissa,
  encodeAtExponent,
  EncodingError,
  floatExponent,
  frexpExponent,
  mantissaToNumber,
  precisionExponent,
  roundScaled,
  scaledToF64,
} from "../src/crypto/encoding";
import { base64UrlToBigint, bigintToBase64Url, KeyFileError, privateJwk, privateKeyFromJwk } from "../src/crypto/jwk";
import { generateKey, PrivateKey, PublicKey } from "../src/crypto/paillier";
import { isProbablePrime, randomPrime, smallOddPrimes } from "../src/crypto/primes";
import { checkUnusedBits, readResult, ResultError, unpackSlot } from "../src/crypto/results";
import { buildSubmission, parseStudy, StudyError, validateReadings } from "../src/study";
import fixture from "./fixtures/study.json";

// A small key (512 bits) keeps these tests fast; the known-answer tests use python's 2048-bit key.
const key = generateKey(512);
const pk = key.publicKey;

describe("big integers", () => {
  it("modPow agrees with square-and-multiply, for every window width", () => {
    const m = (1n << 521n) - 1n;
    for (const bits of [1, 17, 64, 65, 300, 800, 1600]) {
      const e = randomBetween(1n << BigInt(bits - 1), 1n << BigInt(bits));
      const b = randomBetween(2n, m);
      let expected = 1n;
      for (const c of e.toString(2)) expected = ((expected * expected) % m * (c === "1" ? b : 1n)) % m;
      expect(modPow(b, e, m)).toBe(expected);
    }
    expect(modPow(5n, 0n, 7n)).toBe(1n);
    expect(modPow(5n, 3n, 1n)).toBe(0n);
  });

  it("inverses, bit lengths and bytes", () => {
    expect((modInverse(17n, 3120n) * 17n) % 3120n).toBe(1n);
    expect(() => modInverse(6n, 9n)).toThrow();
    expect([0n, 1n, 255n, 256n, (1n << 1535n) | 1n].map(bitLength)).toEqual([0, 1, 8, 9, 1536]);
    expect(fromBytes(toBytes(0x0102ffn))).toBe(0x0102ffn);
    expect(base64UrlToBigint(bigintToBase64Url(123456789n ** 9n))).toBe(123456789n ** 9n);
    expect(() => base64UrlToBigint("not base64!")).toThrow();
  });
});

describe("primes and keys", () => {
  it("the sieve has the 6,541 odd primes below 2^16", () => {
    const primes = smallOddPrimes();
    expect(primes.length).toBe(6541);
    expect(primes[primes.length - 1]).toBe(65521);
  });

  it("Miller-Rabin tells primes from composites, Carmichael numbers and strong pseudoprimes to base 2 included", () => {
    const m127 = (1n << 127n) - 1n;
    expect(isProbablePrime(m127, 20)).toBe(true);
    expect(isProbablePrime(m127 * ((1n << 89n) - 1n), 20)).toBe(false);
    expect(isProbablePrime(561n, 20)).toBe(false); // Carmichael
    // 3215031751 is a strong pseudoprime to bases 2, 3, 5 and 7.
    expect(isProbablePrime(3215031751n, 20)).toBe(false);
    // A product of two 64-bit primes passes no sieve and is caught by Miller-Rabin.
    const p = randomPrime(64);
    const q = randomPrime(64);
    expect(isProbablePrime(p * q, 20)).toBe(false);
  });

  it("generated primes have exactly the asked length with the top two bits set", () => {
    for (let i = 0; i < 5; i++) {
      const p = randomPrime(128);
      expect(bitLength(p)).toBe(128);
      expect(p >> 126n).toBe(3n);
      expect(isProbablePrime(p, 20)).toBe(true);
    }
  });

  it("a key's modulus has exactly the asked length; CRT and public paths agree", () => {
    expect(pk.bits).toBe(512);
    for (const m of [0n, 1n, pk.n - 1n, 123456789n]) {
      expect(key.decryptRaw(key.encryptRaw(m))).toBe(m);
      expect(key.decryptRaw(pk.encryptRaw(m))).toBe(m);
    }
    // Fresh randomness on every encryption.
    expect(key.encryptRaw(5n)).not.toBe(key.encryptRaw(5n));
    expect(() => key.decryptRaw(0n)).toThrow();
    expect(() => key.decryptRaw(pk.nSquared)).toThrow();
    expect(() => key.decryptRaw(key.p)).toThrow(); // shares a factor with n
  });

  it("key files round-trip and damaged ones are refused with a reason", () => {
    const jwk = privateJwk(key, "k");
    const isPrime = (x: bigint) => isProbablePrime(x, 20);
    expect(privateKeyFromJwk(jwk, isPrime, 512).publicKey.n).toBe(pk.n);
    expect(() => privateKeyFromJwk(jwk, isPrime)).toThrow(/only 2048 to 8192 bits/);
    expect(() => privateKeyFromJwk({ ...jwk, q: jwk.p }, isPrime, 512)).toThrow(/damaged/);
    expect(() => privateKeyFromJwk(jwk.pub, isPrime, 512)).toThrow(/public key file/);
    expect(() => privateKeyFromJwk([jwk], isPrime, 512)).toThrow(KeyFileError);
    expect(() => privateKeyFromJwk({ ...jwk, kty: "RSA" }, isPrime, 512)).toThrow(/key type/);
    // n = p·q with a composite "p": caught by the primality test.
    const composite = 15n * key.p;
    const fake = { ...jwk, p: bigintToBase64Url(composite), q: bigintToBase64Url(key.q), pub: { ...jwk.pub, n: bigintToBase64Url(composite * key.q) } };
    expect(() => privateKeyFromJwk(fake, isPrime, 512)).toThrow();
  });
});

describe("encoding at fixed exponents", () => {
  it("rounds half to even, exactly", () => {
    // 16^-1 = 0.0625: 0.03125 is exactly half a unit.
    expect(roundScaled(0.03125, -1)).toBe(0n);
    expect(roundScaled(0.09375, -1)).toBe(2n); // 1.5 units -> 2
    expect(roundScaled(-0.09375, -1)).toBe(-2n);
    expect(roundScaled(0.15625, -1)).toBe(2n); // 2.5 units -> 2
    expect(roundScaled(5.4, -4)).toBe(353894n); // 5.4 * 65536 = 353894.4
    expect(roundScaled(1e20, 2)).toBe(390625000000000000n);
  });

  it("python-paillier's exponents", () => {
    expect(precisionExponent(0.0001)).toBe(-4);
    expect(precisionExponent(0.001)).toBe(-3);
    expect(precisionExponent(1)).toBe(0);
    expect(precisionExponent(16)).toBe(1);
    expect(floatExponent(5.4)).toBe(-13);
    expect(floatExponent(0)).toBe(-14);
    expect(frexpExponent(Number.MIN_VALUE)).toBe(-1073);
    expect(() => precisionExponent(0)).toThrow(EncodingError);
  });

  it("negative values wrap modulo n and decode back; range and non-finite values are refused", () => {
    const e = encodeAtExponent(pk, -3.75, -4);
    expect(e.encoding).toBe(pk.n - 245760n);
    expect(mantissaToNumber(decodeMantissa(pk, e.encoding), e.exponent)).toBe(-3.75);
    expect(() => encodeAtExponent(pk, NaN, -4)).toThrow(/not finite/);
    expect(() => encodeAtExponent(pk, Infinity, -4)).toThrow(EncodingError);
    expect(() => encodeAtExponent(pk, 1e300, -4)).toThrow(/too large/);
    expect(() => encodeAtExponent(pk, 1, 10_001)).toThrow(/exponent/);
    expect(() => decodeMantissa(pk, pk.maxInt + 1n)).toThrow(/overflow/);
    expect(() => decodeMantissa(pk, pk.n)).toThrow(EncodingError);
  });

  it("decoding rounds to the nearest float, half to even, and refuses overflow", () => {
    expect(scaledToF64((1n << 53n) + 1n, 0)).toBe(2 ** 53);
    expect(scaledToF64((1n << 53n) + 3n, 0)).toBe(2 ** 53 + 4);
    expect(scaledToF64(1n, -1075)).toBe(0);
    expect(scaledToF64(3n, -1076)).toBe(Number.MIN_VALUE);
    expect(scaledToF64(-7n, 2)).toBe(-28);
    expect(() => scaledToF64(1n, 1024)).toThrow(/too large/);
  });
});

describe("packed results", () => {
  /** A format-2 result with these slot values (t = m + bias) at width 40. */
  function packedResult(slots: bigint[], bias = 100n, width = 40, extra = 0n) {
    let plain = extra << BigInt(width * slots.length);
    slots.forEach((t, i) => (plain += t << BigInt(width * i)));
    return {
      version: 2, submission_id: "s-1", participant: "p-1", status: "ok",
      packed: [{ ciphertext: key.encryptRaw(plain).toString() }],
      outputs: slots.map((_, i) => ({ name: `o${i}`, unit: "u", exponent: -1, packed: 0, offset: i * width, width, bias: bias.toString() })),
    };
  }

  it("unpacks signed values", () => {
    const r = readResult(packedResult([107n, 1n, 199n]), key);
    expect(r.status === "ok" && r.outputs.map((o) => o.value)).toEqual([7 / 16, -99 / 16, 99 / 16]);
  });

  it("refuses a slot outside its bound, bits above the slots, and malformed layouts", () => {
    expect(unpackSlot(107n, 0, 40, 100n)).toBe(7n);
    expect(() => unpackSlot(200n, 0, 40, 100n)).toThrow(ResultError); // +100 broke |v| <= 99
    expect(() => unpackSlot(0n, 0, 40, 100n)).toThrow(/outside its bound/); // -100
    expect(() => checkUnusedBits(1n << 120n, 120)).toThrow(/bits set above/);
    expect(() => readResult(packedResult([107n, 200n]), key)).toThrow(/outside its bound/);
    expect(() => readResult(packedResult([107n, 1n], 100n, 40, 1n), key)).toThrow(/bits set above/);
    const bad = packedResult([107n]);
    expect(() => readResult({ ...bad, outputs: [{ ...bad.outputs[0], packed: 1 }] }, key)).toThrow(/packed index/);
    expect(() => readResult({ ...bad, outputs: [{ ...bad.outputs[0], width: 0 }] }, key)).toThrow(/out of range/);
    expect(() => readResult({ ...bad, outputs: [{ ...bad.outputs[0], ciphertext: "1" }] }, key)).toThrow(/ciphertext in a version 2/);
    expect(() => readResult({ ...bad, outputs: [{ ...bad.outputs[0], bias: "-1" }] }, key)).toThrow(/not a decimal/);
    expect(() => readResult({ ...bad, packed: [{ ciphertext: pk.nSquared.toString() }] }, key)).toThrow(/not a ciphertext/);
    expect(() => readResult({ ...bad, version: 3 }, key)).toThrow(/unsupported result version/);
    expect(() => readResult({ ...bad, status: "maybe" }, key)).toThrow(ResultError);
  });

  it("reads error results and format 1", () => {
    expect(readResult({ version: 2, submission_id: "s", status: "error", error: { kind: "unknown_metric", message: "no such metric" } }, key)).toEqual({
      status: "error", submissionId: "s", kind: "unknown_metric", message: "no such metric",
    });
    const c = key.encryptRaw(encodeAtExponent(pk, -2.5, -2).encoding);
    const r = readResult({ version: 1, submission_id: "s", status: "ok", outputs: [{ name: "x", unit: "u", ciphertext: c.toString(), exponent: -2 }] }, key);
    expect(r).toEqual({ status: "ok", submissionId: "s", outputs: [{ name: "x", unit: "u", value: -2.5 }], skipped: [] });
    expect(() => readResult({ version: 1, submission_id: "s", status: "ok", outputs: [{ name: "x", ciphertext: c.toString(), exponent: -2, offset: 0 }] }, key)).toThrow(/slot fields/);
  });
});

describe("study and readings", () => {
  const study = parseStudy(fixture);

  it("reads study.json and refuses inconsistent ones", () => {
    expect(study.metrics.map((m) => [m.name, m.exponent])).toEqual([["glucose", -4], ["cholesterol", -4]]);
    expect(() => parseStudy({ ...fixture, format: 2 })).toThrow(StudyError);
    expect(() => parseStudy({ ...fixture, metrics: [{ ...fixture.metrics[0], exponent: -3 }] })).toThrow(/floor\(log16/);
    expect(() => parseStudy({ ...fixture, metrics: [fixture.metrics[0], fixture.metrics[0]] })).toThrow(/twice/);
    expect(() => parseStudy({ ...fixture, readings_exchange: "a/b" })).toThrow(StudyError);
    expect(() => parseStudy({ ...fixture, key_bits: 1024 })).toThrow(/key_bits/);
  });

  it("validates readings before anything is encrypted", () => {
    expect(validateReadings(study, { glucose: "5.4 6.1", cholesterol: "" })).toEqual({ readings: { glucose: [5.4, 6.1] }, problems: [] });
    const { problems } = validateReadings(study, { glucose: "5,4x -0.1 150.5", cholesterol: "1e400" });
    expect(problems.map((p) => p.metric)).toEqual(["glucose", "glucose", "glucose", "cholesterol"]);
    expect(validateReadings(study, {}).problems[0].message).toMatch(/at least one/);
  });

  it("builds a submission at the fixed exponents that decrypts to the readings", () => {
    const s = buildSubmission(study, "p-1", key, { glucose: [5.4, 0.5], cholesterol: [4.2] }, "s-1");
    expect(s.public_key.n).toBe(pk.n.toString());
    expect(s.readings.glucose.map((r) => r.exponent)).toEqual([-4, -4]);
    const back = s.readings.glucose.map((r) => mantissaToNumber(decodeMantissa(pk, key.decryptRaw(BigInt(r.ciphertext))), r.exponent));
    expect(back).toEqual([353894 / 65536, 0.5]);
    expect(() => buildSubmission(study, "p-1", key, { glucose: [150.1] })).toThrow(RangeError);
  });

  it("takes one precomputed random factor per reading, and falls back when none is ready", () => {
    const factors = [key.ownerObfuscator(), key.ownerObfuscator()];
    const given = [...factors];
    const s = buildSubmission(study, "p-1", key, { glucose: [5.4, 6.1, 7.2] }, "s-2", () => given.shift());
    expect(given).toEqual([]);
    const c = s.readings.glucose.map((r) => BigInt(r.ciphertext));
    // c = (1 + m·n)·r^n: the first two carry exactly the given factors.
    const m0 = encodeAtExponent(pk, 5.4, -4).encoding;
    expect(c[0]).toBe(pk.timesGPow(factors[0], m0));
    expect(new Set(c).size).toBe(3);
    expect(c.map((x) => mantissaToNumber(decodeMantissa(pk, key.decryptRaw(x)), -4))).toEqual([5.4, 6.1, 7.2].map((v) => Math.round(v * 65536) / 65536));
  });
});

describe("key objects", () => {
  it("refuse degenerate primes", () => {
    expect(() => new PrivateKey(key.p, key.p)).toThrow(/equal/);
    expect(() => new PrivateKey(key.p, 65537n)).toThrow(/length/);
    expect(() => new PublicKey(10n)).toThrow();
  });
});
