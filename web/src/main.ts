/**
 * The participant's page: sign in, create or import the key, send encrypted readings, read
 * results as they arrive. Every secret stays in this browser (see store.ts).
 */
import "./style.css";
import { bitLength } from "./crypto/bigint";
import { KeyFileError, privateJwk, privateKeyFromJwk, type PrivateJwk } from "./crypto/jwk";
import { PrivateKey } from "./crypto/paillier";
import { isProbablePrime, millerRabinRounds } from "./crypto/primes";
import { readResult } from "./crypto/results";
import { ObfuscatorPool } from "./obfuscators";
import { Store, type StoredResult } from "./store";
import { buildSubmission, parseStudy, PARTICIPANT_ID, validateReadings, type Study } from "./study";
import { BrokerSession, ConnectionError, type Delivery } from "./transport";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

interface State {
  study: Study;
  store: Store;
  session?: BrokerSession;
  key?: PrivateKey;
  latestSubmission?: string;
  /** Random factors of the key's next encryptions, computed ahead. */
  pool?: ObfuscatorPool;
  /** Whether this session reads the reply queue already (once per session, whatever the key). */
  subscribed?: boolean;
}

function show(...ids: string[]): void {
  for (const id of ["loading", "signin", "key", "readings", "results", "key-tools"]) {
    $(id).hidden = !ids.includes(id);
  }
}

/** The reply queue of a participant ("results.<id>", topology prefix included by study.json). */
function replyQueue(study: Study, participant: string): string {
  return study.replyQueuePrefix + participant;
}

/** A number for people: up to 4 decimals, trailing zeros dropped. */
function formatValue(value: number): string {
  return value.toLocaleString("en-US", { maximumFractionDigits: 4, useGrouping: false });
}

