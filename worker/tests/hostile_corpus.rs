//! A corpus of hostile messages against the worker binary and the real broker, in both message
//! formats (this project's submission and the original demo's request). Every one must be
//! dead-lettered to `readings.dead` with the expected `x-rejection-kind` and a reason, quickly
//! and without the worker's peak memory running away; valid messages sent after the corpus
//! must still be answered. A second test runs the worker with non-default `[limits]` and shows
//! each limit enforced at its configured value, before the work it protects.

use test_support as common;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Harness, header, settings, shared_key};
use lapin::BasicProperties;
use lapin::options::QueueDeclareOptions;
use lapin::types::ShortString;
use num_bigint::BigUint;
use paillier::PrivateKey;
use paillier::json::DemoPayload;
use participant::readings;
use pipeline::ParticipantId;
use pipeline::broker::Outgoing;
use pipeline::messages::{ResultMessage, ResultStatus};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use worker::{HEADER_KIND, HEADER_REASON, WorkerEvent};

/// The whole corpus must be refused within this time: the real cost is a few seconds at most
/// on a loaded two-core machine, so a message that stalls the worker fails the test.
const CORPUS_DEADLINE: Duration = Duration::from_secs(60);
/// Longest a single batch may take (the `elapsed_ms` of the worker's `batch` events).
const BATCH_DEADLINE_MS: u64 = 10_000;
/// Largest growth of the worker's peak resident memory (VmHWM) over the corpus. The biggest
/// bodies are 1 MiB + 1 and 8 MiB (both refused unread); prefetch lets the worker hold up to
/// 64 deliveries, so buffering alone explains some tens of MiB; a parser that blew up on the
/// 1,000,000-bit key, 5,000 readings or deep nesting would exceed this.
const HWM_GROWTH_LIMIT_KB: u64 = 96 * 1024;

/// One hostile message: a name, the body, whether it carries reply_to, and the expected kind.
struct Case {
    name: String,
    body: Vec<u8>,
    reply_to: bool,
    kind: &'static str,
}

fn case(name: &str, body: impl Into<Vec<u8>>, kind: &'static str) -> Case {
    Case {
        name: name.to_owned(),
        body: body.into(),
        reply_to: true,
        kind,
    }
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// `doc` with the JSON pointer `at` replaced by `value`.
fn with(doc: &Value, at: &str, value: Value) -> Vec<u8> {
    let mut doc = doc.clone();
    *doc.pointer_mut(at).unwrap_or_else(|| panic!("{at}")) = value;
    to_vec(&doc)
}

/// `doc` without the member at `at` (parent pointer and key).
fn without(doc: &Value, parent: &str, key: &str) -> Vec<u8> {
    let mut doc = doc.clone();
    doc.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key);
    to_vec(&doc)
}

/// Replaces the first occurrence of `from` in the serialised `doc` (to build what serde_json
/// values cannot hold: duplicate keys, bare tokens, raw bytes).
fn textual(doc: &Value, from: &str, to: &[u8]) -> Vec<u8> {
    let text = to_vec(doc);
    let at = text
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the document"));
    [&text[..at], to, &text[at + from.len()..]].concat()
}

/// An odd number of exactly `bits` bits with no small factor is hard to build by hand; these
/// helpers give numbers of a chosen length whose only defect is the one under test.
fn odd_of_bits(bits: u64) -> BigUint {
    (BigUint::from(1u32) << (bits - 1)) + 1u32
}

