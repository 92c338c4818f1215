/**
 * The page's crypto against the Rust crate, both ways, through paillier/examples/interop_json.rs
 * (INTEROP_BIN): a key made here is used by Rust and a key made by Rust (as `producer keygen`
 * writes it) is imported here; readings encrypted here at the study's fixed exponents decrypt in
 * Rust to the same values, and Rust's ciphertexts decrypt here.
 */
import { execFileSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { bitLength } from "../src/crypto/bigint";
import { decodeMantissa, encodeAtExponent, mantissaToNumber, precisionExponent } from "../src/crypto/encoding";
import { privateJwk, privateKeyFromJwk } from "../src/crypto/jwk";
import { generateKey, PrivateKey } from "../src/crypto/paillier";
import { isProbablePrime, millerRabinRounds } from "../src/crypto/primes";

const BIN = process.env.INTEROP_BIN;

function rust(request: object): any {
  if (!BIN) throw new Error("INTEROP_BIN is not set (run: scripts/web test interop)");
  return JSON.parse(execFileSync(BIN, { input: JSON.stringify(request), encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] }));
}

/** Values across the study's range, with awkward ones: halves of the last unit, negatives. */
const VALUES = [5.4, 0.5, 50, 7.123456789, 4.2, 0.0001, 12.00003, -3.75, 0, 1e-9, 33.33335];
const PRECISIONS = [1e-4, 1e-4, 1e-4, 1e-4, 0.001, 1e-4, 1e-4, 0.01, 1e-4, 1e-4, 1e-4];

describe("interop with the Rust paillier crate", () => {
  let ours: PrivateKey;
  beforeAll(() => {
    ours = generateKey(2048);
  });

  it("Rust decrypts what the page encrypts (owner's CRT path and public path) at fixed exponents", () => {
    const cipher = VALUES.map((v, i) => {
      const e = encodeAtExponent(ours.publicKey, v, precisionExponent(PRECISIONS[i]));
      const c = i % 2 === 0 ? ours.encryptRaw(e.encoding) : ours.publicKey.encryptRaw(e.encoding);
      return { v: c.toString(), e: e.exponent, expected: mantissaToNumber(decodeMantissa(ours.publicKey, e.encoding), e.exponent) };
    });
    const answer = rust({
      private_jwk: privateJwk(ours, "web"),
      decrypt: cipher.map(({ v, e }) => ({ v, e })),
      // The same values as Rust encodes them: the exponents must agree with ours.
      encrypt: VALUES.map((value, i) => ({ value, precision: PRECISIONS[i] })),
    });
    expect(answer.decrypted).toEqual(cipher.map((c) => c.expected));
    // Rust's python-paillier encoding with the precision gives our fixed exponents.
    expect(answer.encrypted.map((c: { e: number }) => c.e)).toEqual(cipher.map((c) => c.e));
    // ... and the same values (decrypted here).
    const back = answer.encrypted.map((c: { v: string; e: number }) =>
      mantissaToNumber(decodeMantissa(ours.publicKey, ours.decryptRaw(BigInt(c.v))), c.e),
    );
    expect(back).toEqual(cipher.map((c) => c.expected));
    // Close to what was entered: within half a unit of the exponent.
    back.forEach((v: number, i: number) => expect(Math.abs(v - VALUES[i])).toBeLessThanOrEqual(16 ** cipher[i].e / 2 + 1e-15));
  });

  it("a key made by Rust imports into the page, and both decrypt each other's ciphertexts", () => {
    const { private_jwk } = rust({ generate_bits: 2048 });
    const imported = privateKeyFromJwk(private_jwk, (x) => isProbablePrime(x, millerRabinRounds(bitLength(x))));
    expect(imported.publicKey.bits).toBe(2048);
    const fromRust = rust({ private_jwk, encrypt: VALUES.map((value, i) => ({ value, precision: PRECISIONS[i] })) });
    const ours = fromRust.encrypted.map((c: { v: string; e: number }) =>
      mantissaToNumber(decodeMantissa(imported.publicKey, imported.decryptRaw(BigInt(c.v))), c.e),
    );
    const raw = VALUES.map(() => BigInt(Math.floor(Math.random() * 1e15)));
    const answer = rust({
      private_jwk,
      decrypt: fromRust.encrypted,
      decrypt_raw: raw.map((m) => imported.encryptRaw(m).toString()),
    });
    expect(ours).toEqual(answer.decrypted);
    expect(answer.decrypted_raw).toEqual(raw.map(String));
    // The page's export of that key is the same file, but for the kid.
    const exported = privateJwk(imported, private_jwk.kid);
    expect(exported).toEqual(private_jwk);
  });

  it("Rust refuses a damaged key file exported by the page", () => {
    const jwk = privateJwk(ours, "web");
    jwk.p = jwk.q;
    expect(() => rust({ private_jwk: jwk })).toThrow();
  });
});