async function main(): Promise<void> {
  let study: Study;
  try {
    const response = await fetch("study.json", { cache: "no-cache" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    study = parseStudy(await response.json());
  } catch (e) {
    $("loading").textContent = `The study description could not be loaded (${(e as Error).message}). Please try again later.`;
    $("loading").className = "error";
    return;
  }
  let store: Store;
  try {
    store = await Store.open();
  } catch {
    $("loading").textContent = "This browser does not let the page keep your key (private browsing, or site data blocked). Please allow site data for this page, or use another browser.";
    $("loading").className = "error";
    return;
  }
  const state: State = { study, store };
  buildForm(study);
  wireSignIn(state);
  wireKey(state);
  wireReadings(state);
  $("sign-out").addEventListener("click", () => void signOut(state));
  show("signin");
}

function buildForm(study: Study): void {
  const fields = $("fields");
  for (const metric of study.metrics) {
    const id = `metric-${metric.name}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = `${metric.name.replace(/_/g, " ")} (${metric.unit})`;
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.id = `${id}-hint`;
    hint.textContent = `From ${metric.min} to ${metric.max} ${metric.unit}, kept to about ${metric.precision} ${metric.unit}. Several readings: separate them with spaces. Leave empty if you have none.`;
    const input = document.createElement("input");
    input.id = id;
    input.name = metric.name;
    input.inputMode = "decimal";
    input.autocomplete = "off";
    input.setAttribute("aria-describedby", hint.id);
    input.dataset.metric = metric.name;
    fields.append(label, hint, input);
  }
}

function wireSignIn(state: State): void {
  const form = $<HTMLFormElement>("signin-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void signIn(state);
  });
}

async function signIn(state: State): Promise<void> {
  const participant = $<HTMLInputElement>("participant").value.trim();
  const password = $<HTMLInputElement>("password").value;
  const error = $("signin-error");
  error.textContent = "";
  if (!PARTICIPANT_ID.test(participant)) {
    error.textContent = "Enter your participant id: letters, digits, - and _ only, as in your enrollment letter.";
    $("participant").focus();
    return;
  }
  if (password === "") {
    error.textContent = "Enter your password.";
    $("password").focus();
    return;
  }
  const button = $<HTMLButtonElement>("signin-button");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    state.session = await BrokerSession.connect(participant, password);
    state.subscribed = false;
  } catch (e) {
    error.textContent = e instanceof ConnectionError ? e.message : "Signing in failed. Please try again.";
    return;
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
  $<HTMLInputElement>("password").value = "";
  $("who").textContent = `Signed in as ${participant}`;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  const stored = await state.store.key(participant);
  if (stored) {
    try {
      useKey(state, keyFromStoredJwk(stored.jwk));
    } catch (e) {
      showKeyPage(`The key stored in this browser cannot be used (${(e as Error).message}). Import your key file, or create a new key.`);
    }
  } else {
    showKeyPage("");
  }
}

function showKeyPage(message: string): void {
  show("key");
  $("key-error").textContent = message;
  $("create-key").focus();
}

/** Primality check of imported primes, with the rounds of key generation. */
function importedPrime(x: bigint): boolean {
  return isProbablePrime(x, millerRabinRounds(bitLength(x)));
}

/** The page's own stored key: no full primality test (it made or checked the key itself). */
function keyFromStoredJwk(jwk: PrivateJwk): PrivateKey {
  return privateKeyFromJwk(jwk, () => true);
}

async function signOut(state: State): Promise<void> {
  await state.session?.close();
  state.session = undefined;
  state.key = undefined;
  state.pool?.close();
  state.pool = undefined;
  state.subscribed = false;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("result-list").replaceChildren();
  show("signin");
  $("participant").focus();
}

function wireKey(state: State): void {
  $("create-key").addEventListener("click", () => void createKey(state));
  for (const [inputId, errorId] of [["import-key", "key-error"], ["replace-key", "key-tools-error"]]) {
    $<HTMLInputElement>(inputId).addEventListener("change", (event) => {
      const input = event.target as HTMLInputElement;
      const file = input.files?.[0];
      input.value = "";
      if (file) void importKey(state, file, $(errorId));
    });
  }
  $("export-key").addEventListener("click", () => exportKey(state));
}

function createKey(state: State): Promise<void> {
  const session = state.session;
  if (!session) return Promise.resolve();
  const bits = state.study.keyBits;
  $<HTMLButtonElement>("create-key").disabled = true;
  $("keygen").hidden = false;
  $("key-error").textContent = "";
  const progress = $<HTMLProgressElement>("keygen-progress");
  const status = $("keygen-status");
  status.textContent = `Creating a ${bits}-bit key…`;
  const worker = new Worker(new URL("./keygen.worker.ts", import.meta.url), { type: "module" });
  // Candidates tested per prime, on average, after the sieve: 2/ln(2^half) of odd numbers are
  // prime and the sieve leaves about a tenth of them. Progress within a prime is an estimate.
  const expectedPerPrime = (bits / 2) * Math.LN2 * 0.05;
  let foundAt = 0;
  let primesFound = 0;
  return new Promise((resolve) => {
    worker.onmessage = async (event) => {
      const data = event.data;
      if (data.type === "progress") {
        if (data.primesFound !== primesFound) {
          primesFound = data.primesFound;
          foundAt = data.candidates;
        }
        progress.value = primesFound + Math.min(0.95, (data.candidates - foundAt) / (2 * expectedPerPrime));
        status.textContent = `Creating a ${bits}-bit key: ${data.primesFound} of 2 primes found (${data.candidates} candidates tested).`;
      } else if (data.type === "done") {
        worker.terminate();
        const key = new PrivateKey(BigInt(data.p), BigInt(data.q));
        document.body.dataset.keygenMillis = String(Math.round(data.millis));
        progress.value = 2;
        await saveAndUse(state, session.participant, key);
        status.textContent = "Your key is ready.";
        $<HTMLButtonElement>("create-key").disabled = false;
        $("keygen").hidden = true;
        resolve();
      } else {
        worker.terminate();
        $("key-error").textContent = `Creating the key failed (${data.message}).`;
        $<HTMLButtonElement>("create-key").disabled = false;
        resolve();
      }
    };
    worker.onerror = (e) => {
      worker.terminate();
      $("key-error").textContent = `Creating the key failed (${e.message}).`;
      $<HTMLButtonElement>("create-key").disabled = false;
      resolve();
    };
    worker.postMessage({ bits });
  });
}

async function saveAndUse(state: State, participant: string, key: PrivateKey): Promise<void> {
  const kid = `${participant} ${key.publicKey.fingerprint()}`;
  await state.store.saveKey({ participant, jwk: privateJwk(key, kid), createdAt: new Date().toISOString() });
  useKey(state, key);
}

async function importKey(state: State, file: File, error: HTMLElement): Promise<void> {
  const session = state.session;
  if (!session) return;
  error.textContent = "";
  let key: PrivateKey;
  try {
    if (file.size > 64 * 1024) throw new KeyFileError("this file is too large to be a key file");
    let json: unknown;
    try {
      json = JSON.parse(await file.text());
    } catch {
      throw new KeyFileError("this file is not a key file (it is not JSON)");
    }
    key = privateKeyFromJwk(json, importedPrime);
  } catch (e) {
    error.textContent = `The key could not be imported: ${(e as Error).message}.`;
    return;
  }
  await saveAndUse(state, session.participant, key);
}

function exportKey(state: State): void {
  const key = state.key;
  const participant = state.session?.participant;
  if (!key || !participant) return;
  const jwk = privateJwk(key, `${participant} ${key.publicKey.fingerprint()}`);
  const blob = new Blob([JSON.stringify(jwk, null, 2) + "\n"], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  // The key store's file name, so the file drops into `consumer --key-store DIR`.
  link.download = `${participant}.priv.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

function useKey(state: State, key: PrivateKey): void {
  const session = state.session;
  if (!session) return;
  state.key = key;
  state.pool?.close();
  state.pool = new ObfuscatorPool(key);
  $("fingerprint").textContent = key.publicKey.fingerprint();
  show("readings", "results", "key-tools");
  void renderHistory(state);
  if (!state.subscribed) {
    state.subscribed = true;
    session.subscribe(replyQueue(state.study, session.participant), (d) => void onResult(state, d));
  }
  $<HTMLInputElement>(`metric-${state.study.metrics[0].name}`).focus();
}

function wireReadings(state: State): void {
  $<HTMLFormElement>("readings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void send(state);
  });
}

async function send(state: State): Promise<void> {
  const { session, key, study } = state;
  if (!session || !key) return;
  const text: Record<string, string> = {};
  const inputs = Array.from(document.querySelectorAll<HTMLInputElement>("#fields input"));
  for (const input of inputs) {
    text[input.dataset.metric ?? ""] = input.value;
    input.removeAttribute("aria-invalid");
  }
  const status = $("send-status");
  const error = $("send-error");
  error.replaceChildren();
  status.textContent = "";
  const { readings, problems } = validateReadings(study, text);
  if (problems.length > 0) {
    const list = document.createElement("ul");
    for (const p of problems) {
      const item = document.createElement("li");
      item.textContent = p.metric ? `${p.metric.replace(/_/g, " ")}: ${p.message}` : p.message;
      list.append(item);
      if (p.metric) $(`metric-${p.metric}`).setAttribute("aria-invalid", "true");
    }
    error.append(list);
    const first = inputs.find((i) => i.getAttribute("aria-invalid") === "true") ?? inputs[0];
    first.focus();
    return;
  }
  const button = $<HTMLButtonElement>("send");
  button.disabled = true;
  status.textContent = "Encrypting…";
  try {
    // Let the status paint before the (tens of milliseconds of) encryption.
    await new Promise((r) => setTimeout(r, 0));
    const started = performance.now();
    const pool = state.pool;
    const submission = buildSubmission(study, session.participant, key, readings, undefined, () => pool?.take());
    document.body.dataset.encryptMillis = String(Math.round(performance.now() - started));
    status.textContent = "Sending…";
    state.latestSubmission = submission.submission_id;
    await state.store.saveSubmission({ participant: session.participant, submissionId: submission.submission_id, sentAt: new Date().toISOString() });
    await session.publish(
      study.readingsExchange,
      study.submissionRoutingKey,
      replyQueue(study, session.participant),
      submission.submission_id,
      JSON.stringify(submission),
    );
    status.textContent = "Sent. Your results will appear below in a moment.";
    for (const input of inputs) input.value = "";
  } catch (e) {
    status.textContent = "";
    error.textContent = e instanceof ConnectionError ? e.message : `Your readings could not be sent (${(e as Error).message}).`;
  } finally {
    button.disabled = false;
  }
}

async function onResult(state: State, delivery: Delivery): Promise<void> {
  const { session, key, store } = state;
  if (!session || !key) return;
  let record: StoredResult;
  let parsed: unknown;
  try {
    parsed = JSON.parse(delivery.body);
  } catch {
    parsed = undefined;
  }
  const submissionId =
    (typeof parsed === "object" && parsed !== null && typeof (parsed as Record<string, unknown>).submission_id === "string"
      ? ((parsed as Record<string, unknown>).submission_id as string)
      : delivery.correlationId) ?? `unknown-${Date.now()}`;
  const base = { participant: session.participant, submissionId, receivedAt: new Date().toISOString(), body: delivery.body };
  try {
    if (parsed === undefined) throw new Error("the result is not JSON");
    const started = performance.now();
    const result = readResult(parsed, key);
    document.body.dataset.decryptMillis = String(Math.round(performance.now() - started));
    record =
      result.status === "ok"
        ? { ...base, status: "ok", outputs: result.outputs, skipped: result.skipped }
        : { ...base, status: "error", outputs: [], skipped: [], error: `The study could not use these readings: ${result.message}` };
  } catch (e) {
    record = { ...base, status: "error", outputs: [], skipped: [], error: `This result could not be read: ${(e as Error).message}` };
  }
  try {
    // A redelivered result (at-least-once) is acked again but stored and shown once.
    if (!(await store.hasResult(record.participant, record.submissionId))) await store.saveResult(record);
  } catch (e) {
    // Not stored: not acked either, so the broker delivers it again later.
    $("send-error").textContent = `A result could not be saved in this browser (${(e as Error).message}); it will be fetched again.`;
    return;
  }
  delivery.ack();
  if (record.submissionId === state.latestSubmission) {
    $("send-status").textContent = record.status === "ok" ? "Your latest result has arrived." : "Your latest readings could not be used: see below.";
  }
  await renderHistory(state);
}

async function renderHistory(state: State): Promise<void> {
  const session = state.session;
  if (!session) return;
  const results = await state.store.results(session.participant);
  $("no-results").hidden = results.length > 0;
  const list = $("result-list");
  list.replaceChildren(
    ...results.map((r) => {
      const item = document.createElement("li");
      item.dataset.submissionId = r.submissionId;
      item.dataset.status = r.status;
      if (r.submissionId === state.latestSubmission) item.classList.add("latest");
      const heading = document.createElement("h3");
      heading.textContent = `Result of ${new Date(r.receivedAt).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" })}`;
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = `Submission ${r.submissionId}`;
      item.append(heading, meta);
      if (r.status === "error") {
        const p = document.createElement("p");
        p.className = "error";
        p.textContent = r.error ?? "The study could not use these readings.";
        item.append(p);
        return item;
      }
      const table = document.createElement("table");
      const caption = document.createElement("caption");
      caption.className = "skip";
      caption.textContent = "Decrypted results";
      const head = table.createTHead().insertRow();
      for (const title of ["Result", "Value", "Unit"]) {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = title;
        head.append(th);
      }
      const body = table.createTBody();
      for (const o of r.outputs) {
        const row = body.insertRow();
        row.dataset.output = o.name;
        row.dataset.value = String(o.value);
        const name = document.createElement("th");
        name.scope = "row";
        name.textContent = o.name;
        row.append(name);
        const value = row.insertCell();
        value.className = "value";
        value.textContent = formatValue(o.value);
        row.insertCell().textContent = o.unit;
      }
      table.prepend(caption);
      item.append(table);
      if (r.skipped.length > 0) {
        const p = document.createElement("p");
        p.className = "meta";
        p.textContent = `Not computed (a reading they need was missing): ${r.skipped.join(", ")}.`;
        item.append(p);
      }
      return item;
    }),
  );
}

void main();
