/**
 * Timings of the page's crypto in the browser (run by test/measure.mjs in headless chromium):
 * key generation in the page's own Web Worker (wall time from the request to the key), then
 * with that key: encrypting one reading at a fixed exponent (owner's CRT path), decrypting one
 * ciphertext, and decrypting a packed 6-output result (one decryption plus unpacking).
 */
import { decodeMantissa, encodeAtExponent } from "../src/crypto/encoding";
import { bitLength } from "../src/crypto/bigint";
import { PrivateKey } from "../src/crypto/paillier";
import { isProbablePrime } from "../src/crypto/primes";
import { readResult } from "../src/crypto/results";

const params = new URLSearchParams(location.search);
const bits = Number(params.get("bits") ?? 3072);
const runs = Number(params.get("runs") ?? 5);
const ops = Number(params.get("ops") ?? 20);

function keygen(): Promise<{ key: PrivateKey; wallMs: number; candidates: number }> {
  const started = performance.now();
  const worker = new Worker(new URL("../src/keygen.worker.ts", import.meta.url), { type: "module" });
  let candidates = 0;
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      if (e.data.type === "progress") candidates = e.data.candidates;
      if (e.data.type === "done") {
        worker.terminate();
        resolve({ key: new PrivateKey(BigInt(e.data.p), BigInt(e.data.q)), wallMs: performance.now() - started, candidates });
      } else if (e.data.type === "error") reject(new Error(e.data.message));
    };
    worker.postMessage({ bits });
  });
}

async function run() {
  const keygenMs: number[] = [];
  const candidates: number[] = [];
  let key: PrivateKey | undefined;
  for (let i = 0; i < runs; i++) {
    const r = await keygen();
    keygenMs.push(r.wallMs);
    candidates.push(r.candidates);
    key = r.key;
    // Not timed: the key is what was asked for (length, and 20 more Miller-Rabin rounds each).
    if (r.key.publicKey.bits !== bits || bitLength(r.key.p) !== bits / 2 || !isProbablePrime(r.key.p, 20) || !isProbablePrime(r.key.q, 20)) {
      throw new Error("generated key failed its check");
    }
    document.getElementById("status")!.textContent = `key ${i + 1}/${runs}`;
  }
  const k = key!;
  const encryptMs: number[] = [];
  const decryptMs: number[] = [];
  const resultMs: number[] = [];
  for (let i = 0; i < ops; i++) {
    const value = 0.5 + i * 1.37;
    let t = performance.now();
    const c = k.encryptRaw(encodeAtExponent(k.publicKey, value, -4).encoding);
    encryptMs.push(performance.now() - t);
    t = performance.now();
    decodeMantissa(k.publicKey, k.decryptRaw(c));
    decryptMs.push(performance.now() - t);
    // A packed result of six 80-bit slots, as the worker sends one.
    const width = 120;
    const bias = (1n << 80n) + 1n;
    let packed = 0n;
    for (let s = 5; s >= 0; s--) packed = (packed << BigInt(width)) + bias + BigInt(1000 * s + i);
    const body = {
      version: 2, submission_id: `b-${i}`, status: "ok",
      packed: [{ ciphertext: k.encryptRaw(packed).toString() }],
      outputs: Array.from({ length: 6 }, (_, s) => ({ name: `o${s}`, unit: "u", exponent: -4, packed: 0, offset: s * width, width, bias: bias.toString() })),
    };
    t = performance.now();
    readResult(body, k);
    resultMs.push(performance.now() - t);
  }
  (window as unknown as { __bench: object }).__bench = { bits, keygenMs, candidates, encryptMs, decryptMs, resultMs };
  document.getElementById("status")!.textContent = "done";
}

run().catch((e) => {
  (window as unknown as { __bench: object }).__bench = { error: String(e) };
});
