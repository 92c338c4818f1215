//! End-to-end tests against the real RabbitMQ (AMQP_URL, default 127.0.0.1:5672): submissions go
//! through in-process workers and come back as results that decrypt to the same numbers as the
//! study computed on plaintext; and the client's pipelined reply-queue declares answer each
//! participant in order. Each test has its own topology prefix and deletes it at the end.

use test_support as common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{Harness, RunningWorker, header, json_bodies, settings, shared_key};
use num_bigint::BigUint;
use paillier::PrivateKey;
use participant::{Client, readings};
use pipeline::ParticipantId;
use pipeline::messages::{ResultMessage, ResultStatus, SubmissionWire};
use pipeline::study::{Output, OutputKind, Term};
use worker::{HEADER_KIND, HEADER_REASON, HEADER_REJECTED_BY};

const WAIT: Duration = Duration::from_secs(30);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_computation_kind_decrypts_to_the_plaintext_result() {
    let mut settings = settings(&[]);
    // The default study (scale, sum, mean, weighted sum with fractional weights and a negative
    // offset) plus a score with a negative weight and a sum of a second series.
    settings.study.outputs.push(Output {
        name: "inverse_score".into(),
        unit: Some("points".into()),
        kind: OutputKind::WeightedSum {
            terms: vec![
                Term {
                    metric: "glucose".into(),
                    weight: -1.25,
                },
                Term {
                    metric: "cholesterol".into(),
                    weight: 0.5,
                },
            ],
            offset: 3.0,
        },
    });
    settings.study.outputs.push(Output {
        name: "cholesterol_sum".into(),
        unit: None,
        kind: OutputKind::Sum {
            metric: "cholesterol".into(),
        },
    });
    settings.study.validate().unwrap();
    let mut harness = Harness::new(settings.clone()).await;
    let worker = RunningWorker::start(&settings);

    let participant = ParticipantId::new("p-kinds").unwrap();
    harness.reply_queue(&participant).await;
    let readings = BTreeMap::from([
        ("glucose".to_owned(), vec![5.4, 6.1, 7.3]),
        ("cholesterol".to_owned(), vec![4.2, 3.9]),
    ]);
    let key = shared_key();
    let submission = readings::encrypt_submission(
        &pipeline::Settings::defaults().study,
        &participant,
        key,
        &readings,
    )
    .unwrap();
    let producer = Client::connect(&settings, "test-producer").await.unwrap();
    producer.submit(&submission).await.unwrap();

    let mut results = producer.results(&participant, 10).await.unwrap();
    let received = results
        .next(WAIT)
        .await
        .unwrap()
        .expect("a result within 30 s");
    received.ack().await.unwrap();
    let result = received.result.unwrap();
    assert_eq!(result.submission_id, submission.submission_id);
    assert_eq!(result.status, ResultStatus::Ok, "{result:?}");
    assert_eq!(result.participant.as_deref(), Some("p-kinds"));

    let expected = settings
        .study
        .evaluate_plain(&settings.study.rounded_readings(&readings));
    let decrypted = result.decrypt(key).unwrap();
    assert_eq!(decrypted.len(), settings.study.outputs.len());
    for (got, want) in decrypted.iter().zip(&expected.outputs) {
        assert_eq!(got.name, want.name);
        assert_eq!(got.unit, want.unit);
        assert!(
            close(got.value, want.value),
            "{}: decrypted {} but plaintext gives {}",
            got.name,
            got.value,
            want.value
        );
    }
    results.close().await;
    producer.close().await;
    worker.stop().await;
    harness.cleanup().await;
}

