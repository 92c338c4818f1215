//! Secrets stay home: during a full run against the real broker (`producer keygen`, `producer
//! submit`, a worker computing the result, plus a refused submission with its error result and
//! dead letter), a capture queue bound to every exchange of the test's topology records every
//! message body published, and none contains any private key material (p, q, and every value
//! derived from them that the private key holds or that Paillier decryption uses) in decimal,
//! hex, base64url, base64 or raw bytes. The key store keeps the private key 0600 in a 0700
//! directory, and the producer refuses a private key file that group or others can read.

use test_support as common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Harness, RunningWorker, settings};
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use num_bigint::BigUint;
use num_integer::Integer;
use paillier::json::PrivateJwk;
use participant::Client;
use pipeline::ParticipantId;
use pipeline::messages::{ResultMessage, ResultStatus};

/// Every secret value of a Paillier private key with g = n + 1, by name.
fn secrets(p: &BigUint, q: &BigUint) -> Vec<(&'static str, BigUint)> {
    let one = BigUint::from(1u32);
    let n = p * q;
    let g = &n + 1u32;
    let (p2, q2) = (p * p, q * q);
    let (p1, q1) = (p - 1u32, q - 1u32);
    let lambda = p1.lcm(&q1);
    let phi = &p1 * &q1;
    // h = L(g^(prime-1) mod prime²)⁻¹ mod prime, L(x) = (x - 1) / prime (CRT decryption).
    let h = |prime: &BigUint, square: &BigUint, minus_1: &BigUint| {
        let l = (g.modpow(minus_1, square) - &one) / prime;
        (l % prime).modinv(prime).expect("h exists")
    };
    let n2 = &n * &n;
    // Textbook decryption's μ = L(g^λ mod n²)⁻¹ mod n.
    let mu = (((g.modpow(&lambda, &n2) - &one) / &n) % &n)
        .modinv(&n)
        .expect("mu exists");
    vec![
        ("p", p.clone()),
        ("q", q.clone()),
        ("p^2", p2.clone()),
        ("q^2", q2.clone()),
        ("p-1", p1.clone()),
        ("q-1", q1.clone()),
        ("lambda", lambda.clone()),
        ("phi", phi),
        ("mu", mu),
        ("hp", h(p, &p2, &p1)),
        ("hq", h(q, &q2, &q1)),
        ("p^-1 mod q", p.modinv(q).unwrap()),
        ("q^-1 mod p", q.modinv(p).unwrap()),
        ("(p^2)^-1 mod q^2", p2.modinv(&q2).unwrap()),
        ("(q^2)^-1 mod p^2", q2.modinv(&p2).unwrap()),
        ("lambda^-1 mod n", lambda.modinv(&n).unwrap()),
    ]
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Unpadded base64 with `alphabet` (written here so the test does not trust the code under test).
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The forms a secret could leak in. Base64 is taken at the three byte alignments a value can
/// have inside a longer encoded string, keeping only the characters that depend on the value
/// alone (so a secret embedded in a larger base64 blob is found too).
fn forms(value: &BigUint) -> Vec<(String, Vec<u8>)> {
    let be = value.to_bytes_be();
    let mut out = vec![
        ("decimal".to_owned(), value.to_str_radix(10).into_bytes()),
        ("hex".to_owned(), value.to_str_radix(16).into_bytes()),
        (
            "HEX".to_owned(),
            value.to_str_radix(16).to_uppercase().into_bytes(),
        ),
        ("raw big-endian".to_owned(), be.clone()),
    ];
    for (name, alphabet) in [("base64url", B64URL), ("base64", B64STD)] {
        for shift in 0..3usize {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(&be);
            let text = base64(&shifted, alphabet);
            // Skip the characters mixing prefix bits, and the last 4 (mixing what follows).
            let skip = [0, 2, 3][shift];
            let core = &text[skip..text.len() - 4];
            out.push((
                format!("{name} (alignment {shift})"),
                core.as_bytes().to_vec(),
            ));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn producer(harness: &Harness, keys: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(args)
        .env("AMQP_URL", &harness.settings.broker.url)
        .env("KEY_STORE", keys)
        .env(
            "PIPELINE__TOPOLOGY__PREFIX",
            &harness.settings.topology.prefix,
        )
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_private_key_material_is_ever_published_and_key_files_stay_private() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let topology = harness.topology.clone();
    let participant = ParticipantId::new("p-secrets").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;

    // The capture queue: a copy of everything published to any exchange of this topology.
    let capture = format!("{}capture", harness.settings.topology.prefix);
    harness
        .channel
        .queue_declare(
            ShortString::from(capture.as_str()),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    harness.remember_queue(capture.clone());
    for (exchange, key) in [
        (
            &topology.readings_exchange,
            topology.submission_routing_key.as_str(),
        ),
        (&topology.results_exchange, reply_queue.as_str()),
        (&topology.dead_exchange, ""),
        (&topology.unroutable_exchange, ""),
    ] {
        harness
            .channel
            .queue_bind(
                ShortString::from(capture.as_str()),
                ShortString::from(exchange.as_str()),
                ShortString::from(key),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    let dir = std::env::temp_dir().join(format!("secrets-{}", uuid::Uuid::new_v4()));
    let keys = dir.join("keys");
    let out = producer(
        &harness,
        &keys,
        &["keygen", "--participant", "p-secrets", "--bits", "2048"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let private_file = keys.join("p-secrets.priv.json");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&private_file), 0o600, "private key file mode");
    assert_eq!(mode(&keys), 0o700, "key store directory mode");

    let worker = RunningWorker::start(&settings);
    let out = producer(
        &harness,
        &keys,
        &[
            "submit",
            "--participant",
            "p-secrets",
            "--reading",
            "glucose=5.4",
            "--reading",
            "glucose=6.2",
            "--reading",
            "cholesterol=4.1",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submission_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // A refused submission too: its dead letter and error result are published bodies as well.
    let jwk: PrivateJwk = serde_json::from_slice(&std::fs::read(&private_file).unwrap()).unwrap();
    let key = jwk
        .to_private_key_with_bounds(paillier::KeyBounds::new(2048..=2048))
        .unwrap();
    let refused = serde_json::json!({
        "version": 1, "submission_id": "s-refused", "participant": "p-secrets",
        "public_key": {"n": key.public_key().n().to_string()},
        "readings": {"glucose": [{"ciphertext": "0", "exponent": 0}]}
    });
    harness
        .publish_raw(&serde_json::to_vec(&refused).unwrap(), Some(&reply_queue))
        .await;

    // The results arrive (read as the consumer does), and decrypt.
    let client = Client::connect(&settings, "test-consumer").await.unwrap();
    let mut stream = client.results(&participant, 10).await.unwrap();
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let received = stream
            .next(Duration::from_secs(30))
            .await
            .unwrap()
            .expect("both results within 30 s");
        received.ack().await.unwrap();
        let result: ResultMessage = received.result.unwrap();
        if result.status == ResultStatus::Ok {
            assert_eq!(result.submission_id, submission_id);
            let values = result.decrypt(&key).unwrap();
            // The mean of 5.4 and 6.2 as the producer encodes them: kept to the study's
            // glucose step, 16^-4.
            let metric = harness.settings.study.metric("glucose").unwrap();
            let glucose = (metric.rounded(5.4) + metric.rounded(6.2)) / 2.0;
            assert!(
                (values[0].value - glucose * 18.016).abs() < 1e-9,
                "{values:?}"
            );
        }
        statuses.push(result.status);
    }
    stream.close().await;
    client.close().await;
    worker.stop().await;

    // Submission, result, error result, dead letter, and the refused message itself.
    let captured = harness.take(&capture, 100, Duration::from_secs(3)).await;
    assert_eq!(
        captured.len(),
        5,
        "captured {} bodies: {:?}",
        captured.len(),
        captured
            .iter()
            .map(|m| m.delivery.exchange.to_string())
            .collect::<Vec<_>>()
    );
    let n_decimal = key.public_key().n().to_string();
    assert!(
        captured
            .iter()
            .any(|m| contains(&m.delivery.data, n_decimal.as_bytes())),
        "the public modulus is in the submission: the search works"
    );
    let (p, q) = (key.p(), key.q());
    assert_eq!(p * q, *key.public_key().n());
    let secrets = secrets(p, q);
    let mut checked = 0usize;
    for (name, value) in &secrets {
        for (form, needle) in forms(value) {
            for message in &captured {
                checked += 1;
                assert!(
                    !contains(&message.delivery.data, &needle),
                    "{name} in {form} form was published to {}",
                    message.delivery.exchange
                );
                let headers = format!("{:?}", message.delivery.properties);
                assert!(
                    !contains(headers.as_bytes(), &needle),
                    "{name} in {form} form in the properties"
                );
            }
        }
    }
    eprintln!(
        "secrets: {} values x {} forms searched in {} published bodies ({checked} checks)",
        secrets.len(),
        forms(&secrets[0].1).len(),
        captured.len()
    );

    // A private key file group or others can read is refused, and nothing is published.
    for loose in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&private_file, std::fs::Permissions::from_mode(loose)).unwrap();
        let out = producer(
            &harness,
            &keys,
            &[
                "submit",
                "--participant",
                "p-secrets",
                "--reading",
                "glucose=5",
            ],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "mode {loose:o}: {stderr}");
        assert!(
            stderr.contains("is readable by group or others")
                && stderr.contains(&format!("mode {loose:o}"))
                && stderr.contains("chmod 600"),
            "mode {loose:o}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let after = harness.take(&capture, 10, Duration::from_secs(1)).await;
    assert!(
        after.is_empty(),
        "a refused key published {} messages",
        after.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    harness.cleanup().await;
}

/// The search itself: a value hidden in a longer base64url/base64/hex string at any byte
/// offset is found, and an unrelated value is not.
#[test]
fn the_search_finds_a_secret_embedded_at_any_alignment() {
    let secret =
        BigUint::parse_bytes(b"f1e2d3c4b5a697887766554433221100ffeeddccbbaa9988", 16).unwrap();
    let be = secret.to_bytes_be();
    for prefix in 0..6usize {
        let mut blob: Vec<u8> = (0..prefix as u8).map(|b| b.wrapping_mul(37)).collect();
        blob.extend_from_slice(&be);
        blob.extend_from_slice(&[9, 8, 7, 6, 5]);
        for alphabet in [B64URL, B64STD] {
            let haystack = base64(&blob, alphabet);
            assert!(
                forms(&secret)
                    .iter()
                    .any(|(_, needle)| contains(haystack.as_bytes(), needle)),
                "prefix {prefix}: not found in {haystack}"
            );
        }
        let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            forms(&secret)
                .iter()
                .any(|(_, n)| contains(hex.as_bytes(), n))
        );
    }
    let other = &secret * 3u32 + 12_345u32;
    let haystack = base64(&secret.to_bytes_be(), B64URL);
    assert!(
        !forms(&other)
            .iter()
            .any(|(_, n)| contains(haystack.as_bytes(), n))
    );
}
