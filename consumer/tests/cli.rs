//! The consumer binary against the real broker: results are decrypted and printed with units,
//! a duplicate (same submission id) is shown once, error results are shown as errors, and the
//! queue is empty afterwards (everything printed was acked).

use test_support as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Harness, RunningWorker, settings};
use paillier::PrivateKey;
use participant::keystore::KeyStore;
use participant::{Client, readings};
use pipeline::ParticipantId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_printed_once_with_units_and_errors_as_errors() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let worker = RunningWorker::start(&settings);
    let participant = ParticipantId::new("p-consumer").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    let keys = std::env::temp_dir().join(format!("consumer-cli-{}", uuid::Uuid::new_v4()));
    let store = KeyStore::new(&keys);
    let key = PrivateKey::generate(2048).unwrap();
    store.save(&participant, &key).unwrap();

    let producer = Client::connect(&settings, "test-producer").await.unwrap();
    let readings = BTreeMap::from([
        ("glucose".to_owned(), vec![5.0]),
        ("cholesterol".to_owned(), vec![4.0]),
    ]);
    let submission = readings::encrypt_submission(
        &pipeline::Settings::defaults().study,
        &participant,
        &key,
        &readings,
    )
    .unwrap();
    // The same submission twice: two results with one submission id (as after a redelivery).
    producer.submit(&submission).await.unwrap();
    producer.submit(&submission).await.unwrap();
    harness.publish_raw(b"{not json", Some(&reply_queue)).await;
    // Wait until the worker answered all three.
    for _ in 0..300 {
        if worker.stats.snapshot().done + worker.stats.snapshot().rejected >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_consumer"))
        .args(["--participant", "p-consumer", "--timeout", "2s"])
        .env("AMQP_URL", &settings.broker.url)
        .env("KEY_STORE", &keys)
        .env("PIPELINE__TOPOLOGY__PREFIX", &settings.topology.prefix)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.matches(&submission.submission_id).count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("glucose_mg_dl"), "{stdout}");
    assert!(stdout.contains("90.0800 mg/dL"), "{stdout}");
    assert!(stdout.contains("ERROR malformed_json"), "{stdout}");
    assert!(stderr.contains("duplicates=1"), "{stderr}");
    assert_eq!(
        harness.queue_len(&reply_queue).await,
        0,
        "everything printed was acked"
    );

    producer.close().await;
    worker.stop().await;
    harness.cleanup().await;
    std::fs::remove_dir_all(&keys).unwrap();
}
