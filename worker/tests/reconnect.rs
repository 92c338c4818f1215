//! Lost connections, in seconds and without touching the shared broker: producer, consumer and
//! worker reach the broker through a loopback TCP proxy of the test's own, which the test cuts
//! (every connection dropped, nothing listening) and restores, or freezes (connections open,
//! nothing answered). Checks that a publish interrupted by the loss is republished and
//! confirmed, that a result stream consumes again and gets the unacked result redelivered (flagged as a duplicate), that a stream over many reply queues
//! (`consumer collect`'s) consumes them all again with the same guarantee, that a worker
//! consumes again, that a client which cannot get back within `broker.reconnect_timeout`
//! fails with an error instead of hanging, and that a worker whose broker stops answering still
//! stops when asked. (A real broker restart is in scripts/reliability.)

use test_support as common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Harness, RunningWorker, settings, shared_key};
use lapin::BasicProperties;
use lapin::uri::AMQPUri;
use participant::{Client, readings};
use pipeline::ParticipantId;
use pipeline::broker::Outgoing;
use pipeline::config::Settings;
use pipeline::messages::SubmissionWire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP forwarder 127.0.0.1:<port> -> the broker that can be cut and restored, or frozen.
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// While true, nothing is forwarded either way but every socket stays open: a broker that
    /// stopped answering (hung, or a network path that silently drops), not one that went away.
    frozen: watch::Sender<bool>,
}

/// Copies `from` to `to` until either side closes, holding every chunk back while `frozen`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            upstream,
            tasks: Arc::default(),
            frozen: watch::Sender::new(false),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let tasks = Arc::clone(&self.tasks);
        let frozen = self.frozen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let frozen = frozen.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(broker) = TcpStream::connect(upstream).await {
                        let (client_in, client_out) = client.into_split();
                        let (broker_in, broker_out) = broker.into_split();
                        tokio::join!(
                            pump(client_in, broker_out, frozen.subscribe()),
                            pump(broker_in, client_out, frozen.subscribe()),
                        );
                    }
                });
                tasks.lock().unwrap().push(forward);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Drops every connection and stops listening: clients see their connection die and
    /// cannot connect again.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Stops forwarding, keeping every connection open.
    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Listens again on the same port.
    async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return self.serve(listener),
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("cannot listen on {} again: {err}", self.port),
            }
        }
    }

    /// `settings` with the broker URL pointing at the proxy.
    fn settings(&self, settings: &Settings) -> Settings {
        let mut uri: AMQPUri = settings.broker.url.parse().unwrap();
        uri.authority.host = "127.0.0.1".into();
        uri.authority.port = self.port;
        let vhost = if uri.vhost == "/" {
            "%2f".to_owned()
        } else {
            uri.vhost.clone()
        };
        let mut through = settings.clone();
        through.broker.url = format!(
            "amqp://{}:{}@127.0.0.1:{}/{vhost}",
            uri.authority.userinfo.username, uri.authority.userinfo.password, self.port
        );
        through
    }
}

async fn proxy_for(settings: &Settings) -> Proxy {
    let uri: AMQPUri = settings.broker.url.parse().unwrap();
    let host = if uri.authority.host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        uri.authority.host.clone()
    };
    let upstream: SocketAddr = format!("{host}:{}", uri.authority.port).parse().unwrap();
    Proxy::start(upstream).await
}

