/**
 * Key generation off the page's main thread (it takes seconds): receives `{bits}`, posts
 * `{type: "progress", candidates, primesFound}` now and then and `{type: "done", p, q}` (decimal)
 * at the end, or `{type: "error", message}`.
 */
import { generateKey } from "./crypto/paillier";

/** Progress messages at most this often. */
const PROGRESS_INTERVAL_MS = 100;

self.onmessage = (event: MessageEvent<{ bits: number }>) => {
  try {
    let last = 0;
    const started = performance.now();
    const key = generateKey(event.data.bits, (progress) => {
      const now = performance.now();
      if (now - last >= PROGRESS_INTERVAL_MS || progress.primesFound === 2) {
        last = now;
        self.postMessage({ type: "progress", ...progress });
      }
    });
    self.postMessage({
      type: "done",
      p: key.p.toString(),
      q: key.q.toString(),
      millis: performance.now() - started,
    });
  } catch (e) {
    self.postMessage({ type: "error", message: (e as Error).message });
  }
};
