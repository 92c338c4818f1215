/**
 * python-paillier's JWK key files, as `pheutil genpkey` and `producer keygen` write them
 * (paillier/src/json.rs): key type "DAJ", algorithm "PAI-GN1", big integers in unpadded
 * base64url of their big-endian bytes.
 */
import { bitLength, fromBytes, toBytes } from "./bigint";
import { PrivateKey, PublicKey } from "./paillier";

/** The python-paillier key type. */
export const JWK_KEY_TYPE = "DAJ";
/** The python-paillier public key algorithm. */
export const JWK_ALGORITHM = "PAI-GN1";

/** A public key file. */
export interface PublicJwk {
  kty: string;
  alg: string;
  key_ops: string[];
  n: string;
  kid: string;
}

/** A private key file. */
export interface PrivateJwk {
  kty: string;
  key_ops: string[];
  p: string;
  q: string;
  pub: PublicJwk;
  kid: string;
}

/** Unpadded base64url of a non-negative integer's big-endian bytes (python's int_to_base64). */
export function bigintToBase64Url(x: bigint): string {
  let binary = "";
  for (const b of toBytes(x)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The integer of a base64url string (padding tolerated), refusing other characters and over 16,384 bits. */
export function base64UrlToBigint(text: unknown): bigint {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
    throw new TypeError("not a base64url integer");
  }
  const b64 = text.replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
  if ((b64.length * 3) / 4 > 2048) throw new TypeError("base64url integer longer than 16384 bits");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return fromBytes(bytes);
}

/** The public JWK of a key. */
export function publicJwk(key: PublicKey, kid: string): PublicJwk {
  return { kty: JWK_KEY_TYPE, alg: JWK_ALGORITHM, key_ops: ["encrypt"], n: bigintToBase64Url(key.n), kid };
}

/** The private JWK of a key; the public half gets the same kid (as the key store writes it). */
export function privateJwk(key: PrivateKey, kid: string): PrivateJwk {
  return {
    kty: JWK_KEY_TYPE,
    key_ops: ["decrypt"],
    p: bigintToBase64Url(key.p),
    q: bigintToBase64Url(key.q),
    pub: publicJwk(key.publicKey, kid),
    kid,
  };
}

/** Why a key file was refused. */
export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

/**
 * A private key from a JWK file's parsed JSON: key type, algorithm, n within `minBits..maxBits`,
 * p·q = n, and p, q probable primes (`isPrime`, injected so that a caller can run it in a worker).
 */
export function privateKeyFromJwk(
  json: unknown,
  isPrime: (x: bigint) => boolean,
  minBits = 2048,
  maxBits = 8192,
): PrivateKey {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new KeyFileError("not a key file (expected a JSON object)");
  }
  const jwk = json as Record<string, unknown>;
  if (jwk.kty !== JWK_KEY_TYPE) throw new KeyFileError(`key type is not "${JWK_KEY_TYPE}"`);
  if (!("p" in jwk) || !("q" in jwk)) {
    throw new KeyFileError("this is a public key file: the private key file (….priv.json) is needed");
  }
  const pub = jwk.pub as Record<string, unknown> | undefined;
  if (typeof pub !== "object" || pub === null || Array.isArray(pub)) {
    throw new KeyFileError("the key file has no public half");
  }
  if (pub.kty !== JWK_KEY_TYPE || pub.alg !== JWK_ALGORITHM) {
    throw new KeyFileError(`public half is not a "${JWK_ALGORITHM}" key`);
  }
  let n: bigint, p: bigint, q: bigint;
  try {
    n = base64UrlToBigint(pub.n);
    p = base64UrlToBigint(jwk.p);
    q = base64UrlToBigint(jwk.q);
  } catch {
    throw new KeyFileError("the key file's numbers are not base64url integers");
  }
  const bits = bitLength(n);
  if (bits < minBits || bits > maxBits) {
    throw new KeyFileError(`key of ${bits} bits: only ${minBits} to ${maxBits} bits are accepted`);
  }
  // The product first: it bounds p and q before any primality test.
  if (p * q !== n) throw new KeyFileError("the key file is damaged (p·q differs from n)");
  let key: PrivateKey;
  try {
    key = new PrivateKey(p, q);
  } catch (e) {
    throw new KeyFileError(`the key file is not a valid key (${(e as Error).message})`);
  }
  if (!isPrime(p) || !isPrime(q)) throw new KeyFileError("the key file is not a valid key (p or q is not prime)");
  return key;
}