fn corpus(key: &PrivateKey, participant: &ParticipantId) -> Vec<Case> {
    let pk = key.public_key();
    let n = pk.n().clone();
    let n2 = pk.n_squared().clone();
    let readings = BTreeMap::from([
        ("glucose".to_owned(), vec![5.4, 6.0]),
        ("cholesterol".to_owned(), vec![4.2]),
    ]);
    let sub = serde_json::to_value(
        readings::encrypt_submission(
            &pipeline::Settings::defaults().study,
            participant,
            key,
            &readings,
        )
        .unwrap(),
    )
    .unwrap();
    let values: Vec<_> = [10i64, 11]
        .iter()
        .map(|v| pk.encrypt_i64(*v).unwrap())
        .collect();
    let demo = serde_json::to_value(DemoPayload::new(pk, &values)).unwrap();
    let c0 = "/readings/glucose/0/ciphertext";
    let e0 = "/readings/glucose/0/exponent";
    let small = PrivateKey::generate_insecure_for_tests(1024);
    let small_sub = serde_json::to_value(
        readings::encrypt_submission(
            &pipeline::Settings::defaults().study,
            participant,
            &small,
            &readings,
        )
        .unwrap(),
    )
    .unwrap();
    let million_bits = odd_of_bits(1_000_000).to_string();
    let over_max = odd_of_bits(8194).to_string();
    let p = key.p().clone();
    let many = |count: usize| {
        json!(
            (0..count)
                .map(|_| json!({"ciphertext": "1", "exponent": 0}))
                .collect::<Vec<_>>()
        )
    };
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));

    let mut cases = vec![
        // Not JSON at all.
        case("empty body", b"".to_vec(), "malformed_json"),
        case("truncated", to_vec(&sub)[..200].to_vec(), "malformed_json"),
        case(
            "garbage bytes",
            (0..=255u8).rev().collect::<Vec<_>>(),
            "malformed_json",
        ),
        case(
            "non-UTF-8 in a string",
            textual(&sub, "p-hostile", b"p-\xff\xfe"),
            "malformed_json",
        ),
        case(
            "lone surrogate escape",
            textual(&sub, "p-hostile", b"\\ud800"),
            "malformed_json",
        ),
        case(
            "NaN token",
            textual(&sub, "\"exponent\":", b"\"exponent\":NaN,\"x\":"),
            "malformed_json",
        ),
        case(
            "Infinity token",
            textual(&sub, "\"exponent\":", b"\"exponent\":Infinity,\"x\":"),
            "malformed_json",
        ),
        case(
            "-Infinity in demo",
            textual(&demo, "[[", b"[[-Infinity,"),
            "malformed_json",
        ),
        case("deep nesting, top", nested(100_000), "invalid_message"),
        case(
            "deep nesting in readings",
            with(
                &sub,
                "/readings/glucose",
                serde_json::from_str::<Value>(&nested(120)).unwrap(),
            ),
            "invalid_message",
        ),
        case(
            "deep nesting, raw in readings",
            textual(
                &sub,
                "\"readings\":",
                format!("\"readings\":{},\"r\":", nested(50_000)).as_bytes(),
            ),
            "invalid_message",
        ),
        // JSON of the wrong shape or types.
        case("array", b"[1, 2, 3]".to_vec(), "invalid_message"),
        case("string", b"\"readings\"".to_vec(), "invalid_message"),
        case(
            "unknown shape",
            br#"{"hello": "world"}"#.to_vec(),
            "unknown_shape",
        ),
        case(
            "version as string",
            with(&sub, "/version", json!("1")),
            "invalid_message",
        ),
        case(
            "version 2",
            with(&sub, "/version", json!(2)),
            "unsupported_version",
        ),
        case(
            "version huge",
            textual(&sub, "\"version\":1", b"\"version\":1e400"),
            "malformed_json",
        ),
        case(
            "readings as array",
            with(&sub, "/readings", json!([])),
            "invalid_message",
        ),
        case(
            "exponent as string",
            with(&sub, e0, json!("-13")),
            "invalid_message",
        ),
        case(
            "exponent fractional",
            with(&sub, e0, json!(1.5)),
            "invalid_message",
        ),
        case(
            "exponent beyond i64",
            textual(
                &sub,
                "\"exponent\":",
                b"\"exponent\":123456789012345678901234567890,\"x\":",
            ),
            "invalid_message",
        ),
        case(
            "exponent 1e400",
            textual(&sub, "\"exponent\":", b"\"exponent\":1e400,\"x\":"),
            "malformed_json",
        ),
        case(
            "exponent beyond i32",
            with(&sub, e0, json!(1i64 << 40)),
            "invalid_ciphertext",
        ),
        case(
            "exponent 10001",
            with(&sub, e0, json!(10_001)),
            "invalid_ciphertext",
        ),
        case(
            "exponent -10001",
            with(&sub, e0, json!(-10_001)),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext negative",
            with(&sub, c0, json!("-5")),
            "invalid_message",
        ),
        case(
            "ciphertext float",
            with(&sub, c0, json!(1.5)),
            "invalid_message",
        ),
        case(
            "ciphertext hex",
            with(&sub, c0, json!("0x1f")),
            "invalid_message",
        ),
        case(
            "ciphertext with space",
            with(&sub, c0, json!(" 12")),
            "invalid_message",
        ),
        case(
            "ciphertext empty",
            with(&sub, c0, json!("")),
            "invalid_message",
        ),
        case(
            "ciphertext null",
            with(&sub, c0, Value::Null),
            "invalid_message",
        ),
        case(
            "ciphertext 6000 digits",
            with(&sub, c0, json!("7".repeat(6_000))),
            "invalid_message",
        ),
        case(
            "ciphertext 200000 digits bare",
            textual(
                &sub,
                "\"ciphertext\":\"",
                format!("\"ciphertext\":{},\"x\":\"", "7".repeat(200_000)).as_bytes(),
            ),
            "invalid_message",
        ),
        case(
            "participant number",
            with(&sub, "/participant", json!(7)),
            "invalid_message",
        ),
        case(
            "participant traversal",
            with(&sub, "/participant", json!("../../etc")),
            "invalid_participant",
        ),
        case(
            "participant 100 KB",
            with(&sub, "/participant", json!("p".repeat(100_000))),
            "invalid_participant",
        ),
        case(
            "submission id with spaces",
            with(&sub, "/submission_id", json!("a b")),
            "invalid_submission_id",
        ),
        case(
            "submission id 10 KB",
            with(&sub, "/submission_id", json!("s".repeat(10_000))),
            "invalid_submission_id",
        ),
        case(
            "unknown top-level field",
            {
                let mut s = sub.clone();
                s["admin"] = json!(true);
                to_vec(&s)
            },
            "invalid_message",
        ),
        case(
            "unknown field in reading",
            {
                let mut s = sub.clone();
                s["readings"]["glucose"][0]["sign"] = json!(1);
                to_vec(&s)
            },
            "invalid_message",
        ),
        case(
            "unknown field in key",
            {
                let mut s = sub.clone();
                s["public_key"]["g"] = json!("2");
                to_vec(&s)
            },
            "invalid_message",
        ),
        case(
            "missing submission_id",
            without(&sub, "", "submission_id"),
            "invalid_message",
        ),
        case(
            "missing public_key",
            without(&sub, "", "public_key"),
            "invalid_message",
        ),
        case(
            "missing exponent",
            without(&sub, "/readings/glucose/0", "exponent"),
            "invalid_message",
        ),
        case(
            "missing version",
            without(&sub, "", "version"),
            "invalid_message",
        ),
        case(
            "duplicate top-level key",
            textual(
                &sub,
                "\"participant\":",
                b"\"participant\":\"p-other\",\"participant\":",
            ),
            "invalid_message",
        ),
        case(
            "duplicate metric",
            textual(&sub, "\"readings\":{", b"\"readings\":{\"glucose\":[],"),
            "invalid_message",
        ),
        case(
            "duplicate field in reading",
            textual(&sub, "\"exponent\":", b"\"exponent\":0,\"exponent\":"),
            "invalid_message",
        ),
        case(
            "no readings",
            with(&sub, "/readings", json!({})),
            "no_readings",
        ),
        case(
            "empty series only",
            with(&sub, "/readings", json!({"glucose": []})),
            "no_readings",
        ),
        case(
            "unknown metric",
            with(
                &sub,
                "/readings",
                json!({"weight": [{"ciphertext": "1", "exponent": 0}]}),
            ),
            "unknown_metric",
        ),
        case(
            "unknown metric 100 KB name",
            with(
                &sub,
                "/readings",
                json!({"w".repeat(100_000): [{"ciphertext": "1", "exponent": 0}]}),
            ),
            "unknown_metric",
        ),
        case(
            "1001 readings",
            with(&sub, "/readings/glucose", many(1_001)),
            "too_many_readings",
        ),
        case(
            "5000 readings",
            with(&sub, "/readings/glucose", many(5_000)),
            "too_many_readings",
        ),
        case(
            "20000 readings over metrics",
            with(
                &sub,
                "/readings",
                json!({"glucose": many(10_000), "cholesterol": many(10_000)}),
            ),
            "too_many_readings",
        ),
        // Exponents other than the metric's (the study fixes -4): refused before the key, so
        // a series of far-apart exponents costs no exponentiation.
        case(
            "exponents alternating -255/+255 over 100 readings",
            {
                let mut s = sub.clone();
                let first = s["readings"]["glucose"][0].clone();
                s["readings"]["glucose"] = json!(
                    (0..100)
                        .map(|i| {
                            let mut r = first.clone();
                            r["exponent"] = json!(if i % 2 == 0 { -255 } else { 255 });
                            r
                        })
                        .collect::<Vec<_>>()
                );
                to_vec(&s)
            },
            "exponent_mismatch",
        ),
        case(
            "python-paillier's float exponent (-13) in one metric",
            with(&sub, "/readings/cholesterol/0/exponent", json!(-13)),
            "exponent_mismatch",
        ),
        // Structs written as arrays (serde's positional form): refused, one spelling only.
        case(
            "submission as positional array",
            to_vec(&json!([
                1,
                "s-1",
                "p-hostile",
                sub["public_key"],
                sub["readings"]
            ])),
            "invalid_message",
        ),
        case(
            "public_key as array",
            with(&sub, "/public_key", json!([n.to_string()])),
            "invalid_message",
        ),
        case(
            "reading as [ciphertext, exponent]",
            with(
                &sub,
                "/readings/glucose/0",
                json!([sub["readings"]["glucose"][0]["ciphertext"], -13]),
            ),
            "invalid_message",
        ),
        case(
            "demo public_key as [g, n]",
            with(
                &demo,
                "/public_key",
                json!([(&n + 1u32).to_string(), n.to_string()]),
            ),
            "invalid_message",
        ),
        // Keys.
        case(
            "key of 1,000,000 bits",
            with(&sub, "/public_key/n", json!(million_bits)),
            "invalid_message",
        ),
        case(
            "key of 8194 bits",
            with(&sub, "/public_key/n", json!(over_max)),
            "invalid_public_key",
        ),
        case("key of 1024 bits", to_vec(&small_sub), "invalid_public_key"),
        case(
            "key of 1 bit",
            with(&sub, "/public_key/n", json!("1")),
            "invalid_public_key",
        ),
        case(
            "key 0",
            with(&sub, "/public_key/n", json!("0")),
            "invalid_public_key",
        ),
        case(
            "key even",
            with(&sub, "/public_key/n", json!((&n + 1u32).to_string())),
            "invalid_public_key",
        ),
        case(
            "key with factor 3",
            with(
                &sub,
                "/public_key/n",
                json!((odd_of_bits(2047) * 3u32).to_string()),
            ),
            "invalid_public_key",
        ),
        case(
            "key as number too large for f64",
            textual(
                &sub,
                &format!("\"n\":\"{n}\""),
                format!("\"n\":{million_bits}").as_bytes(),
            ),
            "invalid_message",
        ),
        // Ciphertexts outside Z*_{n²}.
        case(
            "ciphertext 0",
            with(&sub, c0, json!("0")),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext n²",
            with(&sub, c0, json!(n2.to_string())),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext n² + 5",
            with(&sub, c0, json!((&n2 + 5u32).to_string())),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext n",
            with(&sub, c0, json!(n.to_string())),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext p (shares a factor)",
            with(&sub, c0, json!(p.to_string())),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext 7p (shares a factor)",
            with(&sub, c0, json!((&p * 7u32).to_string())),
            "invalid_ciphertext",
        ),
        case(
            "ciphertext bare n²",
            textual(
                &sub,
                "\"ciphertext\":\"",
                format!("\"ciphertext\":{n2},\"x\":\"").as_bytes(),
            ),
            "invalid_message",
        ),
        // Body size.
        case(
            "body 1 MiB + 1",
            {
                let mut b = to_vec(&sub);
                b.resize((1 << 20) + 1, b' ');
                b
            },
            "body_too_large",
        ),
        case(
            "body 8 MiB of garbage",
            vec![b'{'; 8 << 20],
            "body_too_large",
        ),
        // The original demo's shape.
        case(
            "demo g != n + 1",
            with(&demo, "/public_key/g", json!((&n + 2u32).to_string())),
            "invalid_public_key",
        ),
        case(
            "demo g = n",
            with(&demo, "/public_key/g", json!(n.to_string())),
            "invalid_public_key",
        ),
        case(
            "demo small key",
            {
                let mut d = demo.clone();
                let m = small.public_key().n();
                d["public_key"] = json!({"g": (m + 1u32).to_string(), "n": m.to_string()});
                to_vec(&d)
            },
            "invalid_public_key",
        ),
        case(
            "demo key of 1,000,000 bits",
            {
                let mut d = demo.clone();
                d["public_key"]["n"] = json!(million_bits);
                to_vec(&d)
            },
            "invalid_message",
        ),
        case(
            "demo ciphertext 0",
            with(&demo, "/values/0/0", json!("0")),
            "invalid_ciphertext",
        ),
        case(
            "demo ciphertext >= n²",
            with(&demo, "/values/1/0", json!(n2.to_string())),
            "invalid_ciphertext",
        ),
        case(
            "demo ciphertext shares a factor",
            with(&demo, "/values/0/0", json!((&p * 3u32).to_string())),
            "invalid_ciphertext",
        ),
        case(
            "demo exponent 10001",
            with(&demo, "/values/0/1", json!(10_001)),
            "invalid_ciphertext",
        ),
        case(
            "demo exponent 1e400",
            textual(&demo, "\"values\":[[", b"\"values\":[[\"1\",1e400],["),
            "malformed_json",
        ),
        case(
            "demo value not a pair",
            with(&demo, "/values/0", json!(["1"])),
            "invalid_message",
        ),
        case(
            "demo value triple",
            with(&demo, "/values/0", json!(["1", 0, 0])),
            "malformed_json",
        ),
        case(
            "demo values object",
            with(&demo, "/values", json!({"a": 1})),
            "invalid_message",
        ),
        case(
            "demo no values",
            with(&demo, "/values", json!([])),
            "no_readings",
        ),
        case(
            "demo 1001 values",
            with(
                &demo,
                "/values",
                json!((0..1_001).map(|_| json!(["1", 0])).collect::<Vec<_>>()),
            ),
            "too_many_readings",
        ),
        case(
            "demo unknown field",
            {
                let mut d = demo.clone();
                d["factor"] = json!(1_000_000);
                to_vec(&d)
            },
            "invalid_message",
        ),
        case(
            "demo missing g",
            without(&demo, "/public_key", "g"),
            "invalid_message",
        ),
        case(
            "demo duplicate values",
            textual(&demo, "\"values\":", b"\"values\":[],\"values\":"),
            "invalid_message",
        ),
        case(
            "demo NaN exponent",
            textual(&demo, "\"values\":[[", b"\"values\":[[\"1\",NaN],["),
            "malformed_json",
        ),
    ];
    let mut no_reply = case("demo without reply_to", to_vec(&demo), "invalid_reply_to");
    no_reply.reply_to = false;
    cases.push(no_reply);
    cases
}

