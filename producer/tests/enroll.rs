//! `producer enroll` against the real broker, without a worker (submissions stay in the work
//! queue, where they are counted): a bad row stops the run before anything is published (or is
//! skipped with --skip-bad-rows), and a re-run with the journal publishes nothing twice.

use test_support as common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Harness, settings};
use pipeline::ParticipantId;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("producer-enroll-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn enroll(harness: &Harness, dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .arg("enroll")
        .args(["--bits", "2048"])
        .args(args)
        .env("AMQP_URL", &harness.settings.broker.url)
        .env("KEY_STORE", dir.join("keys"))
        .env(
            "PIPELINE__TOPOLOGY__PREFIX",
            &harness.settings.topology.prefix,
        )
        .output()
        .await
        .unwrap()
}

fn remember_reply_queues(harness: &mut Harness, ids: &[&str]) {
    for id in ids {
        let q = harness
            .topology
            .reply_queue(&ParticipantId::new(id).unwrap());
        harness.remember_queue(q);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_stops_the_enrollment_unless_skipped() {
    let mut harness = Harness::new(settings(&[])).await;
    let dir = temp_dir();
    let csv = dir.join("cohort.csv");
    std::fs::write(
        &csv,
        "participant,glucose,cholesterol\nb1,5.1,4.2\nb2,high,4.0\nb3,6.0,\n",
    )
    .unwrap();
    remember_reply_queues(&mut harness, &["b1", "b2", "b3"]);
    let work = harness.topology.work_queue.clone();

    let out = enroll(&harness, &dir, &["--csv", csv.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad row must fail the run");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("nothing was published"), "{stderr}");
    assert_eq!(harness.queue_len(&work).await, 0, "nothing published");
    assert!(
        !dir.join("keys").join("b1.priv.json").exists(),
        "no key created before the file was valid"
    );

    let out = enroll(
        &harness,
        &dir,
        &["--csv", csv.to_str().unwrap(), "--skip-bad-rows"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 participant(s) published"), "{stdout}");
    assert!(
        stdout.contains("1 bad row(s) skipped (lines 3)"),
        "{stdout}"
    );
    assert_eq!(harness.queue_len(&work).await, 2, "the two good rows");

    harness.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_enrollment_publishes_nothing_twice() {
    let mut harness = Harness::new(settings(&[])).await;
    let dir = temp_dir();
    let journal = dir.join("cohort.journal");
    let journal_arg = journal.to_str().unwrap().to_owned();
    remember_reply_queues(&mut harness, &["r1", "r2", "r3", "r4"]);
    let work = harness.topology.work_queue.clone();

    // A first run that got through the first two participants only (as if it had been
    // interrupted): the journal holds them.
    let first = dir.join("first.csv");
    std::fs::write(&first, "id,glucose\nr1,5\nr2,6\nr2,7\n").unwrap();
    let out = enroll(
        &harness,
        &dir,
        &["--csv", first.to_str().unwrap(), "--journal", &journal_arg],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(harness.queue_len(&work).await, 2);

    // The whole cohort with the same journal: only r3 and r4 are published.
    let all = dir.join("all.csv");
    std::fs::write(&all, "id,glucose\nr1,5\nr2,6\nr2,7\nr3,5.5\nr4,4.9\n").unwrap();
    let args = ["--csv", all.to_str().unwrap(), "--journal", &journal_arg];
    let out = enroll(&harness, &dir, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 participant(s) published"), "{stdout}");
    assert!(stdout.contains("2 already done"), "{stdout}");
    assert_eq!(harness.queue_len(&work).await, 4);

    // Once more: everything is done, nothing is published.
    let out = enroll(&harness, &dir, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("0 participant(s) published"), "{stdout}");
    assert!(stdout.contains("4 already done"), "{stdout}");
    assert_eq!(harness.queue_len(&work).await, 4, "nothing published twice");

    // Every message has a distinct submission id (the journal's).
    let messages = harness
        .take(&work, 4, std::time::Duration::from_secs(5))
        .await;
    let ids: std::collections::HashSet<String> = common::json_bodies(&messages)
        .iter()
        .map(|b| b["submission_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4);

    harness.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
