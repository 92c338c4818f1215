//! The producer binary's contract: keys land in the key store 0600; bad input and an unreachable
//! broker are clear errors with a non-zero exit, and nothing is published.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("producer-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn producer(keys: &PathBuf, prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(args)
        .env("KEY_STORE", keys)
        .env("PIPELINE__TOPOLOGY__PREFIX", prefix)
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read_and_bad_submissions_fail() {
    let keys = temp_dir().join("keys");
    // No broker is touched by any of these commands, so a prefix that exists nowhere is fine.
    let prefix = format!("cli-{}.", uuid::Uuid::new_v4().simple());
    let out = producer(
        &keys,
        &prefix,
        &["keygen", "--participant", "p-cli", "--bits", "2048"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(keys.join("p-cli.priv.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = producer(&keys, &prefix, &["keygen", "--participant", "p-cli"]);
    assert!(!again.status.success(), "a key is never overwritten");

    let cases: [(&[&str], &str); 6] = [
        // Outside the study's plausible range: refused before anything is encrypted.
        (
            &[
                "submit",
                "--participant",
                "p-cli",
                "--reading",
                "glucose=151",
            ],
            "glucose = 151 mmol/L is outside the study's plausible range 0..=150 mmol/L",
        ),
        (
            &[
                "submit",
                "--participant",
                "p-cli",
                "--reading",
                "glucose=5",
                "--reading",
                "cholesterol=-1",
            ],
            "cholesterol = -1 mmol/L is outside",
        ),
        (
            &["submit", "--participant", "p-cli", "--reading", "weight=80"],
            "unknown metric",
        ),
        (
            &[
                "submit",
                "--participant",
                "p-cli",
                "--reading",
                "glucose=high",
            ],
            "not a finite number",
        ),
        (
            &[
                "submit",
                "--participant",
                "p-none",
                "--reading",
                "glucose=5",
            ],
            "no key for participant",
        ),
        (
            &["submit", "--participant", "../x", "--reading", "glucose=5"],
            "participant id",
        ),
    ];
    for (args, expected) in cases {
        let out = producer(&keys, &prefix, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a submission id");
    }

    // A key readable by others is refused.
    std::fs::set_permissions(
        keys.join("p-cli.priv.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = producer(
        &keys,
        &prefix,
        &["submit", "--participant", "p-cli", "--reading", "glucose=5"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::remove_dir_all(keys.parent().unwrap()).unwrap();
}

#[test]
fn an_unreachable_broker_fails_fast_with_a_clear_error() {
    let keys = temp_dir().join("keys");
    let prefix = format!("cli-{}.", uuid::Uuid::new_v4().simple());
    assert!(
        producer(
            &keys,
            &prefix,
            &["keygen", "--participant", "p-1", "--bits", "2048"]
        )
        .status
        .success()
    );
    let started = Instant::now();
    let out = producer(
        &keys,
        &prefix,
        &[
            "--amqp-url",
            "amqp://guest:secret@127.0.0.1:1/%2f",
            "submit",
            "--participant",
            "p-1",
            "--reading",
            "glucose=5",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot connect to the broker"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is not printed: {stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(keys.parent().unwrap()).unwrap();
}

#[test]
fn keygen_without_bits_takes_the_configured_key_size() {
    let keys = temp_dir().join("keys");
    let out = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["keygen", "--participant", "p-sized"])
        .env("KEY_STORE", &keys)
        .env("PIPELINE__PARTICIPANT__KEY_BITS", "2048")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("p-sized 2048 bits"), "{stdout}");
    let refused = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["keygen", "--participant", "p-odd"])
        .env("KEY_STORE", &keys)
        .env("PIPELINE__PARTICIPANT__KEY_BITS", "1024")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("participant.key_bits"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn study_json_writes_the_published_study_with_the_topology_prefix() {
    let dir = temp_dir();
    let prefix = format!("cli-{}.", uuid::Uuid::new_v4().simple());
    let file = dir.join("study.json");
    let out = producer(
        &dir.join("keys"),
        &prefix,
        &["study-json", "--output", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let study: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(study["format"], 1);
    assert_eq!(study["readings_exchange"], format!("{prefix}readings"));
    assert_eq!(study["reply_queue_prefix"], format!("{prefix}results."));
    assert_eq!(study["metrics"][0]["exponent"], -4);
    // Without --output it goes to standard output, the same document.
    let out = producer(&dir.join("keys"), &prefix, &["study-json"]);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, study);
    std::fs::remove_dir_all(dir).unwrap();
}
