//! What the broker tests of every crate share: each test gets its own topology prefix (so tests
//! run in parallel on one broker), runs workers in-process, and deletes what it declared.
//!
//! A crate of its own (`publish = false`, only ever a dev-dependency) so that it is compiled once
//! and its items are checked like any library's, instead of being included by path into every
//! test binary.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use paillier::PrivateKey;
use pipeline::broker::{self, ConfirmedPublisher, Outgoing, Retry};
use pipeline::config::{LoadOptions, Settings};
use pipeline::{ParticipantId, Topology};
use tokio::task::JoinHandle;
use worker::events::parse_events;
use worker::{ShutdownSender, StatsSnapshot, WorkerEvent, WorkerStats};

/// One 2048-bit key per test binary: generating one per test would dominate the run time.
pub fn shared_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(2048).expect("2048-bit key generation"))
}

/// Settings for one test: defaults plus a unique prefix, the environment's broker URL, and
/// `overrides`. These tests run every client as one broker user (guest) for many participants,
/// so they set `identity.insecure_shared_user`; tests of identity override it with `"false"`
/// and run as real users.
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let prefix = format!("test-{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut options = LoadOptions {
        ignore_environment: true,
        ..LoadOptions::default()
    }
    .set("topology.prefix", Some(prefix))
    .set("broker.url", std::env::var("AMQP_URL").ok())
    .set("identity.insecure_shared_user", Some("true"));
    for (k, v) in overrides {
        options = options.set(k, Some(v));
    }
    Settings::load(&options).expect("test settings")
}

/// A running in-process worker.
pub struct RunningWorker {
    /// Its counters, updated as it goes.
    pub stats: Arc<WorkerStats>,
    stop: ShutdownSender,
    handle: JoinHandle<Result<(), worker::WorkerError>>,
}

impl RunningWorker {
    /// Starts a worker on `settings` on the current tokio runtime.
    pub fn start(settings: &Settings) -> Self {
        let (stop, stopped) = worker::shutdown_channel();
        let stats = Arc::new(WorkerStats::default());
        let settings = settings.clone();
        let s = Arc::clone(&stats);
        let handle = tokio::spawn(async move { worker::run(&settings, stopped, s).await });
        RunningWorker {
            stats,
            stop,
            handle,
        }
    }

    /// The worker's counters once `ready` holds for them (or after 10 s, as they are): the
    /// worker counts a batch after settling it, a moment after its replies can be read.
    pub async fn stats_when(&self, ready: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.stats.snapshot();
            if ready(&stats) || tokio::time::Instant::now() >= deadline {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks the worker to stop and waits until it did.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task")
            .expect("worker ends without error");
    }
}

/// A test's own broker connection, publisher and topology, removed again by [`Harness::cleanup`].
pub struct Harness {
    /// The test's settings (unique topology prefix).
    pub settings: Settings,
    /// The topology those settings name, declared by [`Harness::new`].
    pub topology: Topology,
    /// The test's own connection.
    pub conn: Connection,
    /// A plain channel for gets, declares and deletes.
    pub channel: Channel,
    /// A publisher with confirms.
    pub publisher: ConfirmedPublisher,
    extra_queues: Vec<String>,
}

impl Harness {
    /// Connects to the broker (AMQP_URL or the local one) and declares the test's topology.
    pub async fn new(settings: Settings) -> Self {
        let conn = broker::connect(&settings.broker, "test", Retry::Bounded(3), false)
            .await
            .expect("the tests need RabbitMQ (AMQP_URL or 127.0.0.1:5672)");
        let publisher = ConfirmedPublisher::new(&conn).await.unwrap();
        let topology = Topology::new(&settings.topology, &settings.reply_queues);
        topology.declare(publisher.channel()).await.unwrap();
        let channel = conn.create_channel().await.unwrap();
        Harness {
            settings,
            topology,
            conn,
            channel,
            publisher,
            extra_queues: Vec::new(),
        }
    }

    /// Declares a participant's reply queue and remembers it for cleanup.
    pub async fn reply_queue(&mut self, participant: &ParticipantId) -> String {
        let q = self
            .topology
            .declare_reply_queue(self.publisher.channel(), participant)
            .await
            .unwrap();
        self.extra_queues.push(q.clone());
        q
    }

    /// Remembers a queue declared by someone else, for cleanup.
    pub fn remember_queue(&mut self, queue: String) {
        self.extra_queues.push(queue);
    }

    /// Publishes a raw body to the readings exchange, with `reply_to`.
    pub async fn publish_raw(&self, body: &[u8], reply_to: Option<&str>) {
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(uuid::Uuid::new_v4().to_string().into());
        if let Some(r) = reply_to {
            props = props.with_reply_to(r.into());
        }
        self.publisher
            .publish(Outgoing {
                exchange: self.topology.readings_exchange.clone(),
                routing_key: self.topology.submission_routing_key.clone(),
                body: body.to_vec(),
                properties: props,
            })
            .await
            .unwrap();
    }

    /// Takes up to `count` messages from `queue`, waiting at most `within` in total.
    pub async fn take(&self, queue: &str, count: usize, within: Duration) -> Vec<BasicGetMessage> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < count && tokio::time::Instant::now() < deadline {
            match self
                .channel
                .basic_get(ShortString::from(queue), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => got.push(m),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        got
    }

    /// Messages ready in `queue` (passive declare).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                ShortString::from(queue),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Deletes the test's queues and exchanges.
    pub async fn cleanup(self) {
        for q in &self.extra_queues {
            let _ = self
                .channel
                .queue_delete(ShortString::from(q.as_str()), QueueDeleteOptions::default())
                .await;
        }
        self.topology.delete(&self.channel).await.unwrap();
        let _ = self.conn.close(200, "test done".into()).await;
    }
}

/// A string header of a message.
pub fn header(props: &BasicProperties, key: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Drains a consumer-less queue's messages into parsed JSON values.
pub fn json_bodies(messages: &[BasicGetMessage]) -> Vec<serde_json::Value> {
    messages
        .iter()
        .map(|m| serde_json::from_slice(&m.delivery.data).expect("JSON body"))
        .collect()
}

/// A fresh path for a worker binary's event stream (`--events` / `WORKER_EVENTS`), unique to the
/// test's topology prefix, in the temporary directory. Remove it with [`remove_events_file`].
pub fn events_file(settings: &Settings) -> PathBuf {
    std::env::temp_dir().join(format!("{}worker-events.jsonl", settings.topology.prefix))
}

/// Every event a worker wrote to `path` (none when it wrote none), panicking on a line that is
/// not an event: the event stream is a contract, a change of format must fail the tests.
pub fn read_worker_events(path: &Path) -> Vec<WorkerEvent> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_events(&text)
            .unwrap_or_else(|e| panic!("{} is not a worker event stream: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

/// Removes a test's event file, if any.
pub fn remove_events_file(path: &Path) {
    let _ = std::fs::remove_file(path);
}
