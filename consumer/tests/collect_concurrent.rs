//! `consumer collect --wait` started before anything is computed, for a cohort of many
//! participants whose results arrive interleaved while it runs (the worker computes them in
//! batches meanwhile): every participant's queue is consumed at once, and the file must end with
//! exactly one correct row per submission, every result acked, nobody left waiting.
//! Needs the producer binary next to the consumer's (`cargo test -p producer -p consumer`).

use test_support as common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Harness, RunningWorker, settings};
use pipeline::ParticipantId;
use support::CohortFiles;

/// Participants in the cohort: more than one decryption batch of a busy run, small enough to
/// create the keys in a few seconds.
const PARTICIPANTS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_arriving_for_many_participants_at_once_are_written_once_each() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let mut cohort = String::from("participant,glucose,cholesterol\n");
    let mut plain: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for i in 0..PARTICIPANTS {
        let id = format!("cc{i:02}");
        let (g, c) = (4.0 + i as f64 / 10.0, 3.0 + i as f64 / 20.0);
        cohort.push_str(&format!("{id},{g},{c}\n"));
        plain.insert(
            id.clone(),
            BTreeMap::from([
                ("glucose".to_owned(), vec![g]),
                ("cholesterol".to_owned(), vec![c]),
            ]),
        );
        harness.remember_queue(
            harness
                .topology
                .reply_queue(&ParticipantId::new(&id).unwrap()),
        );
    }
    let files = CohortFiles::new("consumer-concurrent", &settings, &cohort);
    let (dir, journal, out_file) = (
        files.dir.clone(),
        files.journal.clone(),
        files.out_file.clone(),
    );

    // Enrolled first (keys created), with no worker running: nothing is computed yet.
    let out = files.enroll_command().output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // collect starts with every queue empty, then the worker starts: results arrive while
    // collect runs, for many participants at once.
    let mut collect = tokio::process::Command::new(env!("CARGO_BIN_EXE_consumer"));
    collect
        .args(["collect", "--wait", "90s", "--out"])
        .arg(&out_file)
        .arg("--journal")
        .arg(&journal);
    files.env(&mut collect);
    let collecting = collect.output();
    let worker = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        RunningWorker::start(&settings)
    };
    let (out, worker) = tokio::join!(collecting, worker);
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{PARTICIPANTS} result(s) written (0 error(s))")),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 participant(s) still waiting"),
        "{stdout}"
    );

    // One row per submission of the journal, each with the study computed on the plaintext.
    let journaled: BTreeSet<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(journaled.len(), PARTICIPANTS);
    let mut rows = csv::Reader::from_path(&out_file).unwrap();
    let header = rows.headers().unwrap().clone();
    let mut written = BTreeSet::new();
    let mut participants = BTreeSet::new();
    for row in rows.records() {
        let row = row.unwrap();
        assert_eq!(&row[2], "ok", "{row:?}");
        assert!(
            written.insert(row[1].to_owned()),
            "{} written twice",
            &row[1]
        );
        participants.insert(row[0].to_owned());
        let expected = settings
            .study
            .evaluate_plain(&settings.study.rounded_readings(&plain[&row[0]]));
        for output in &expected.outputs {
            let column = header.iter().position(|h| h == output.name).unwrap();
            let got: f64 = row[column].parse().unwrap();
            assert!(
                (got - output.value).abs() < 1e-6,
                "{} {}: {got} != {}",
                &row[0],
                output.name,
                output.value
            );
        }
    }
    assert_eq!(written, journaled, "exactly the journal's submissions");
    assert_eq!(participants.len(), PARTICIPANTS);
    for id in plain.keys() {
        let q = harness
            .topology
            .reply_queue(&ParticipantId::new(id).unwrap());
        assert_eq!(harness.queue_len(&q).await, 0, "{q}: everything was acked");
    }

    worker.stop().await;
    harness.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