/// Starts the worker binary on `settings`' topology, with extra `PIPELINE__...` variables.
fn spawn_worker(settings: &pipeline::Settings, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.env("AMQP_URL", &settings.broker.url)
        .env("PIPELINE__TOPOLOGY__PREFIX", &settings.topology.prefix)
        // Every client of this test is guest (see test_support::settings).
        .env("PIPELINE__IDENTITY__INSECURE_SHARED_USER", "true")
        .env("WORKER_EVENTS", common::events_file(settings))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the worker binary starts")
}

/// Waits until the work queue has a consumer (the worker is ready).
async fn wait_for_consumer(harness: &Harness) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let consumers = harness
            .channel
            .queue_declare(
                ShortString::from(harness.topology.work_queue.as_str()),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap()
            .consumer_count();
        if consumers > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never started consuming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Peak resident set size of a process, in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Publishes `body` to the readings exchange with message id `id`.
async fn publish(harness: &Harness, id: &str, body: &[u8], reply_to: Option<&str>) {
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(id.into());
    if let Some(r) = reply_to {
        props = props.with_reply_to(r.into());
    }
    harness
        .publisher
        .publish(Outgoing {
            exchange: harness.topology.readings_exchange.clone(),
            routing_key: harness.topology.submission_routing_key.clone(),
            body: body.to_vec(),
            properties: props,
        })
        .await
        .unwrap();
}

/// SIGTERM, wait, and return the worker's stderr.
async fn stop(mut worker: Child) -> String {
    let pid = worker.id().unwrap();
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
    assert!(status.success(), "worker exit {status}\n{stderr}");
    stderr
}

/// Largest `elapsed_ms` of the `batch` events of the worker [`spawn_worker`] started on
/// `settings` (its event file is removed).
fn max_batch_ms(settings: &pipeline::Settings) -> u64 {
    let path = common::events_file(settings);
    let events = common::read_worker_events(&path);
    common::remove_events_file(&path);
    events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Batch { elapsed_ms, .. } => Some(*elapsed_ms),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Drains the dead-letter queue until `expected` messages arrived (or `within` passed), by
/// message id.
async fn dead_letters(
    harness: &Harness,
    expected: usize,
    within: Duration,
) -> HashMap<String, lapin::message::BasicGetMessage> {
    let dead = harness
        .take(&harness.topology.dead_queue.clone(), expected, within)
        .await;
    dead.into_iter()
        .map(|m| {
            let id = m
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            (id, m)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_message_is_dead_lettered_quickly_in_bounded_memory() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let participant = ParticipantId::new("p-hostile").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    let key = shared_key();
    let cases = corpus(key, &participant);
    let names: std::collections::HashSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");

    let worker = spawn_worker(&settings, &[]);
    let pid = worker.id().unwrap();
    wait_for_consumer(&harness).await;
    let hwm_before = vm_hwm_kb(pid);

    let started = Instant::now();
    for (i, c) in cases.iter().enumerate() {
        let reply_to = c.reply_to.then_some(reply_queue.as_str());
        publish(&harness, &format!("case-{i}"), &c.body, reply_to).await;
    }
    // Valid messages after the corpus, in both formats: the worker is still serving.
    let valid = readings::encrypt_submission(
        &pipeline::Settings::defaults().study,
        &participant,
        key,
        &BTreeMap::from([("glucose".to_owned(), vec![5.0])]),
    )
    .unwrap();
    publish(
        &harness,
        "valid-submission",
        &serde_json::to_vec(&valid).unwrap(),
        Some(&reply_queue),
    )
    .await;
    let demo_queue = declare_demo_reply_queue(&mut harness, "demo-after-corpus").await;
    let pk = key.public_key();
    let demo = DemoPayload::new(pk, &[pk.encrypt_i64(10).unwrap()]);
    publish(
        &harness,
        "valid-demo",
        &serde_json::to_vec(&demo).unwrap(),
        Some(&demo_queue),
    )
    .await;

    let dead = dead_letters(&harness, cases.len(), CORPUS_DEADLINE).await;
    let replies = harness
        .take(&reply_queue, cases.len(), CORPUS_DEADLINE)
        .await;
    let demo_reply = harness.take(&demo_queue, 1, CORPUS_DEADLINE).await;
    let elapsed = started.elapsed();
    let hwm_after = vm_hwm_kb(pid);
    stop(worker).await;

    let mut wrong = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let Some(m) = dead.get(&format!("case-{i}")) else {
            wrong.push(format!("{}: not dead-lettered", c.name));
            continue;
        };
        let props = &m.delivery.properties;
        let kind = header(props, HEADER_KIND).unwrap_or_default();
        let reason = header(props, HEADER_REASON).unwrap_or_default();
        if kind != c.kind {
            wrong.push(format!(
                "{}: kind {kind} ({reason}), expected {}",
                c.name, c.kind
            ));
        }
        if reason.is_empty() || reason.chars().count() > 501 {
            wrong.push(format!("{}: reason of {} chars", c.name, reason.len()));
        }
        // Bodies over DEAD_LETTER_BODY_MAX are cut, and say so (issue 10).
        let kept = &c.body[..c.body.len().min(worker::DEAD_LETTER_BODY_MAX)];
        let cut_said = c.body.len() <= worker::DEAD_LETTER_BODY_MAX
            || m.delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(worker::HEADER_ORIGINAL_BODY_BYTES).cloned())
                .is_some();
        if m.delivery.data != kept || !cut_said {
            wrong.push(format!(
                "{}: the dead letter does not keep the body",
                c.name
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(dead.len(), cases.len(), "nothing else was dead-lettered");

    // Error results for the submission-shaped cases (demo-shaped ones get demo error replies),
    // then the valid submission's result, decrypting correctly.
    let results: Vec<Value> = replies
        .iter()
        .map(|m| serde_json::from_slice(&m.delivery.data).expect("replies are JSON"))
        .collect();
    let ok: Vec<ResultMessage> = results
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    assert_eq!(ok.len(), 1, "exactly the valid submission succeeded");
    assert_eq!(ok[0].submission_id, valid.submission_id);
    assert_eq!(ok[0].status, ResultStatus::Ok);
    let decrypted = ok[0].decrypt(key).unwrap();
    assert!((decrypted[0].value - 5.0 * 18.016).abs() < 1e-9);
    let errors = results.iter().filter(|r| r.get("error").is_some()).count();
    assert_eq!(errors + 1, results.len());
    assert!(errors >= cases.len() / 2, "only {errors} error replies");

    assert_eq!(demo_reply.len(), 1, "the valid demo request was answered");
    let reply: paillier::json::DemoReply =
        serde_json::from_slice(&demo_reply[0].delivery.data).unwrap();
    let v = key.decrypt_f64(&reply.decode(pk).unwrap()[0]).unwrap();
    assert!((10.0..=100.0).contains(&v) && v % 10.0 == 0.0, "{v}");

    let batch_ms = max_batch_ms(&settings);
    let growth = hwm_after.saturating_sub(hwm_before);
    eprintln!(
        "hostile corpus: {} inputs refused, {} valid answered, in {:.2} s; slowest batch {} ms; \
         worker VmHWM {} kB -> {} kB (+{} kB)",
        cases.len(),
        2,
        elapsed.as_secs_f64(),
        batch_ms,
        hwm_before,
        hwm_after,
        growth
    );
    assert!(elapsed < CORPUS_DEADLINE, "corpus took {elapsed:?}");
    assert!(
        batch_ms > 0 && batch_ms < BATCH_DEADLINE_MS,
        "slowest batch {batch_ms} ms"
    );
    assert!(growth < HWM_GROWTH_LIMIT_KB, "VmHWM grew by {growth} kB");
    harness.cleanup().await;
}

/// What a limit case should end as.
enum Expect {
    /// Answered with an ok result (or a demo reply).
    Done,
    /// Dead-lettered with this kind, and a reason containing the text.
    Refused(&'static str, &'static str),
}

/// `body` padded with trailing spaces (still the same JSON) to exactly `len` bytes.
fn padded(mut body: Vec<u8>, len: usize) -> Vec<u8> {
    assert!(body.len() <= len, "{} > {len}", body.len());
    body.resize(len, b' ');
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_limits_are_enforced_at_their_values_before_the_work_they_protect() {
    let settings = settings(&[]);
    let mut harness = Harness::new(settings.clone()).await;
    let participant = ParticipantId::new("p-limits").unwrap();
    let reply_queue = harness.reply_queue(&participant).await;
    // Non-default limits, through the environment as an operator would set them.
    let worker = spawn_worker(
        &settings,
        &[
            ("PIPELINE__LIMITS__MAX_BODY_BYTES", "4096"),
            ("PIPELINE__LIMITS__MAX_READINGS", "3"),
            ("PIPELINE__LIMITS__KEY_BITS_MIN", "1024"),
            ("PIPELINE__LIMITS__KEY_BITS_MAX", "1536"),
        ],
    );
    let k1024 = PrivateKey::generate_insecure_for_tests(1024);
    let k1536 = PrivateKey::generate_insecure_for_tests(1536);
    let k768 = PrivateKey::generate_insecure_for_tests(768);
    let sub = |key: &PrivateKey, glucose: Vec<f64>| {
        serde_json::to_vec(
            &readings::encrypt_submission(
                &pipeline::Settings::defaults().study,
                &participant,
                key,
                &BTreeMap::from([("glucose".to_owned(), glucose)]),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let ones = |count: usize| {
        json!(
            (0..count)
                .map(|_| json!({"ciphertext": "1", "exponent": 0}))
                .collect::<Vec<_>>()
        )
    };
    let bogus_key_four_readings = to_vec(&json!({
        "version": 1, "submission_id": "s-bogus", "participant": "p-limits",
        "public_key": {"n": "4"}, "readings": {"glucose": ones(4)}
    }));
    let demo = |key: &PrivateKey, count: i64| {
        let pk = key.public_key();
        let values: Vec<_> = (1..=count).map(|v| pk.encrypt_i64(v).unwrap()).collect();
        serde_json::to_vec(&DemoPayload::new(pk, &values)).unwrap()
    };
    let outside = "outside the accepted 1024..=1536";
    // Two readings, the second at `exponent`, optionally under an even (invalid) modulus: the
    // exponent is judged before the key.
    let second_at = |exponent: i64, n: Option<&str>| {
        let mut v: Value = serde_json::from_slice(&sub(&k1024, vec![5.0, 6.0])).unwrap();
        v["readings"]["glucose"][1]["exponent"] = json!(exponent);
        if let Some(n) = n {
            v["public_key"]["n"] = json!(n);
        }
        to_vec(&v)
    };
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        // max_body_bytes = 4096: inclusive, checked on the raw bytes before parsing.
        (
            "body of exactly 4096 bytes",
            padded(sub(&k1024, vec![5.0]), 4096),
            Expect::Done,
        ),
        (
            "body of 4097 bytes",
            padded(sub(&k1024, vec![5.0]), 4097),
            Expect::Refused("body_too_large", "4097 bytes exceeds the limit of 4096"),
        ),
        (
            "4097 bytes of non-JSON",
            vec![0xff; 4097],
            Expect::Refused("body_too_large", "limit of 4096"),
        ),
        (
            "4096 bytes of non-JSON",
            vec![0xff; 4096],
            Expect::Refused("malformed_json", "malformed JSON"),
        ),
        // max_readings = 3: counted before the key or any ciphertext is looked at.
        ("3 readings", sub(&k1024, vec![5.0, 6.0, 7.0]), Expect::Done),
        (
            "4 readings",
            sub(&k1024, vec![5.0, 6.0, 7.0, 8.0]),
            Expect::Refused(
                "too_many_readings",
                "4 readings in one submission, the limit is 3",
            ),
        ),
        (
            "4 readings under an even key",
            bogus_key_four_readings,
            Expect::Refused("too_many_readings", "limit is 3"),
        ),
        ("demo with 3 values", demo(&k1024, 3), Expect::Done),
        (
            "demo with 4 values",
            demo(&k1024, 4),
            Expect::Refused("too_many_readings", "limit is 3"),
        ),
        // The study's glucose exponent (-4): any other is refused, before the key.
        (
            "both readings at exponent -4",
            second_at(-4, None),
            Expect::Done,
        ),
        (
            "second reading at exponent -5",
            second_at(-5, None),
            Expect::Refused(
                "exponent_mismatch",
                "glucose[1] has exponent -5; this study encodes it at exponent -4",
            ),
        ),
        (
            "second reading at exponent -3 under an even key",
            second_at(-3, Some("4")),
            Expect::Refused("exponent_mismatch", "at exponent -4"),
        ),
        // key_bits_min = 1024, key_bits_max = 1536: inclusive, on n's length before trial
        // division (a multiple of 3 is refused for its size, not for the factor).
        ("key of 1536 bits", sub(&k1536, vec![5.0]), Expect::Done),
        (
            "key of 2048 bits",
            sub(shared_key(), vec![5.0]),
            Expect::Refused(
                "invalid_public_key",
                "2048 bits, outside the accepted 1024..=1536",
            ),
        ),
        (
            "key of 768 bits",
            sub(&k768, vec![5.0]),
            Expect::Refused("invalid_public_key", "768 bits"),
        ),
        (
            "1538-bit multiple of 3",
            {
                let mut v: Value = serde_json::from_slice(&sub(&k1024, vec![5.0])).unwrap();
                v["public_key"]["n"] = json!((odd_of_bits(1537) * 3u32).to_string());
                to_vec(&v)
            },
            Expect::Refused("invalid_public_key", outside),
        ),
        (
            "1022-bit multiple of 3",
            {
                let mut v: Value = serde_json::from_slice(&sub(&k1024, vec![5.0])).unwrap();
                v["public_key"]["n"] = json!((odd_of_bits(1021) * 3u32).to_string());
                to_vec(&v)
            },
            Expect::Refused("invalid_public_key", outside),
        ),
        (
            "1024-bit multiple of 3",
            {
                let mut v: Value = serde_json::from_slice(&sub(&k1024, vec![5.0])).unwrap();
                v["public_key"]["n"] = json!((odd_of_bits(1023) * 3u32).to_string());
                to_vec(&v)
            },
            Expect::Refused("invalid_public_key", "divisible by the small prime 3"),
        ),
    ];
    let demo_queue = declare_demo_reply_queue(&mut harness, "demo-limits").await;
    wait_for_consumer(&harness).await;
    for (i, (name, body, _)) in cases.iter().enumerate() {
        let reply_to = if name.starts_with("demo") {
            &demo_queue
        } else {
            &reply_queue
        };
        publish(&harness, &format!("limit-{i}"), body, Some(reply_to)).await;
    }
    let refused = cases
        .iter()
        .filter(|c| matches!(c.2, Expect::Refused(..)))
        .count();
    let dead = dead_letters(&harness, refused, Duration::from_secs(60)).await;
    let results = harness
        .take(&reply_queue, cases.len(), Duration::from_secs(5))
        .await;
    let demo_replies = harness.take(&demo_queue, 2, Duration::from_secs(5)).await;
    let stderr = stop(worker).await;
    common::remove_events_file(&common::events_file(&settings));

    let mut wrong = Vec::new();
    for (i, (name, _, expect)) in cases.iter().enumerate() {
        let dead_letter = dead.get(&format!("limit-{i}"));
        match (expect, dead_letter) {
            (Expect::Done, None) => {}
            (Expect::Done, Some(m)) => wrong.push(format!(
                "{name}: refused ({:?}) but within the limits",
                header(&m.delivery.properties, HEADER_REASON)
            )),
            (Expect::Refused(..), None) => wrong.push(format!("{name}: not refused")),
            (Expect::Refused(kind, text), Some(m)) => {
                let got = header(&m.delivery.properties, HEADER_KIND).unwrap_or_default();
                let reason = header(&m.delivery.properties, HEADER_REASON).unwrap_or_default();
                if got != *kind || !reason.contains(text) {
                    wrong.push(format!(
                        "{name}: {got} ({reason}), expected {kind} with {text:?}"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n{stderr}", wrong.join("\n"));
    let ok = results
        .iter()
        .filter(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap()["status"] == "ok")
        .count();
    let done = cases.iter().filter(|c| matches!(c.2, Expect::Done)).count();
    assert_eq!(
        ok + demo_replies
            .iter()
            .filter(|m| !String::from_utf8_lossy(&m.delivery.data).contains("error"))
            .count(),
        done
    );
    eprintln!(
        "limits: {} cases at non-default limits, {refused} refused, {done} answered",
        cases.len()
    );
    harness.cleanup().await;
}

/// Declares a reply queue for demo-format requests (they name their own `reply_to`), bound to
/// the results exchange under its own name, and registers it for deletion with the harness.
async fn declare_demo_reply_queue(harness: &mut Harness, name: &str) -> String {
    let queue = format!("{}{name}", harness.topology.reply_queue_prefix);
    harness
        .channel
        .queue_declare(
            ShortString::from(queue.as_str()),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    harness
        .channel
        .queue_bind(
            ShortString::from(queue.as_str()),
            ShortString::from(harness.topology.results_exchange.as_str()),
            ShortString::from(queue.as_str()),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    harness.remember_queue(queue.clone());
    queue
}
