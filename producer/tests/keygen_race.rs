//! Two (here: several) `producer keygen` runs for the same participant at the same time:
//! exactly one creates the key, the others fail saying the key exists, and the key on disk is
//! the winner's, intact.

use std::process::{Command, Stdio};

use participant::keystore::KeyStore;
use pipeline::ParticipantId;

const RUNS: usize = 4;

#[test]
fn concurrent_keygens_for_one_participant_leave_one_intact_key() {
    let root = std::env::temp_dir().join(format!("producer-race-{}", uuid::Uuid::new_v4()));
    let keys = root.join("keys");
    let children: Vec<_> = (0..RUNS)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_producer"))
                .args(["keygen", "--participant", "p-race", "--bits", "2048"])
                .env("KEY_STORE", &keys)
                .env_remove("AMQP_URL")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();

    let winners: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(winners.len(), 1, "{outputs:#?}");
    for lost in outputs.iter().filter(|o| !o.status.success()) {
        let stderr = String::from_utf8_lossy(&lost.stderr);
        assert!(stderr.contains("already has a key"), "{stderr}");
    }
    // The winner printed "<id> <bits> bits <fingerprint> -> <path>": that key is the one stored.
    let printed = String::from_utf8_lossy(&winners[0].stdout).into_owned();
    let fingerprint = printed.split_whitespace().nth(3).unwrap().to_owned();
    let store = KeyStore::new(&keys);
    let id = ParticipantId::new("p-race").unwrap();
    let stored = store.load_private(&id).unwrap();
    assert_eq!(
        stored.public_key().fingerprint().to_string(),
        fingerprint,
        "{printed}"
    );
    let public = store
        .load_public(&id, paillier::KeyBounds::default())
        .unwrap();
    assert_eq!(&public, stored.public_key());
    // Nothing else is left behind (no temporary files).
    assert_eq!(std::fs::read_dir(&keys).unwrap().count(), 2);
    std::fs::remove_dir_all(&root).unwrap();
}
