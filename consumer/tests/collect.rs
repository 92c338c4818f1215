//! A small cohort end to end: `producer enroll` (CSV, keys created) -> in-process worker ->
//! `consumer collect`, the decrypted rows compared with the study computed on the plaintext; a
//! submission re-published after a lost journal line yields a duplicate that is written once.
//! Needs the producer binary next to the consumer's (`cargo test --workspace` or
//! `cargo test -p producer -p consumer` build both).

use test_support as common;
mod support;

use std::collections::BTreeMap;

use common::{Harness, RunningWorker, settings};
use pipeline::ParticipantId;
use support::CohortFiles;

const COHORT: &str = "\
participant,glucose,cholesterol
c1,5.4,4.2
c2,6.1,5.0
c3,4.8,
c3,5.6,
c3,6.3,4.4
c4,7.2,6.1
c5,,3.9
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_cohort_is_collected_decrypted_and_correct() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let ids = ["c1", "c2", "c3", "c4", "c5"];
    for id in ids {
        harness.remember_queue(
            harness
                .topology
                .reply_queue(&ParticipantId::new(id).unwrap()),
        );
    }
    let files = CohortFiles::new("consumer-collect", &settings, COHORT);
    let (dir, journal, out_file) = (
        files.dir.clone(),
        files.journal.clone(),
        files.out_file.clone(),
    );

    let out = files.enroll_command().output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 participant(s) published"), "{stdout}");
    assert!(stdout.contains("5 key(s) created"), "{stdout}");

    // A crash after the broker confirmed the window but before the journal reached the disk:
    // the last journal line is lost, so a re-run publishes c5 again, under the same submission
    // id, and collect must recognise the second result as a duplicate.
    let text = std::fs::read_to_string(&journal).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    assert!(kept.last().unwrap().starts_with("c5\t"), "{text}");
    std::fs::write(&journal, kept[..kept.len() - 1].join("\n") + "\n").unwrap();
    let mut again = files.enroll_command();
    let out = again.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("1 participant(s) published"), "{stdout}");
    assert!(stdout.contains("4 already done"), "{stdout}");

    let worker = RunningWorker::start(&settings);
    // All six results (five plus the duplicate) are queued before collecting.
    for _ in 0..600 {
        if worker.stats.snapshot().done >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(worker.stats.snapshot().done, 6);
    let mut collect = tokio::process::Command::new(env!("CARGO_BIN_EXE_consumer"));
    collect
        .args(["collect", "--wait", "60s", "--out"])
        .arg(&out_file);
    collect.arg("--journal").arg(&journal);
    files.env(&mut collect);
    let out = collect.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 result(s) written (0 error(s))"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 participant(s) still waiting"),
        "{stdout}"
    );
    assert!(stdout.contains("1 duplicate(s)"), "{stdout}");

    // Expected: the study on the plaintext readings of the CSV.
    let mut plain: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for line in COHORT.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        for (metric, cell) in ["glucose", "cholesterol"].iter().zip(&cells[1..]) {
            if !cell.is_empty() {
                plain
                    .entry(cells[0].to_owned())
                    .or_default()
                    .entry((*metric).to_owned())
                    .or_default()
                    .push(cell.parse().unwrap());
            }
        }
    }
    let mut rows = csv::Reader::from_path(&out_file).unwrap();
    let header = rows.headers().unwrap().clone();
    let mut seen = Vec::new();
    for row in rows.records() {
        let row = row.unwrap();
        assert_eq!(&row[2], "ok", "{row:?}");
        let participant = row[0].to_owned();
        let expected = settings
            .study
            .evaluate_plain(&settings.study.rounded_readings(&plain[&participant]));
        for output in &expected.outputs {
            let column = header.iter().position(|h| h == output.name).unwrap();
            let got: f64 = row[column].parse().unwrap();
            assert!(
                (got - output.value).abs() < 1e-6,
                "{participant} {}: {got} != {}",
                output.name,
                output.value
            );
        }
        // Outputs whose metric the participant lacks are empty and listed as skipped.
        for skipped in &expected.skipped {
            let column = header.iter().position(|h| h == skipped).unwrap();
            assert_eq!(&row[column], "", "{participant} {skipped}");
            assert!(row[header.len() - 2].contains(skipped.as_str()));
        }
        seen.push(participant);
    }
    seen.sort();
    assert_eq!(seen, ids);
    for id in ids {
        let q = harness
            .topology
            .reply_queue(&ParticipantId::new(id).unwrap());
        assert_eq!(
            harness.queue_len(&q).await,
            0,
            "{q}: everything written was acked"
        );
    }

    worker.stop().await;
    harness.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
