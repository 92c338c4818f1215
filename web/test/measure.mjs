// Times the page's crypto in headless Debian chromium (bench/ built with vite.bench.config.ts):
// 3072-bit key generation in the page's Web Worker, encryption, decryption, result decryption.
// Prints medians; RUNS (default 7) keys and OPS (default 20) operations.
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { launchChromium, median, WEB } from "./harness.mjs";

const runs = Number(process.env.RUNS || 7);
const ops = Number(process.env.OPS || 20);
const bits = Number(process.env.BITS || 3072);
execFileSync("npx", ["vite", "build", "--config", "vite.bench.config.ts", "--logLevel", "warn"], { cwd: WEB, stdio: "inherit" });
const dist = join(WEB, ".run/bench-dist");
const types = { ".html": "text/html", ".js": "text/javascript" };
const server = createServer((req, res) => {
  const path = normalize(new URL(req.url, "http://x").pathname).replace(/^\/+/, "") || "index.html";
  try {
    const body = readFileSync(join(dist, path));
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html?bits=${bits}&runs=${runs}&ops=${ops}`);
  await page.waitForFunction(() => window.__bench, null, { timeout: 1_800_000, polling: 500 });
  const r = await page.evaluate(() => window.__bench);
  if (r.error) throw new Error(r.error);
  const fmt = (xs) => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}, n=${xs.length})`;
  console.log(`chromium ${browser.version()}, ${bits}-bit key`);
  console.log(`key generation (Web Worker, wall): ${fmt(r.keygenMs)}; all: ${r.keygenMs.map((x) => (x / 1000).toFixed(2) + " s").join(", ")}`);
  console.log(`Miller-Rabin candidates per key (both primes, after the sieve): ${r.candidates.join(", ")}`);
  console.log(`encrypt one reading (owner CRT): ${fmt(r.encryptMs)}`);
  console.log(`decrypt one ciphertext (CRT): ${fmt(r.decryptMs)}`);
  console.log(`decrypt a packed 6-output result: ${fmt(r.resultMs)}`);
  if (errors.length) throw new Error(`console errors: ${errors.join("; ")}`);
} finally {
  await browser.close();
  server.close();
}