fn message(harness: &Harness, n: usize, size: usize) -> Outgoing {
    Outgoing {
        exchange: harness.topology.readings_exchange.clone(),
        routing_key: harness.topology.submission_routing_key.clone(),
        body: vec![b'x'; size],
        properties: BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(format!("m-{n}").into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_lost_with_the_connection_are_republished_after_reconnecting() {
    let settings = settings(&[("broker.reconnect_timeout", "20s")]);
    let harness = Harness::new(settings.clone()).await;
    let proxy = proxy_for(&settings).await;
    let client = Client::connect(&proxy.settings(&settings), "test-producer")
        .await
        .unwrap();

    // 1. The connection dies before the publish: everything goes out on the new one.
    proxy.cut();
    let messages: Vec<Outgoing> = (0..50).map(|n| message(&harness, n, 64)).collect();
    let restore = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.restore().await;
    };
    let started = Instant::now();
    let (published, ()) = tokio::join!(client.publish_all(&messages), restore);
    published.expect("published after reconnecting");
    assert!(started.elapsed() >= Duration::from_millis(800));

    // 2. The connection dies in the middle of a large pipelined publish: whatever was not
    //    confirmed is published again (some may arrive twice: at-least-once).
    let big: Vec<Outgoing> = (50..250).map(|n| message(&harness, n, 64 * 1024)).collect();
    let cut_and_restore = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.restore().await;
    };
    let (published, ()) = tokio::join!(client.publish_all(&big), cut_and_restore);
    published.expect("published after reconnecting");

    // publish_all returned: every message is confirmed, so the queue holds all of them, each
    // at least once. Read them all (a cap below the count would report duplicates as losses).
    let in_queue = harness.queue_len(&harness.topology.work_queue).await as usize;
    assert!(
        (250..=500).contains(&in_queue),
        "250 messages, each republished at most once per cut (two cuts), but {in_queue} queued"
    );
    let queued = harness
        .take(
            &harness.topology.work_queue,
            in_queue,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(queued.len(), in_queue, "every queued message could be read");
    let ids: Vec<String> = queued
        .iter()
        .map(|m| {
            m.delivery
                .properties
                .message_id()
                .as_ref()
                .unwrap()
                .to_string()
        })
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        250,
        "every message arrived ({} with duplicates)",
        ids.len()
    );
    client.close().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_stream_consumes_again_and_gets_the_unacked_result_back() {
    let settings = settings(&[("broker.reconnect_timeout", "20s")]);
    let mut harness = Harness::new(settings.clone()).await;
    let proxy = proxy_for(&settings).await;
    let participant = ParticipantId::new("p-stream").unwrap();
    let queue = harness.reply_queue(&participant).await;
    let client = Client::connect(&proxy.settings(&settings), "test-consumer")
        .await
        .unwrap();
    let mut stream = client.results(&participant, 10).await.unwrap();
    let result = |id: &str| Outgoing {
        exchange: harness.topology.results_exchange.clone(),
        routing_key: queue.clone(),
        body: serde_json::to_vec(&serde_json::json!({
            "version": 1, "submission_id": id, "status": "ok", "outputs": []
        }))
        .unwrap(),
        properties: BasicProperties::default().with_delivery_mode(2),
    };
    harness.publisher.publish(result("s-1")).await.unwrap();
    let first = stream
        .next(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("the first result");
    assert!(!first.duplicate);

    // Lost before the ack: the broker requeues the result; the stream reconnects by itself.
    proxy.cut();
    let restore = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.restore().await;
        harness.publisher.publish(result("s-2")).await.unwrap();
    };
    let (again, ()) = tokio::join!(stream.next(Duration::from_secs(20)), restore);
    let again = again.unwrap().expect("a result after reconnecting");
    assert!(
        !first.ack().await.unwrap(),
        "the old delivery cannot be acked"
    );
    let mut got = vec![again];
    while got.len() < 2 {
        got.push(
            stream
                .next(Duration::from_secs(10))
                .await
                .unwrap()
                .expect("both results"),
        );
    }
    let mut seen = BTreeMap::new();
    for r in &got {
        let id = r.result.as_ref().unwrap().submission_id.clone();
        seen.insert(id, r.duplicate);
        assert!(r.ack().await.unwrap());
    }
    assert_eq!(
        seen,
        BTreeMap::from([("s-1".to_owned(), true), ("s-2".to_owned(), false)]),
        "the redelivered result is flagged as a duplicate"
    );
    stream.close().await;
    client.close().await;
    assert_eq!(harness.queue_len(&queue).await, 0, "everything acked");
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohort_stream_consumes_every_queue_again_and_gets_the_unacked_results_back() {
    let settings = settings(&[("broker.reconnect_timeout", "20s")]);
    let mut harness = Harness::new(settings.clone()).await;
    let proxy = proxy_for(&settings).await;
    let client = Client::connect(&proxy.settings(&settings), "test-collect")
        .await
        .unwrap();
    let mut queues = Vec::new();
    for i in 0..3 {
        let participant = ParticipantId::new(&format!("p-cohort-{i}")).unwrap();
        let (queue, ready) = client
            .declare_reply_queue_counted(&participant)
            .await
            .unwrap();
        assert_eq!(ready, 0);
        harness.remember_queue(queue.clone());
        queues.push((participant, queue));
    }
    let mut stream = client.cohort_results(queues.clone(), 10).await.unwrap();
    let result = |queue: &str, id: &str| Outgoing {
        exchange: harness.topology.results_exchange.clone(),
        routing_key: queue.to_owned(),
        body: serde_json::to_vec(&serde_json::json!({
            "version": 1, "submission_id": id, "status": "ok", "outputs": []
        }))
        .unwrap(),
        properties: BasicProperties::default().with_delivery_mode(2),
    };
    // One result per queue, taken and not acked.
    for (i, (_, queue)) in queues.iter().enumerate() {
        harness
            .publisher
            .publish(result(queue, &format!("s-{i}")))
            .await
            .unwrap();
    }
    let mut before = Vec::new();
    while before.len() < 3 {
        let r = stream
            .next(Duration::from_secs(10))
            .await
            .unwrap()
            .expect("a result from each queue");
        assert!(!r.duplicate);
        before.push(r);
    }
    let mut from: Vec<usize> = before.iter().map(|r| r.index).collect();
    from.sort_unstable();
    assert_eq!(from, [0, 1, 2], "each queue delivered its own result");

    // Lost before the acks: all three come back on the new channel, plus a new one.
    proxy.cut();
    let restore = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.restore().await;
        harness
            .publisher
            .publish(result(&queues[1].1, "s-new"))
            .await
            .unwrap();
    };
    let (again, ()) = tokio::join!(stream.next(Duration::from_secs(20)), restore);
    let mut got = vec![again.unwrap().expect("a result after reconnecting")];
    for old in &before {
        assert!(!old.ack().await.unwrap(), "an old delivery cannot be acked");
    }
    while got.len() < 4 {
        got.push(
            stream
                .next(Duration::from_secs(10))
                .await
                .unwrap()
                .expect("every result again"),
        );
    }
    let mut seen = BTreeMap::new();
    for r in &got {
        let id = r.result.as_ref().unwrap().submission_id.clone();
        let expected_queue = if id == "s-new" {
            1
        } else {
            id[2..].parse().unwrap()
        };
        assert_eq!(r.index, expected_queue, "{id} came from its own queue");
        seen.insert(id, r.duplicate);
        assert!(r.ack().await.unwrap());
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            ("s-0".to_owned(), true),
            ("s-1".to_owned(), true),
            ("s-2".to_owned(), true),
            ("s-new".to_owned(), false),
        ]),
        "the redelivered results are flagged as duplicates"
    );
    assert!(stream.try_next().is_none(), "nothing more");
    stream.close().await;
    client.close().await;
    for (_, queue) in &queues {
        assert_eq!(
            harness.queue_len(queue).await,
            0,
            "{queue}: everything acked"
        );
    }
    harness.cleanup().await;
}

