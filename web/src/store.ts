/**
 * What the page keeps in the browser (IndexedDB database "health-study"):
 * - "keys": the participant's private key as a python-paillier JWK, by participant id;
 * - "results": every result received (its body as sent by the worker, and what was decrypted
 *   from it), by participant id and submission id; a result is acked only after it is here;
 * - "submissions": when each submission was sent, by participant id and submission id.
 * Nothing is stored elsewhere: no password, no readings in the clear.
 */
import type { PrivateJwk } from "./crypto/jwk";
import type { DecryptedOutput } from "./crypto/results";

const DB_NAME = "health-study";
const DB_VERSION = 1;

/** A stored key. */
export interface StoredKey {
  participant: string;
  jwk: PrivateJwk;
  createdAt: string;
}

/** A stored result. */
export interface StoredResult {
  participant: string;
  submissionId: string;
  receivedAt: string;
  /** The result message exactly as received (for re-decryption elsewhere, e.g. with `consumer`). */
  body: string;
  status: "ok" | "error";
  outputs: DecryptedOutput[];
  skipped: string[];
  /** Why the submission was refused, or why the result could not be read. */
  error?: string;
}

/** A submission sent. */
export interface StoredSubmission {
  participant: string;
  submissionId: string;
  sentAt: string;
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
}

/** The page's IndexedDB store. */
export class Store {
  private constructor(private readonly db: IDBDatabase) {}

  /** Opens (creating on first use) the database. */
  static open(): Promise<Store> {
    return new Promise((resolve, reject) => {
      const r = indexedDB.open(DB_NAME, DB_VERSION);
      r.onupgradeneeded = () => {
        const db = r.result;
        db.createObjectStore("keys", { keyPath: "participant" });
        db.createObjectStore("results", { keyPath: ["participant", "submissionId"] });
        db.createObjectStore("submissions", { keyPath: ["participant", "submissionId"] });
      };
      r.onsuccess = () => resolve(new Store(r.result));
      r.onerror = () => reject(r.error);
    });
  }

  /** The participant's key, if the browser has one. */
  async key(participant: string): Promise<StoredKey | undefined> {
    const tx = this.db.transaction("keys", "readonly");
    return request(tx.objectStore("keys").get(participant) as IDBRequest<StoredKey | undefined>);
  }

  /** Stores (or replaces, on import) the participant's key; resolves once durable. */
  async saveKey(key: StoredKey): Promise<void> {
    const tx = this.db.transaction("keys", "readwrite", { durability: "strict" });
    tx.objectStore("keys").put(key);
    await done(tx);
  }

  /** Stores a result; resolves once committed (only then is it acked). */
  async saveResult(result: StoredResult): Promise<void> {
    const tx = this.db.transaction("results", "readwrite", { durability: "strict" });
    tx.objectStore("results").put(result);
    await done(tx);
  }

  /** Whether a result for this submission is already stored (delivery is at-least-once). */
  async hasResult(participant: string, submissionId: string): Promise<boolean> {
    const tx = this.db.transaction("results", "readonly");
    const count = await request(tx.objectStore("results").count([participant, submissionId]));
    return count > 0;
  }

  /** The participant's results, newest first. */
  async results(participant: string): Promise<StoredResult[]> {
    const tx = this.db.transaction("results", "readonly");
    const range = IDBKeyRange.bound([participant, ""], [participant, "\uffff"]);
    const all = await request(tx.objectStore("results").getAll(range) as IDBRequest<StoredResult[]>);
    return all.sort((a, b) => b.receivedAt.localeCompare(a.receivedAt));
  }

  /** Records a sent submission. */
  async saveSubmission(s: StoredSubmission): Promise<void> {
    const tx = this.db.transaction("submissions", "readwrite");
    tx.objectStore("submissions").put(s);
    await done(tx);
  }

  /** When a submission was sent, if this browser sent it. */
  async submission(participant: string, submissionId: string): Promise<StoredSubmission | undefined> {
    const tx = this.db.transaction("submissions", "readonly");
    return request(tx.objectStore("submissions").get([participant, submissionId]) as IDBRequest<StoredSubmission | undefined>);
  }
}
