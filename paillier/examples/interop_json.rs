//! Interoperability probe for other implementations (the participant's web page tests against
//! it: `web/test/interop.test.ts`). Reads one JSON request on stdin and writes one JSON answer:
//!
//! ```text
//! {"generate_bits": 2048}                       -> {"private_jwk": {...}}   (as the key store writes it)
//! {"private_jwk": {...},
//!  "decrypt": [{"v": "<c>", "e": -4}, ...],     -> {"decrypted": [5.4, ...],
//!  "decrypt_raw": ["<c>", ...],                     "decrypted_raw": ["<m>", ...],
//!  "encrypt": [{"value": 5.4, "precision": 1e-4}]   "encrypted": [{"v": "<c>", "e": -4}, ...]}
//! ```
//!
//! Encryption uses the public half only (python-paillier's `encrypt(value, precision)`); keys
//! from 1024 bits are accepted so that tests can use small ones. Errors go to stderr with exit
//! status 1.

use std::io::Read;

use paillier::json::{EncryptedJson, PrivateJwk};
use paillier::{KeyBounds, PrivateKey};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    generate_bits: Option<u64>,
    private_jwk: Option<PrivateJwk>,
    #[serde(default)]
    decrypt: Vec<EncryptedJson>,
    #[serde(default)]
    decrypt_raw: Vec<paillier::json::BigUintDecimal>,
    #[serde(default)]
    encrypt: Vec<Plain>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    value: f64,
    precision: f64,
}

fn run() -> Result<Value, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let request: Request = serde_json::from_str(&input).map_err(|e| format!("request: {e}"))?;
    if let Some(bits) = request.generate_bits {
        let key = PrivateKey::generate(bits).map_err(|e| format!("generate: {e}"))?;
        return Ok(json!({ "private_jwk": PrivateJwk::new(&key, "interop_json") }));
    }
    let jwk = request.private_jwk.ok_or("no private_jwk")?;
    let key = jwk
        .to_private_key_with_bounds(KeyBounds::new(1024..=8192))
        .map_err(|e| format!("private_jwk: {e}"))?;
    let public = key.public_key();
    let decrypted = request
        .decrypt
        .iter()
        .map(|c| {
            let value = c.decode(public)?;
            key.decrypt_f64(&value)
        })
        .collect::<Result<Vec<f64>, _>>()
        .map_err(|e| format!("decrypt: {e}"))?;
    let decrypted_raw = request
        .decrypt_raw
        .iter()
        .map(|c| {
            let value = public.encrypted_number(c.0.clone(), 0)?;
            Ok(key.decrypt_raw(&value.ciphertext()).to_string())
        })
        .collect::<Result<Vec<String>, paillier::Error>>()
        .map_err(|e| format!("decrypt_raw: {e}"))?;
    let encrypted = request
        .encrypt
        .iter()
        .map(|p| {
            let encoded = public.encode_f64_with(p.value, Some(p.precision), None)?;
            Ok(EncryptedJson::new(&public.encrypt(&encoded)?))
        })
        .collect::<Result<Vec<EncryptedJson>, paillier::Error>>()
        .map_err(|e| format!("encrypt: {e}"))?;
    Ok(json!({ "decrypted": decrypted, "decrypted_raw": decrypted_raw, "encrypted": encrypted }))
}

fn main() {
    match run() {
        Ok(answer) => println!("{answer}"),
        Err(message) => {
            eprintln!("interop_json: {message}");
            std::process::exit(1);
        }
    }
}
