//! Issue 10 against the real broker, as real users: every test creates its own vhost with a
//! worker user and participant users (least privilege for participants, as the README's Access
//! section gives them), runs a worker in secure identity mode, and removes all of it again.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};
use num_bigint::BigUint;
use participant::readings;
use pipeline::broker::{self, ConfirmedPublisher, Outgoing, Retry};
use pipeline::messages::ResultMessage;
use pipeline::{ParticipantId, Settings};
use test_support::{Harness, header, read_worker_events, shared_key};
use tokio::task::JoinHandle;
use worker::{EventSink, HEADER_KIND, HEADER_ORIGINAL_USER_ID, WorkerEvent, WorkerStats};

const WAIT: Duration = Duration::from_secs(30);
const MANAGEMENT: &str = "http://127.0.0.1:15672/api";

/// A vhost of its own, with users; deleted (users too) on drop.
struct Vhost {
    name: String,
    users: Vec<String>,
}

fn management(method: &str, path: &str, body: Option<&str>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sf", "-u", "guest:guest", "-X", method])
        .arg(format!("{MANAGEMENT}{path}"))
        .args(["-H", "content-type: application/json"]);
    if let Some(body) = body {
        cmd.args(["-d", body]);
    }
    let out = cmd.output().expect("curl runs");
    assert!(
        out.status.success(),
        "{method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Vhost {
    fn create() -> Vhost {
        let name = format!(
            "test-id-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        management("PUT", &format!("/vhosts/{name}"), Some("{}"));
        // The operator (guest) provisions the topology in it.
        let all = r#"{"configure": ".*", "write": ".*", "read": ".*"}"#;
        management("PUT", &format!("/permissions/{name}/guest"), Some(all));
        Vhost {
            name,
            users: Vec::new(),
        }
    }

    /// Creates `user` (password = its name + "-pw") with the given permission regexes.
    fn user(&mut self, user: &str, configure: &str, write: &str, read: &str) -> String {
        let unique = format!("{}-{user}", self.name);
        let password = format!("{unique}-pw");
        management(
            "PUT",
            &format!("/users/{unique}"),
            Some(&format!(r#"{{"password": "{password}", "tags": ""}}"#)),
        );
        let permissions = serde_json::json!({"configure": configure, "write": write, "read": read});
        management(
            "PUT",
            &format!("/permissions/{}/{unique}", self.name),
            Some(&permissions.to_string()),
        );
        self.users.push(unique.clone());
        format!("amqp://{unique}:{password}@127.0.0.1:5672/{}", self.name)
    }

    fn user_name(&self, user: &str) -> String {
        format!("{}-{user}", self.name)
    }

    /// A participant: writes `readings`, reads only its own reply queue.
    fn participant(&mut self, user: &str) -> String {
        let read = format!("^results\\.{}$", regex_escape(&self.user_name(user)));
        self.user(user, "^$", "^readings$", &read)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = Command::new("curl")
                .args(["-sf", "-u", "guest:guest", "-X", "DELETE"])
                .arg(format!("{MANAGEMENT}/users/{user}"))
                .output();
        }
        let _ = Command::new("curl")
            .args(["-sf", "-u", "guest:guest", "-X", "DELETE"])
            .arg(format!("{MANAGEMENT}/vhosts/{}", self.name))
            .output();
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

fn settings_for(url: &str, insecure: bool) -> Settings {
    let mut settings = test_support::settings(&[
        ("broker.url", url),
        ("topology.prefix", ""),
        (
            "identity.insecure_shared_user",
            if insecure { "true" } else { "false" },
        ),
    ]);
    settings.broker.url = url.to_owned();
    settings
}

/// A worker run in-process, writing its events to a file.
struct EventedWorker {
    stop: worker::ShutdownSender,
    handle: JoinHandle<Result<(), worker::WorkerError>>,
    events: std::path::PathBuf,
}

impl EventedWorker {
    fn start(settings: &Settings, tag: &str) -> Self {
        let events = std::env::temp_dir().join(format!("{tag}-worker-events.jsonl"));
        let _ = std::fs::remove_file(&events);
        let sink = Arc::new(EventSink::open(&events).unwrap());
        let (stop, stopped) = worker::shutdown_channel();
        let settings = settings.clone();
        let handle = tokio::spawn(async move {
            worker::run_with_events(&settings, stopped, Arc::new(WorkerStats::default()), sink)
                .await
        });
        EventedWorker {
            stop,
            handle,
            events,
        }
    }

    async fn stop(self) -> Vec<WorkerEvent> {
        let _ = self.stop.send(true);
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("worker stops")
            .expect("worker task")
            .expect("worker ends without error");
        let events = read_worker_events(&self.events);
        let _ = std::fs::remove_file(&self.events);
        events
    }
}

/// A participant's own connection and confirming publisher.
struct Sender {
    user: String,
    publisher: ConfirmedPublisher,
    _conn: lapin::Connection,
}

impl Sender {
    async fn connect(url: &str, user: String) -> Sender {
        let mut settings = Settings::defaults();
        settings.broker.url = url.to_owned();
        let conn = broker::connect(&settings.broker, "test-sender", Retry::Bounded(3), false)
            .await
            .unwrap();
        let publisher = ConfirmedPublisher::new(&conn).await.unwrap();
        Sender {
            user,
            publisher,
            _conn: conn,
        }
    }

    /// Publishes `body` to `readings` with this sender's own `user_id` (when `with_user_id`).
    async fn send(&self, body: &[u8], reply_to: Option<&str>, with_user_id: bool) {
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(uuid::Uuid::new_v4().to_string().into());
        if let Some(r) = reply_to {
            props = props.with_reply_to(r.into());
        }
        if with_user_id {
            props = props.with_user_id(self.user.as_str().into());
        }
        self.publisher
            .publish(Outgoing {
                exchange: "readings".into(),
                routing_key: "submission".into(),
                body: body.to_vec(),
                properties: props,
            })
            .await
            .unwrap();
    }
}

fn submission(participant: &str, value: f64) -> (String, Vec<u8>) {
    let id = ParticipantId::new(participant).unwrap();
    let wire = readings::encrypt_submission(
        &Settings::defaults().study,
        &id,
        shared_key(),
        &BTreeMap::from([("glucose".to_owned(), vec![value])]),
    )
    .unwrap();
    (
        wire.submission_id.clone(),
        serde_json::to_vec(&wire).unwrap(),
    )
}

fn demo_request(n: &BigUint, ciphertext: &str, values: usize) -> Vec<u8> {
    let values = vec![format!(r#"["{ciphertext}", 0]"#); values].join(", ");
    format!(
        r#"{{"public_key": {{"g": "{}", "n": "{n}"}}, "values": [{values}]}}"#,
        n + 1u32
    )
    .into_bytes()
}

/// An odd 8192-bit modulus with no small factor: it passes the key checks a worker can afford
/// (size, parity, trial division), as the issue's costly request did.
fn big_modulus() -> BigUint {
    let mut n = (BigUint::from(1u32) << 8191u32) + 1u32;
    let small: Vec<u32> = (3..2000u32)
        .filter(|p| (2..*p).take_while(|d| d * d <= *p).all(|d| p % d != 0))
        .collect();
    while small.iter().any(|p| (&n % *p) == BigUint::from(0u32)) {
        n += 2u32;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_participant_cannot_make_anything_land_in_another_participants_queue() {
    let mut vhost = Vhost::create();
    let worker_url = vhost.user("worker", ".*", ".*", ".*");
    let alice_url = vhost.participant("alice");
    let bob_url = vhost.participant("bob");
    let (alice, bob) = (vhost.user_name("alice"), vhost.user_name("bob"));
    let operator_url = format!("amqp://guest:guest@127.0.0.1:5672/{}", vhost.name);
    let mut harness = Harness::new(settings_for(&operator_url, false)).await;
    let alice_queue = harness
        .reply_queue(&ParticipantId::new(&alice).unwrap())
        .await;
    let bob_queue = harness
        .reply_queue(&ParticipantId::new(&bob).unwrap())
        .await;
    let worker = EventedWorker::start(&settings_for(&worker_url, false), &vhost.name);

    let mallory = Sender::connect(&alice_url, alice.clone()).await;
    let (_, forged_for_bob) = submission(&bob, 1.0);
    let (_, alices_own) = submission(&alice, 2.0);
    let key = shared_key().public_key();
    let demo = demo_request(
        key.n(),
        &key.encrypt_i64(3).unwrap().ciphertext().to_string(),
        1,
    );
    let attempts: Vec<(&[u8], Option<&str>, bool, &str)> = vec![
        (&forged_for_bob, Some(&bob_queue), true, "identity_mismatch"),
        (&forged_for_bob, None, true, "identity_mismatch"),
        (&alices_own, Some(&bob_queue), true, "foreign_reply_to"),
        (&demo, Some(&bob_queue), true, "foreign_reply_to"),
        (b"{", Some(&bob_queue), true, "malformed_json"),
        (b"[]", Some(&bob_queue), true, "invalid_message"),
        (b"{}", Some(&bob_queue), true, "unknown_shape"),
        (&forged_for_bob, Some(&bob_queue), false, "missing_user_id"),
    ];
    for (body, reply_to, with_user_id, _) in &attempts {
        mallory.send(body, *reply_to, *with_user_id).await;
    }
    let dead = harness.take("readings.dead", attempts.len(), WAIT).await;
    assert_eq!(
        dead.len(),
        attempts.len(),
        "every forged message dead-lettered"
    );
    let mut kinds: Vec<String> = dead
        .iter()
        .map(|m| header(&m.delivery.properties, HEADER_KIND).unwrap())
        .collect();
    let mut expected: Vec<String> = attempts.iter().map(|a| a.3.to_owned()).collect();
    kinds.sort();
    expected.sort();
    assert_eq!(kinds, expected);
    for m in &dead {
        // Never the property (the worker's user could not publish it), always the header.
        assert!(m.delivery.properties.user_id().is_none());
        if header(&m.delivery.properties, HEADER_KIND).as_deref() != Some("missing_user_id") {
            assert_eq!(
                header(&m.delivery.properties, HEADER_ORIGINAL_USER_ID).as_deref(),
                Some(alice.as_str())
            );
        }
    }

    // Spoofing user_id: the broker refuses it (and closes the channel).
    let spoof = Sender::connect(&alice_url, bob.clone()).await;
    let confirm = spoof
        .publisher
        .channel()
        .basic_publish(
            "readings".into(),
            "submission".into(),
            BasicPublishOptions::default(),
            &forged_for_bob,
            BasicProperties::default().with_user_id(bob.as_str().into()),
        )
        .await;
    let refused = match confirm {
        Err(_) => true,
        Ok(c) => !matches!(c.await, Ok(Confirmation::Ack(None))),
    };
    assert!(refused, "the broker refuses a spoofed user_id");

    // Bob's own submission reaches his queue, and only it.
    let bob_sender = Sender::connect(&bob_url, bob.clone()).await;
    let (bob_id, bobs_own) = submission(&bob, 5.0);
    bob_sender.send(&bobs_own, Some(&bob_queue), true).await;
    let in_bobs_queue = harness.take(&bob_queue, 10, Duration::from_secs(5)).await;
    let forged: Vec<_> = in_bobs_queue
        .iter()
        .filter(|m| {
            m.delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str())
                != Some(bob_id.as_str())
        })
        .collect();
    println!(
        "forged deliveries into another participant's queue: {}",
        forged.len()
    );
    assert_eq!(forged.len(), 0);
    assert_eq!(in_bobs_queue.len(), 1, "bob's own result");
    let result: ResultMessage = serde_json::from_slice(&in_bobs_queue[0].delivery.data).unwrap();
    assert!(result.error.is_none());
    // Alice heard about her refusals on her own queue.
    assert!(!harness.take(&alice_queue, 1, WAIT).await.is_empty());

    let events = worker.stop().await;
    let reconnects = events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::ConnectionLost { .. }))
        .count();
    assert_eq!(reconnects, 0, "{events:?}");
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_carrying_a_user_id_void_nobody_elses_and_costly_ones_are_refused_first() {
    let mut vhost = Vhost::create();
    let worker_url = vhost.user("worker", ".*", ".*", ".*");
    let alice_url = vhost.participant("alice");
    let bob_url = vhost.participant("bob");
    let (alice, bob) = (vhost.user_name("alice"), vhost.user_name("bob"));
    let operator_url = format!("amqp://guest:guest@127.0.0.1:5672/{}", vhost.name);
    let mut harness = Harness::new(settings_for(&operator_url, false)).await;
    let bob_queue = harness
        .reply_queue(&ParticipantId::new(&bob).unwrap())
        .await;
    let alice_queue = harness
        .reply_queue(&ParticipantId::new(&alice).unwrap())
        .await;
    let mut worker_settings = settings_for(&worker_url, false);
    worker_settings.worker.batch_size = 16;
    let worker = EventedWorker::start(&worker_settings, &vhost.name);
    let mallory = Sender::connect(&alice_url, alice.clone()).await;
    let bob_sender = Sender::connect(&bob_url, bob.clone()).await;

    // Poisoned user_id: 20 malformed bodies carrying alice's user_id, interleaved with 20
    // valid submissions of bob's.
    let mut bob_ids = Vec::new();
    for i in 0..20 {
        mallory.send(b"{not json", None, true).await;
        let (id, body) = submission(&bob, f64::from(i));
        bob_ids.push(id);
        bob_sender.send(&body, None, true).await;
    }
    let answered = harness.take(&bob_queue, 20, WAIT).await;
    let ok = answered
        .iter()
        .filter(|m| {
            serde_json::from_slice::<ResultMessage>(&m.delivery.data)
                .is_ok_and(|r| r.error.is_none())
        })
        .count();
    let dead = harness
        .take("readings.dead", 40, Duration::from_secs(5))
        .await;
    let bobs_dead = dead
        .iter()
        .filter(|m| {
            header(&m.delivery.properties, HEADER_ORIGINAL_USER_ID).as_deref() == Some(&bob)
        })
        .count();
    println!(
        "valid answered: {ok}/20; valid dead-lettered: {bobs_dead}; malformed dead-lettered: {}",
        dead.len()
    );
    assert_eq!(ok, 20);
    assert_eq!(bobs_dead, 0);
    assert_eq!(dead.len(), 20);

    // Costly: the 8192-bit, 200-value demo-shaped request and its submission equivalent, then a
    // normal request at once.
    let n = big_modulus();
    mallory.send(&demo_request(&n, "2", 200), None, true).await;
    // At the exponent the study encodes glucose at, so that only the price is wrong.
    let honest: serde_json::Value = serde_json::from_slice(&submission(&alice, 1.0).1).unwrap();
    let exponent = honest["readings"]["glucose"][0]["exponent"].clone();
    let readings: Vec<_> = (0..200)
        .map(|_| serde_json::json!({"ciphertext": "2", "exponent": exponent}))
        .collect();
    let costly_submission = serde_json::json!({
        "version": 1, "submission_id": "s-costly", "participant": alice,
        "public_key": {"n": n.to_string()}, "readings": {"glucose": readings},
    });
    mallory
        .send(&serde_json::to_vec(&costly_submission).unwrap(), None, true)
        .await;
    let sent = Instant::now();
    let (_, normal) = submission(&bob, 7.0);
    bob_sender.send(&normal, None, true).await;
    let answer = harness.take(&bob_queue, 1, WAIT).await;
    let elapsed = sent.elapsed();
    println!(
        "normal request answered {:.3} s after the costly ones",
        elapsed.as_secs_f64()
    );
    assert_eq!(answer.len(), 1);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let dead = harness.take("readings.dead", 2, WAIT).await;
    let kinds: Vec<_> = dead
        .iter()
        .map(|m| header(&m.delivery.properties, HEADER_KIND).unwrap())
        .collect();
    assert_eq!(kinds, ["too_costly", "too_costly"]);
    assert!(
        harness
            .take(&alice_queue, 40, Duration::from_secs(2))
            .await
            .len()
            >= 2
    );

    let events = worker.stop().await;
    let reconnects = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                WorkerEvent::ConnectionLost { .. } | WorkerEvent::Reconnected { .. }
            )
        })
        .count();
    println!("worker reconnects caused by input: {reconnects}");
    assert_eq!(reconnects, 0, "{events:?}");
    harness.cleanup().await;
}
