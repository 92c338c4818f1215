//! The worker binary against the real broker: SIGTERM while it holds deliveries makes it finish,
//! publish and ack what it holds, and exit 0; nothing is lost or answered twice.

use test_support as common;

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use common::{Harness, json_bodies, settings, shared_key};
use participant::{Client, readings};
use pipeline::ParticipantId;
use worker::WorkerEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_deliveries_in_hand_and_exits_zero() {
    let overrides = [
        ("broker.prefetch", "4"),
        ("worker.batch_size", "2"),
        ("worker.batch_max_wait", "5ms"),
    ];
    let settings = settings(&overrides);
    let mut harness = Harness::new(settings.clone()).await;
    let participant = ParticipantId::new("p-sigterm").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    let producer = Client::connect(&settings, "test-producer").await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..30 {
        let readings = BTreeMap::from([("glucose".to_owned(), vec![f64::from(i)])]);
        let s = readings::encrypt_submission(
            &pipeline::Settings::defaults().study,
            &participant,
            shared_key(),
            &readings,
        )
        .unwrap();
        producer.submit(&s).await.unwrap();
        ids.insert(s.submission_id);
    }

    let events = common::events_file(&settings);
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("AMQP_URL", &settings.broker.url)
        .env("PIPELINE__TOPOLOGY__PREFIX", &settings.topology.prefix)
        // Every client of this test is guest (see test_support::settings).
        .env("PIPELINE__IDENTITY__INSECURE_SHARED_USER", "true")
        .env("PIPELINE__BROKER__PREFETCH", "4")
        .env("PIPELINE__WORKER__BATCH_SIZE", "2")
        .env("PIPELINE__WORKER__BATCH_MAX_WAIT", "5ms")
        .arg("--events")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Signal as soon as the first result is out: the worker then holds further deliveries.
    let first = harness.take(&reply_queue, 1, Duration::from_secs(30)).await;
    assert_eq!(first.len(), 1, "the worker produced a result");
    let pid = worker.id().unwrap() as i32;
    // kill(1) rather than a libc dependency.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker exits within 30 s of SIGTERM")
        .unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = worker.stderr.take() {
        use tokio::io::AsyncReadExt as _;
        e.read_to_string(&mut stderr).await.unwrap();
    }
    assert!(status.success(), "exit status {status}\n{stderr}");
    let stopped = common::read_worker_events(&events)
        .into_iter()
        .any(|e| matches!(e, WorkerEvent::WorkerStopped { .. }));
    common::remove_events_file(&events);
    assert!(stopped, "no worker_stopped event\n{stderr}");

    // Everything is either answered (once) or still waiting in the work queue; nothing unacked.
    let rest = harness
        .take(&reply_queue, ids.len(), Duration::from_secs(2))
        .await;
    let answered: Vec<String> = json_bodies(&first)
        .into_iter()
        .chain(json_bodies(&rest))
        .map(|r| r["submission_id"].as_str().unwrap().to_owned())
        .collect();
    let distinct: HashSet<String> = answered.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        answered.len(),
        "no submission answered twice"
    );
    assert!(distinct.is_subset(&ids));
    let waiting = harness
        .queue_len(&harness.topology.work_queue.clone())
        .await as usize;
    assert_eq!(
        answered.len() + waiting,
        ids.len(),
        "answered + still queued = submitted"
    );
    assert!(
        waiting > 0,
        "the worker stopped before draining the queue (prefetch 4)"
    );
    producer.close().await;
    harness.cleanup().await;
}