/// A worker that reaches the broker through a proxy, and a producer that does not, with one
/// submission already answered (so the worker is known to be consuming).
struct ProxiedWorker {
    harness: Harness,
    proxy: Proxy,
    participant: ParticipantId,
    queue: String,
    worker: RunningWorker,
    producer: Client,
    first: SubmissionWire,
}

impl ProxiedWorker {
    async fn start(participant: &str, overrides: &[(&str, &str)]) -> ProxiedWorker {
        // The worker's log (loss, reconnect, shutdown) is shown if the test fails.
        pipeline::logging::init(0);
        let mut overrides = overrides.to_vec();
        overrides.push(("worker.batch_max_wait", "5ms"));
        let settings = settings(&overrides);
        let mut harness = Harness::new(settings.clone()).await;
        let proxy = proxy_for(&settings).await;
        let participant = ParticipantId::new(participant).unwrap();
        let queue = harness.reply_queue(&participant).await;
        let worker = RunningWorker::start(&proxy.settings(&settings));
        let producer = Client::connect(&settings, "test-producer").await.unwrap();
        let first = submission(&participant, 5.0);
        producer.submit(&first).await.unwrap();
        assert_eq!(
            harness.take(&queue, 1, Duration::from_secs(30)).await.len(),
            1
        );
        ProxiedWorker {
            harness,
            proxy,
            participant,
            queue,
            worker,
            producer,
            first,
        }
    }

