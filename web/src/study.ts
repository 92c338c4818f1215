/**
 * The study as the page receives it (`study.json`, served next to the page; format in
 * web/README.md), the readings form's validation, and the submission built from it
 * (pipeline/src/messages/submission.rs).
 */
import { encodeAtExponent, precisionExponent } from "./crypto/encoding";
import type { PrivateKey } from "./crypto/paillier";

/** The study.json format this page reads. */
export const STUDY_FORMAT = 1;
/** The submission format the worker reads. */
export const SUBMISSION_VERSION = 1;

/** A metric: what a participant enters. */
export interface Metric {
  name: string;
  unit: string;
  /** Smallest difference the study distinguishes; readings are encoded at `exponent`. */
  precision: number;
  /** python-paillier base-16 exponent = floor(log16(precision)). */
  exponent: number;
  min: number;
  max: number;
}

/** An output: what the worker computes and the participant sees. */
export interface Output {
  name: string;
  unit: string;
}

/** The study. */
export interface Study {
  format: number;
  keyBits: number;
  readingsExchange: string;
  submissionRoutingKey: string;
  replyQueuePrefix: string;
  metrics: Metric[];
  outputs: Output[];
}

/** Why study.json was refused. */
export class StudyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StudyError";
  }
}

/** AMQP/STOMP-safe names: printable ASCII without spaces or "/" (they go into destinations). */
const NAME = /^[A-Za-z0-9._:-]{1,200}$/;

function str(o: Record<string, unknown>, field: string, where: string, pattern?: RegExp): string {
  const v = o[field];
  if (typeof v !== "string" || (pattern && !pattern.test(v))) {
    throw new StudyError(`${where}: "${field}" must be ${pattern ? "a plain name" : "text"}`);
  }
  return v;
}

function num(o: Record<string, unknown>, field: string, where: string): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isFinite(v)) throw new StudyError(`${where}: "${field}" must be a number`);
  return v;
}

/** Reads and checks study.json's parsed content. */
export function parseStudy(json: unknown): Study {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new StudyError("not a JSON object");
  const o = json as Record<string, unknown>;
  if (o.format !== STUDY_FORMAT) throw new StudyError(`study format ${String(o.format)}; this page reads ${STUDY_FORMAT}`);
  const keyBits = num(o, "key_bits", "study");
  if (![2048, 3072, 4096].includes(keyBits)) throw new StudyError("key_bits must be 2048, 3072 or 4096");
  if (!Array.isArray(o.metrics) || o.metrics.length === 0) throw new StudyError("the study has no metrics");
  if (!Array.isArray(o.outputs)) throw new StudyError("the study has no outputs");
  const seen = new Set<string>();
  const metrics = o.metrics.map((m, i): Metric => {
    if (typeof m !== "object" || m === null) throw new StudyError(`metric ${i} is not an object`);
    const r = m as Record<string, unknown>;
    const where = `metric ${i}`;
    const metric: Metric = {
      name: str(r, "name", where, NAME),
      unit: str(r, "unit", where),
      precision: num(r, "precision", where),
      exponent: num(r, "exponent", where),
      min: num(r, "min", where),
      max: num(r, "max", where),
    };
    if (seen.has(metric.name)) throw new StudyError(`metric "${metric.name}" appears twice`);
    seen.add(metric.name);
    if (!(metric.precision > 0)) throw new StudyError(`metric "${metric.name}": precision must be positive`);
    if (metric.exponent !== precisionExponent(metric.precision)) {
      throw new StudyError(`metric "${metric.name}": exponent ${metric.exponent} is not floor(log16(${metric.precision}))`);
    }
    if (!(metric.min <= metric.max)) throw new StudyError(`metric "${metric.name}": min above max`);
    return metric;
  });
  const outputs = o.outputs.map((x, i): Output => {
    if (typeof x !== "object" || x === null) throw new StudyError(`output ${i} is not an object`);
    const r = x as Record<string, unknown>;
    return { name: str(r, "name", `output ${i}`), unit: typeof r.unit === "string" ? r.unit : "" };
  });
  return {
    format: STUDY_FORMAT,
    keyBits,
    readingsExchange: str(o, "readings_exchange", "study", NAME),
    submissionRoutingKey: str(o, "submission_routing_key", "study", NAME),
    replyQueuePrefix: str(o, "reply_queue_prefix", "study", /^[A-Za-z0-9._:-]{0,200}$/),
    metrics,
    outputs,
  };
}

/** A participant id as the pipeline accepts it (pipeline/src/participant.rs, scripts/broker-access). */
export const PARTICIPANT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Readings by metric name: a series of numbers each. */
export type Readings = Record<string, number[]>;

/** A reading the form refused, said plainly. */
export interface ReadingProblem {
  metric: string;
  message: string;
}

/**
 * Parses the form's text fields (several readings of a metric separated by commas or spaces;
 * a decimal comma is not accepted, to avoid "5,4" meaning two readings) and checks each value
 * against its metric's range. Nothing is encrypted until this returns no problems.
 */
export function validateReadings(study: Study, text: Record<string, string>): { readings: Readings; problems: ReadingProblem[] } {
  const readings: Readings = {};
  const problems: ReadingProblem[] = [];
  for (const metric of study.metrics) {
    const raw = (text[metric.name] ?? "").trim();
    if (raw === "") continue;
    const parts = raw.split(/[\s;,]+/).filter((s) => s !== "");
    const values: number[] = [];
    for (const part of parts) {
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(part)) {
        problems.push({ metric: metric.name, message: `"${part}" is not a number (use a dot for decimals, e.g. 5.4)` });
        continue;
      }
      const v = Number(part);
      if (!Number.isFinite(v) || v < metric.min || v > metric.max) {
        problems.push({ metric: metric.name, message: `${part} is outside the accepted range ${metric.min} to ${metric.max} ${metric.unit}` });
        continue;
      }
      values.push(v);
    }
    if (values.length > 0) readings[metric.name] = values;
  }
  if (problems.length === 0 && Object.keys(readings).length === 0) {
    problems.push({ metric: "", message: "Enter at least one reading." });
  }
  return { readings, problems };
}

/** A submission ready to publish. */
export interface SubmissionWire {
  version: number;
  submission_id: string;
  participant: string;
  public_key: { n: string };
  readings: Record<string, { ciphertext: string; exponent: number }[]>;
}

/** A fresh submission id: 128 random bits, hex (printable ASCII, as the worker requires). */
export function newSubmissionId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Encrypts validated readings at each metric's fixed exponent with the owner's fast path, taking
 * each ciphertext's random factor from `nextObfuscator` when it has one ready.
 */
export function buildSubmission(
  study: Study,
  participant: string,
  key: PrivateKey,
  readings: Readings,
  submissionId = newSubmissionId(),
  nextObfuscator: () => bigint | undefined = () => undefined,
): SubmissionWire {
  const encrypted: SubmissionWire["readings"] = {};
  for (const metric of study.metrics) {
    const series = readings[metric.name];
    if (!series || series.length === 0) continue;
    encrypted[metric.name] = series.map((v) => {
      if (v < metric.min || v > metric.max) throw new RangeError(`${metric.name} reading outside its range`);
      const encoded = encodeAtExponent(key.publicKey, v, metric.exponent);
      return { ciphertext: key.encryptRaw(encoded.encoding, nextObfuscator()).toString(), exponent: encoded.exponent };
    });
  }
  return {
    version: SUBMISSION_VERSION,
    submission_id: submissionId,
    participant,
    public_key: { n: key.publicKey.n.toString() },
    readings: encrypted,
  };
}
