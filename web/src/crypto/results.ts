/**
 * Results as the worker sends them (pipeline/src/messages/result.rs) and their decryption with
 * the participant's key. Format 2 is packed: `m = ((D(packed[i]) >> offset) mod 2^width) - bias`,
 * value = m·16^exponent, with the checks of pipeline/src/packing.rs: a slot outside
 * `1..=2·bias - 1`, or bits set above a plaintext's highest slot, refuse the whole result
 * (the readings broke the worker's bound assumption): never a wrong number.
 */
import { parseDecimal } from "./bigint";
import { decodeMantissa, mantissaToNumber, MAX_ABS_EXPONENT } from "./encoding";
import type { PrivateKey } from "./paillier";

/** Result format with one ciphertext per output. */
export const RESULT_VERSION_UNPACKED = 1;
/** Result format with outputs packed into shared ciphertexts. */
export const RESULT_VERSION_PACKED = 2;
/** Largest slot or offset accepted (bits), as result.rs. */
const MAX_SLOT_BITS = 1 << 16;

/** Why a result could not be read or decrypted. */
export class ResultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ResultError";
  }
}

/** One decrypted output. */
export interface DecryptedOutput {
  name: string;
  unit: string;
  value: number;
}

/** What a result says: outputs, or why the worker refused the submission. */
export type ReadResult =
  | { status: "ok"; submissionId: string; outputs: DecryptedOutput[]; skipped: string[] }
  | { status: "error"; submissionId: string; kind: string; message: string };

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function exponentOf(o: Record<string, unknown>, name: string): number {
  const e = o.exponent;
  if (typeof e !== "number" || !Number.isInteger(e) || Math.abs(e) > MAX_ABS_EXPONENT) {
    throw new ResultError(`output "${name}": exponent out of range`);
  }
  return e;
}

function slotNumber(o: Record<string, unknown>, field: string, name: string): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new ResultError(`output "${name}": needs packed, offset, width and bias`);
  }
  return v;
}

/** The signed mantissa in a slot, refused outside `1..=2·bias - 1` (packing.rs `unpack`). */
export function unpackSlot(plaintext: bigint, offset: number, width: number, bias: bigint): bigint {
  const mask = (1n << BigInt(width)) - 1n;
  const slot = (plaintext >> BigInt(offset)) & mask;
  if (slot === 0n || slot >= bias << 1n) {
    throw new ResultError(
      `slot at bit ${offset} holds a value outside its bound: the readings' mantissas exceed the worker's assumption`,
    );
  }
  return slot - bias;
}

/** Refuses a packed plaintext with bits set at or above `used` (packing.rs `check_unused_bits`). */
export function checkUnusedBits(plaintext: bigint, used: number): void {
  if (plaintext >> BigInt(used) !== 0n) {
    throw new ResultError(
      `packed plaintext has bits set above bit ${used}: the readings' mantissas exceed the worker's assumption`,
    );
  }
}

/** A parsed result body; throws ResultError on anything malformed. */
export function readResult(body: unknown, key: PrivateKey): ReadResult {
  if (!isObject(body)) throw new ResultError("a result is a JSON object");
  const submissionId = typeof body.submission_id === "string" ? body.submission_id : "";
  if (!submissionId) throw new ResultError("result without a submission id");
  if (body.status === "error") {
    const error = isObject(body.error) ? body.error : {};
    return {
      status: "error",
      submissionId,
      kind: typeof error.kind === "string" ? error.kind : "unknown",
      message: typeof error.message === "string" ? error.message : "no reason given",
    };
  }
  if (body.status !== "ok") throw new ResultError("result status is neither ok nor error");
  const outputs = Array.isArray(body.outputs) ? body.outputs : [];
  const skipped = Array.isArray(body.skipped) ? body.skipped.filter((s) => typeof s === "string") : [];
  const decrypted =
    body.version === RESULT_VERSION_PACKED
      ? decryptPacked(body, outputs, key)
      : body.version === RESULT_VERSION_UNPACKED
        ? decryptUnpacked(outputs, key)
        : (() => {
            throw new ResultError(`unsupported result version ${String(body.version)} (this page reads 1 and 2)`);
          })();
  return { status: "ok", submissionId, outputs: decrypted, skipped: skipped as string[] };
}

function nameOf(o: Record<string, unknown>): [string, string] {
  if (typeof o.name !== "string") throw new ResultError("output without a name");
  return [o.name, typeof o.unit === "string" ? o.unit : ""];
}

function decryptUnpacked(outputs: unknown[], key: PrivateKey): DecryptedOutput[] {
  return outputs.map((raw) => {
    if (!isObject(raw)) throw new ResultError("an output is a JSON object");
    const [name, unit] = nameOf(raw);
    if (["packed", "offset", "width", "bias"].some((f) => f in raw)) {
      throw new ResultError(`output "${name}": slot fields in a version 1 result`);
    }
    const c = parseDecimalField(raw.ciphertext, name);
    const m = decodeMantissa(key.publicKey, key.decryptRaw(c));
    return { name, unit, value: mantissaToNumber(m, exponentOf(raw, name)) };
  });
}

function parseDecimalField(value: unknown, name: string): bigint {
  try {
    return parseDecimal(value);
  } catch {
    throw new ResultError(`output "${name}": not a decimal number`);
  }
}

function decryptPacked(
  body: Record<string, unknown>,
  outputs: unknown[],
  key: PrivateKey,
): DecryptedOutput[] {
  const packed = Array.isArray(body.packed) ? body.packed : [];
  // Each packed ciphertext is decrypted once, whatever the number of its slots.
  const plaintexts = packed.map((p, i) => {
    if (!isObject(p)) throw new ResultError("a packed ciphertext is a JSON object");
    const c = parseDecimalField(p.ciphertext, `(packed ciphertext ${i})`);
    if (!key.publicKey.isValidCiphertext(c)) {
      throw new ResultError(`packed ciphertext ${i} is not a ciphertext under this key`);
    }
    return key.decryptRaw(c);
  });
  const used = plaintexts.map(() => 0);
  const slots = outputs.map((raw) => {
    if (!isObject(raw)) throw new ResultError("an output is a JSON object");
    const [name, unit] = nameOf(raw);
    if ("ciphertext" in raw) throw new ResultError(`output "${name}": a ciphertext in a version 2 result`);
    const index = slotNumber(raw, "packed", name);
    const offset = slotNumber(raw, "offset", name);
    const width = slotNumber(raw, "width", name);
    const bias = parseDecimalField(raw.bias, name);
    if (index >= plaintexts.length) {
      throw new ResultError(`output "${name}": packed index ${index} but ${plaintexts.length} packed ciphertexts`);
    }
    if (width === 0 || width > MAX_SLOT_BITS || offset > MAX_SLOT_BITS) {
      throw new ResultError(`output "${name}": slot ${offset}+${width} out of range`);
    }
    used[index] = Math.max(used[index], offset + width);
    return { name, unit, index, offset, width, bias, exponent: exponentOf(raw, name) };
  });
  plaintexts.forEach((plaintext, i) => checkUnusedBits(plaintext, used[i]));
  return slots.map((s) => {
    const m = unpackSlot(plaintexts[s.index], s.offset, s.width, s.bias);
    // Through the encoding, as result.rs does: a mantissa beyond max_int is an overflow.
    const magnitude = m < 0n ? -m : m;
    if (magnitude > key.publicKey.maxInt) throw new ResultError(`output "${s.name}": value overflowed`);
    return { name: s.name, unit: s.unit, value: mantissaToNumber(m, s.exponent) };
  });
}
