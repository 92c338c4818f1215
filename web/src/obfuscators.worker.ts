/**
 * Computes the random factors r^n mod n² of future encryptions ahead of time (the costly part
 * of an encryption), so that sending readings costs one multiplication each. Receives
 * `{p, q, count}` (decimal primes) to start and `{count}` for more; posts each factor, decimal.
 */
import { PrivateKey } from "./crypto/paillier";

let key: PrivateKey | undefined;
let wanted = 0;
let running = false;

function work(): void {
  if (!key || wanted <= 0) {
    running = false;
    return;
  }
  running = true;
  wanted--;
  self.postMessage(key.ownerObfuscator().toString());
  // Yield between factors so that new requests are read.
  setTimeout(work, 0);
}

self.onmessage = (event: MessageEvent<{ p?: string; q?: string; count: number }>) => {
  if (event.data.p && event.data.q) {
    key = new PrivateKey(BigInt(event.data.p), BigInt(event.data.q));
    wanted = 0;
  }
  wanted += event.data.count;
  if (!running) work();
};
