/**
 * A pool of random factors r^n mod n² for the key owner's encryptions, filled by a Web Worker
 * while the participant types. Each factor is handed out once and forgotten (a reused factor
 * would reveal the difference of two readings); the pool belongs to one key and is dropped
 * with it. When it is empty, encryption computes its factor on the spot.
 */
import type { PrivateKey } from "./crypto/paillier";

/** Factors kept ready: enough for a submission of this many readings. */
const POOL_SIZE = 8;

export class ObfuscatorPool {
  private readonly ready: bigint[] = [];
  private readonly worker: Worker;

  constructor(key: PrivateKey) {
    this.worker = new Worker(new URL("./obfuscators.worker.ts", import.meta.url), { type: "module" });
    this.worker.onmessage = (event: MessageEvent<string>) => {
      this.ready.push(BigInt(event.data));
    };
    this.worker.postMessage({ p: key.p.toString(), q: key.q.toString(), count: POOL_SIZE });
  }

  /** A fresh factor, or undefined when none is ready (the caller computes one). */
  take(): bigint | undefined {
    const factor = this.ready.shift();
    if (factor !== undefined) this.worker.postMessage({ count: 1 });
    return factor;
  }

  /** How many are ready now. */
  get size(): number {
    return this.ready.length;
  }

  /** Stops the worker and forgets every factor. */
  close(): void {
    this.worker.terminate();
    this.ready.length = 0;
  }
}