    fn submission(&self, glucose: f64) -> SubmissionWire {
        submission(&self.participant, glucose)
    }
}

fn submission(participant: &ParticipantId, glucose: f64) -> SubmissionWire {
    let readings = BTreeMap::from([("glucose".to_owned(), vec![glucose])]);
    readings::encrypt_submission(
        &pipeline::Settings::defaults().study,
        participant,
        shared_key(),
        &readings,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_consumes_again_after_losing_its_connection() {
    let w = ProxiedWorker::start("p-worker", &[("broker.reconnect_timeout", "20s")]).await;
    w.proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = w.submission(6.0);
    w.producer.submit(&second).await.unwrap();
    w.proxy.restore().await;
    // The first submission may be answered again: the cut can come between its result's
    // confirm and its ack (at-least-once).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = Vec::new();
    while !answered.contains(&second.submission_id) && Instant::now() < deadline {
        for r in common::json_bodies(&w.harness.take(&w.queue, 1, Duration::from_secs(1)).await) {
            answered.push(r["submission_id"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        answered.contains(&second.submission_id),
        "the worker came back and answered: {answered:?}"
    );
    assert!(
        answered
            .iter()
            .all(|id| *id == second.submission_id || *id == w.first.submission_id)
    );
    assert_eq!(w.worker.stats.snapshot().sessions, 2, "one reconnect");
    w.producer.close().await;
    w.worker.stop().await;
    w.harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_reconnect_in_time_fails_instead_of_hanging() {
    let settings = settings(&[
        ("broker.reconnect_timeout", "1s"),
        ("broker.connect_timeout", "500ms"),
    ]);
    let harness = Harness::new(settings.clone()).await;
    let proxy = proxy_for(&settings).await;
    let client = Client::connect(&proxy.settings(&settings), "test-producer")
        .await
        .unwrap();
    proxy.cut();
    let started = Instant::now();
    let err = client
        .publish_all(&[message(&harness, 0, 16)])
        .await
        .expect_err("the broker stays unreachable");
    let took = started.elapsed();
    assert!(
        err.to_string().contains("cannot connect to the broker"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_broker_stops_answering_still_stops_when_asked() {
    let w = ProxiedWorker::start("p-frozen", &[("worker.shutdown_grace", "1s")]).await;
    // The broker goes silent: the cancel, channel close and connection closes of the shutdown
    // are never answered. Each wait is bounded, so the worker still ends (the broker requeues
    // whatever it held once the connections die).
    w.proxy.freeze();
    let started = Instant::now();
    w.worker.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "stopped only after {took:?}"
    );
    w.producer.close().await;
    w.proxy.cut();
    w.harness.cleanup().await;
}
