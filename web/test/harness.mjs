// Shared by the browser test and the measurements: Chromium from Debian (never a download),
// nginx serving a copy of web/dist, small helpers.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = join(WEB, "..");

/** The flags this machine's notes give: no sandbox as root, no background network. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

export function tempDir(name) {
  return mkdtempSync(join(tmpdir(), `${name}-`));
}

/**
 * nginx serving a copy of web/dist with `study` as study.json, /ws proxied to `broker`
 * (host:port). Returns { url, stop }.
 */
/**
 * nginx's `proxy_bind` line: the first non-loopback IPv4 address of this host, so that the broker
 * never sees the page's sessions as loopback ones (where guest may log in). Empty when the host
 * has none (then guest must not be usable on that broker).
 */
export function proxyBind() {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return `proxy_bind ${a.address};`;
  }
  return "";
}

export async function serve(study, broker) {
  const run = tempDir("web-nginx");
  // nginx's workers run as an unprivileged user: they must be able to read the page.
  chmodSync(run, 0o755);
  const root = join(run, "dist");
  cpSync(join(WEB, "dist"), root, { recursive: true });
  writeFileSync(join(root, "study.json"), JSON.stringify(study, null, 2));
  mkdirSync(join(run, "tmp"));
  const port = await freePort();
  const conf = readFileSync(join(WEB, "nginx/web.conf.template"), "utf8")
    .replaceAll("@RUN@", run)
    .replaceAll("@ROOT@", root)
    .replaceAll("@LISTEN@", `127.0.0.1:${port}`)
    .replaceAll("@BROKER@", broker)
    .replaceAll("@ORIGIN@", "")
    .replaceAll("@PROXY_BIND@", proxyBind());
  writeFileSync(join(run, "nginx.conf"), conf);
  execFileSync("nginx", ["-c", join(run, "nginx.conf"), "-p", run], { stdio: "inherit" });
  return {
    url: `http://127.0.0.1:${port}/`,
    stop() {
      try {
        execFileSync("nginx", ["-c", join(run, "nginx.conf"), "-p", run, "-s", "quit"], { stdio: "ignore" });
      } catch {
        /* already gone */
      }
      rmSync(run, { recursive: true, force: true });
    },
  };
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Starts a process with its output in a log file; returns the child. */
export function startLogged(command, args, options, logFile) {
  const out = [];
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => out.push(d));
  child.stderr.on("data", (d) => out.push(d));
  child.on("exit", () => writeFileSync(logFile, Buffer.concat(out)));
  child.log = () => Buffer.concat(out).toString();
  return child;
}
