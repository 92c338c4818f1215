//! `consumer collect` killed between writing a row and acking its result, re-run on the same
//! file: the state such a crash leaves is built exactly (rows in the file whose results are
//! still queued, and a last row cut short), then the re-run must complete the file with every
//! result once, ack the redelivered ones without writing them again, and drop the torn row.
//! Needs the producer binary next to the consumer's (`cargo test -p producer -p consumer`).

use test_support as common;
mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use common::{Harness, RunningWorker, settings};
use lapin::BasicProperties;
use pipeline::ParticipantId;
use pipeline::broker::Outgoing;
use support::CohortFiles;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_crash_before_the_ack_writes_every_result_once() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let ids = ["k1", "k2", "k3", "k4"];
    let mut queues = HashMap::new();
    for id in ids {
        let q = harness
            .topology
            .reply_queue(&ParticipantId::new(id).unwrap());
        harness.remember_queue(q.clone());
        queues.insert(id, q);
    }
    let files = CohortFiles::new(
        "consumer-crash",
        &settings,
        "participant,glucose,cholesterol\nk1,5.4,4.2\nk2,6.1,5.0\nk3,4.8,3.9\nk4,7.2,6.1\n",
    );
    let (dir, out_file) = (files.dir.clone(), files.out_file.clone());

    let out = files.enroll_command().output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let worker = RunningWorker::start(&settings);
    // Take the four results off their queues, to put them back as the crash would leave them.
    let mut results = HashMap::new();
    for id in ids {
        let got = harness.take(&queues[id], 1, Duration::from_secs(60)).await;
        assert_eq!(got.len(), 1, "{id}'s result");
        results.insert(id, got.into_iter().next().unwrap().delivery);
    }
    worker.stop().await;
    let put_back = |id: &str| {
        let d = &results[id];
        Outgoing {
            exchange: harness.topology.results_exchange.clone(),
            routing_key: queues[id].clone(),
            body: d.data.clone(),
            properties: BasicProperties::default()
                .with_delivery_mode(2)
                .with_correlation_id(
                    d.properties
                        .correlation_id()
                        .clone()
                        .unwrap_or_else(|| "".into()),
                ),
        }
    };
    let collect = || {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_consumer"));
        c.args(["collect", "--wait", "30s", "--participants"])
            .arg(dir.join("participants"))
            .arg("--out")
            .arg(&out_file);
        files.env(&mut c);
        c
    };

    // First run: k1, k2, k3 written and acked.
    std::fs::write(dir.join("participants"), "k1\nk2\nk3\n").unwrap();
    for id in ["k1", "k2", "k3"] {
        harness.publisher.publish(put_back(id)).await.unwrap();
    }
    let out = collect().output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The crash: k3's row was written but its ack never sent (k3 is back in its queue), and
    // k4's row was cut short (k4 is still queued too).
    harness.publisher.publish(put_back("k3")).await.unwrap();
    harness.publisher.publish(put_back("k4")).await.unwrap();
    let k4_id =
        serde_json::from_slice::<serde_json::Value>(&results["k4"].data).unwrap()["submission_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&out_file)
        .unwrap();
    write!(file, "k4,{},o", &k4_id[..8]).unwrap();
    drop(file);

    // The re-run on the same file.
    std::fs::write(dir.join("participants"), "k1\nk2\nk3\nk4\n").unwrap();
    let out = collect().output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 result(s) written"), "{stdout}");
    assert!(stdout.contains("3 already in the file"), "{stdout}");
    assert!(stdout.contains("1 duplicate(s)"), "{stdout}");
    assert!(
        stderr.contains("cut short"),
        "the torn row is reported: {stderr}"
    );

    let mut rows = csv::Reader::from_path(&out_file).unwrap();
    let mut written: Vec<String> = rows.records().map(|r| r.unwrap()[0].to_owned()).collect();
    written.sort();
    assert_eq!(written, ids, "every result exactly once, no torn row");
    for id in ids {
        assert_eq!(harness.queue_len(&queues[id]).await, 0, "{id}: acked");
    }
    harness.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