/// A submission whose ciphertexts are replaced, to build hostile variants of a valid message.
fn with_ciphertext(mut wire: SubmissionWire, metric: &str, c: BigUint) -> Vec<u8> {
    wire.readings.get_mut(metric).unwrap()[0].ciphertext = c.into();
    serde_json::to_vec(&wire).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_are_dead_lettered_with_the_reason_and_the_next_one_is_processed() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let worker = RunningWorker::start(&settings);
    let participant = ParticipantId::new("p-hostile").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    let key = shared_key();
    let readings = BTreeMap::from([("glucose".to_owned(), vec![5.0])]);
    let valid = readings::encrypt_submission(
        &pipeline::Settings::defaults().study,
        &participant,
        key,
        &readings,
    )
    .unwrap();

    let malformed = br#"{"version": 1, "readings": {"glucose": [{"ciphertext": "12"#.to_vec();
    let small_key = PrivateKey::generate_insecure_for_tests(1024);
    let weak = serde_json::to_vec(
        &readings::encrypt_submission(
            &pipeline::Settings::defaults().study,
            &participant,
            &small_key,
            &readings,
        )
        .unwrap(),
    )
    .unwrap();
    let n = key.public_key().n();
    let too_big = with_ciphertext(valid.clone(), "glucose", n * n);
    let unknown_metric = serde_json::to_vec(&{
        let mut w = valid.clone();
        let series = w.readings.remove("glucose").unwrap();
        w.readings.insert("weight".into(), series);
        w
    })
    .unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("malformed_json", &malformed),
        ("invalid_public_key", &weak),
        ("invalid_ciphertext", &too_big),
        ("unknown_metric", &unknown_metric),
    ];
    for (_, body) in &cases {
        harness.publish_raw(body, Some(&reply_queue)).await;
    }
    let producer = Client::connect(&settings, "test-producer").await.unwrap();
    producer.submit(&valid).await.unwrap();

    let dead = harness
        .take(&harness.topology.dead_queue.clone(), cases.len(), WAIT)
        .await;
    assert_eq!(
        dead.len(),
        cases.len(),
        "every invalid message is dead-lettered"
    );
    for ((kind, body), message) in cases.iter().zip(&dead) {
        let props = &message.delivery.properties;
        assert_eq!(header(props, HEADER_KIND).as_deref(), Some(*kind));
        let reason = header(props, HEADER_REASON).unwrap();
        assert!(!reason.is_empty());
        assert!(
            header(props, HEADER_REJECTED_BY)
                .unwrap()
                .starts_with("worker-")
        );
        assert_eq!(
            &message.delivery.data[..],
            *body,
            "the original body is kept"
        );
    }
    // Each sender got an error result, and the valid submission its result after them.
    let replies = harness.take(&reply_queue, cases.len() + 1, WAIT).await;
    let replies: Vec<ResultMessage> = replies
        .iter()
        .map(|m| serde_json::from_slice(&m.delivery.data).unwrap())
        .collect();
    let error_kinds: Vec<&str> = replies
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| e.kind.as_str()))
        .collect();
    assert_eq!(error_kinds, cases.iter().map(|c| c.0).collect::<Vec<_>>());
    let ok: Vec<&ResultMessage> = replies
        .iter()
        .filter(|r| r.status == ResultStatus::Ok)
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].submission_id, valid.submission_id);
    let value = ok[0].decrypt(key).unwrap();
    assert!(close(value[0].value, 5.0 * 18.016));

    let stats = worker.stats_when(|s| s.rejected + s.done >= 5).await;
    assert_eq!((stats.rejected, stats.done), (4, 1));
    producer.close().await;
    worker.stop().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_work_queue() {
    // One delivery at a time per worker, so that neither can take the whole queue.
    let settings = settings(&[("broker.prefetch", "1"), ("worker.batch_size", "1")]);
    let mut harness = Harness::new(settings.clone()).await;
    let first = RunningWorker::start(&settings);
    let second = RunningWorker::start(&settings);
    // Publish only once both consume: a worker that starts late on a loaded machine would
    // otherwise find the (quickly processed) queue already empty.
    let work_queue = harness.topology.work_queue.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let consumers = harness
            .channel
            .queue_declare(
                work_queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap()
            .consumer_count();
        if consumers >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not start consuming"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let participant = ParticipantId::new("p-shared").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    let key = shared_key();
    let producer = Client::connect(&settings, "test-producer").await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..16 {
        let readings = BTreeMap::from([("glucose".to_owned(), vec![4.0 + f64::from(i) / 10.0])]);
        let s = readings::encrypt_submission(
            &pipeline::Settings::defaults().study,
            &participant,
            key,
            &readings,
        )
        .unwrap();
        producer.submit(&s).await.unwrap();
        ids.insert(s.submission_id);
    }
    let replies = json_bodies(&harness.take(&reply_queue, ids.len(), WAIT).await);
    let got: HashSet<String> = replies
        .iter()
        .map(|r| r["submission_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids, "every submission answered exactly once");
    // A worker counts a delivery as done after the broker confirmed its result, a moment after
    // the result can already be taken from the reply queue.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (a, b) = loop {
        let (a, b) = (first.stats.snapshot().done, second.stats.snapshot().done);
        if a + b >= 16 || tokio::time::Instant::now() >= deadline {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(a + b, 16);
    assert!(a > 0 && b > 0, "both workers took work: {a} and {b}");
    producer.close().await;
    first.stop().await;
    second.stop().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_in_the_demo_shape_gets_a_correct_demo_reply() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let worker = RunningWorker::start(&settings);
    let reply_queue = format!("{}python-demo", harness.topology.reply_queue_prefix);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/demo_client.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("AMQP_URL", &settings.broker.url)
        .env("READINGS_EXCHANGE", &harness.topology.readings_exchange)
        .env("ROUTING_KEY", &harness.topology.submission_routing_key)
        .env("RESULTS_EXCHANGE", &harness.topology.results_exchange)
        .env("REPLY_QUEUE", &reply_queue)
        .env("KEY_BITS", "2048")
        .output()
        .await
        .expect("python3 must be installed (with pika and phe: pip install pika phe)");
    harness.remember_queue(reply_queue);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python demo client failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(worker.stats_when(|s| s.done >= 1).await.done, 1);
    worker.stop().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_looking_submission_whose_computation_fails_is_dead_lettered_once_not_retried() {
    let mut settings = settings(&[("topology.delivery_limit", "2")]);
    // Readings now always carry their metric's exponent, so the failure comes from the study: a
    // weighted sum whose terms' exponents are about 500 apart (weights 1e300 and 1e-300) needs
    // a slot wider than a 2048-bit plaintext once aligned, every time.
    settings.study.outputs = vec![Output {
        name: "unpackable".into(),
        unit: None,
        kind: OutputKind::WeightedSum {
            terms: vec![
                Term {
                    metric: "glucose".into(),
                    weight: 1e300,
                },
                Term {
                    metric: "cholesterol".into(),
                    weight: 1e-300,
                },
            ],
            offset: 0.0,
        },
    }];
    settings.study.validate().unwrap();
    let mut harness = Harness::new(settings.clone()).await;
    let worker = RunningWorker::start(&settings);
    let participant = ParticipantId::new("p-poison").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    let key = shared_key();
    let wire = readings::encrypt_submission(
        &settings.study,
        &participant,
        key,
        &BTreeMap::from([
            ("glucose".to_owned(), vec![1.0]),
            ("cholesterol".to_owned(), vec![1.0]),
        ]),
    )
    .unwrap();
    harness
        .publish_raw(&serde_json::to_vec(&wire).unwrap(), Some(&reply_queue))
        .await;

    let dead = harness
        .take(&harness.topology.dead_queue.clone(), 1, WAIT)
        .await;
    assert_eq!(dead.len(), 1);
    let props = &dead[0].delivery.properties;
    assert_eq!(
        header(props, HEADER_KIND).as_deref(),
        Some("computation_failed")
    );
    // Deterministic (the same readings overflow the same way every time): refused at once,
    // never retried up to the delivery limit (issue 10).
    assert!(
        header(props, HEADER_REASON)
            .unwrap()
            .contains("computation failed")
    );
    let replies = harness.take(&reply_queue, 1, WAIT).await;
    let reply: ResultMessage = serde_json::from_slice(&replies[0].delivery.data).unwrap();
    assert_eq!(reply.error.unwrap().kind, "computation_failed");
    let stats = worker.stats_when(|s| s.rejected > 0).await;
    assert_eq!(
        (stats.retried, stats.failed, stats.rejected, stats.done),
        (0, 0, 1, 0)
    );
    worker.stop().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_reply_queue_declares_answer_each_participant_in_order() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    // More participants than declares kept in flight, so that two chunks are answered.
    let participants: Vec<ParticipantId> = (0..participant::DECLARES_IN_FLIGHT + 6)
        .map(|i| ParticipantId::new(&format!("p-declare-{i:03}")).unwrap())
        .collect();
    // A few of them already hold results (i results for participant i): the counts must come
    // back next to the right participant.
    let holding = [1usize, 5, participant::DECLARES_IN_FLIGHT + 2];
    for &i in &holding {
        let queue = harness.reply_queue(&participants[i]).await;
        for n in 0..i {
            harness
                .publisher
                .publish(pipeline::broker::Outgoing {
                    exchange: harness.topology.results_exchange.clone(),
                    routing_key: queue.clone(),
                    body: format!("{{\"n\": {n}}}").into_bytes(),
                    properties: lapin::BasicProperties::default().with_delivery_mode(2),
                })
                .await
                .unwrap();
        }
    }
    for p in &participants {
        harness.remember_queue(harness.topology.reply_queue(p));
    }
    let client = Client::connect(&settings, "test-declare").await.unwrap();
    let declared = client.declare_reply_queues(&participants).await.unwrap();
    assert_eq!(declared.len(), participants.len());
    for (i, (p, (queue, ready))) in participants.iter().zip(&declared).enumerate() {
        assert_eq!(queue, &harness.topology.reply_queue(p));
        let expected = if holding.contains(&i) { i as u32 } else { 0 };
        assert_eq!(*ready, expected, "{queue}");
    }
    // Declaring again changes nothing (idempotent), and the queues are bound: a result
    // published to the results exchange under a queue's name lands in it.
    let again = client.declare_reply_queues(&participants).await.unwrap();
    assert_eq!(again, declared);
    let last = &declared.last().unwrap().0;
    harness
        .publisher
        .publish(pipeline::broker::Outgoing {
            exchange: harness.topology.results_exchange.clone(),
            routing_key: last.clone(),
            body: b"{}".to_vec(),
            properties: lapin::BasicProperties::default().with_delivery_mode(2),
        })
        .await
        .unwrap();
    assert_eq!(harness.queue_len(last).await, 1);
    client.close().await;
    harness.cleanup().await;
}
