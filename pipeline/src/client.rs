//! The participant side: checking and encrypting readings, submitting them, and reading results
//! from the participant's reply queue. Used by the `producer` and `consumer` binaries and by
//! tests; bulk enrollment and collection build on the same pieces.
//!
//! A [`Client`] survives a lost connection (broker restart, network failure): [`Client::submit`]
//! and [`Client::publish_all`] reconnect and republish what the broker had not confirmed, a
//! [`ResultStream`] (one reply queue) or a [`CohortStream`] (many reply queues on one channel,
//! for whole cohorts) reconnects and consumes again (unacked results are redelivered by the
//! broker; [`Received::duplicate`] marks the ones already seen). Other operations report the
//! loss ([`ClientError::is_connection_loss`]) and the caller decides to [`Client::reconnect`] and
//! retry. Reconnecting gives up after `broker.reconnect_timeout`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use paillier::PrivateKey;
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::broker::{self, BrokerError, ConfirmedPublisher, Outgoing, Retry};
use crate::config::{BrokerSettings, Settings};
use crate::messages::{MessageType, Properties, ResultMessage, SubmissionWire, properties};
use crate::participant::ParticipantId;
use crate::study::Study;
use crate::topology::{Topology, TopologyError};

/// What went wrong on the participant side.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A `--reading` is not `METRIC=NUMBER`.
    #[error("reading {0:?} is not METRIC=NUMBER (e.g. glucose=5.4)")]
    ReadingSyntax(String),
    /// A reading's value is not a finite number.
    #[error("reading {metric}={value:?}: not a finite number")]
    NotANumber {
        /// Metric named.
        metric: String,
        /// The value given.
        value: String,
    },
    /// A metric the study does not define.
    #[error("unknown metric {metric:?}; this study measures: {known}")]
    UnknownMetric {
        /// The metric given.
        metric: String,
        /// The study's metrics.
        known: String,
    },
    /// No readings given.
    #[error("no readings given (use --reading METRIC=VALUE)")]
    NoReadings,
    /// Encryption failed (a value too large for the key).
    #[error("encrypting the readings: {0}")]
    Encrypt(#[from] paillier::Error),
    /// Broker failure.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Topology declaration failure.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A task of the client's own ended abnormally (a bug: they do not panic otherwise).
    #[error("internal error: {0}")]
    Task(String),
}

impl ClientError {
    /// Whether the error is a lost connection: reconnecting and retrying can succeed.
    pub fn is_connection_loss(&self) -> bool {
        broker::caused_by_connection_loss(self)
    }
}

/// Parses `METRIC=VALUE`.
pub fn parse_reading(text: &str) -> Result<(String, f64), ClientError> {
    let (metric, value) = text
        .split_once('=')
        .ok_or_else(|| ClientError::ReadingSyntax(text.to_owned()))?;
    let metric = metric.trim();
    if metric.is_empty() {
        return Err(ClientError::ReadingSyntax(text.to_owned()));
    }
    let number: f64 = value.trim().parse().map_err(|_| ClientError::NotANumber {
        metric: metric.to_owned(),
        value: value.to_owned(),
    })?;
    if !number.is_finite() {
        return Err(ClientError::NotANumber {
            metric: metric.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok((metric.to_owned(), number))
}

/// Groups readings by metric (a metric given several times is a series, in the order given) and
/// checks every metric against the study.
pub fn group_readings(
    study: &Study,
    readings: impl IntoIterator<Item = (String, f64)>,
) -> Result<BTreeMap<String, Vec<f64>>, ClientError> {
    let mut grouped: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (metric, value) in readings {
        if study.metric(&metric).is_none() {
            let known: Vec<&str> = study.metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(ClientError::UnknownMetric {
                metric,
                known: known.join(", "),
            });
        }
        grouped.entry(metric).or_default().push(value);
    }
    if grouped.is_empty() {
        return Err(ClientError::NoReadings);
    }
    Ok(grouped)
}

/// Encrypts readings into a submission with a fresh id (key owner's fast path).
pub fn encrypt_submission(
    participant: &ParticipantId,
    key: &PrivateKey,
    readings: &BTreeMap<String, Vec<f64>>,
) -> Result<SubmissionWire, ClientError> {
    let id = uuid::Uuid::new_v4().to_string();
    Ok(SubmissionWire::encrypt(&id, participant, key, readings)?)
}

/// Reply queue declares [`Client::declare_reply_queues`] keeps in flight at once.
pub const DECLARES_IN_FLIGHT: usize = 64;

/// Reconnects one operation may go through before its error is returned (a broker that keeps
/// dropping connections is a failure, not a loss to wait out).
const MAX_RECONNECTS: u32 = 5;

/// Pause before trying again when a new connection is lost while it is being set up.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A connection to the broker for a participant-side program, with the topology declared; it
/// replaces its connection when the old one is lost (see the module documentation).
pub struct Client {
    link: Mutex<Link>,
    /// Held while reconnecting, so that callers noticing the same loss reconnect once.
    reconnecting: tokio::sync::Mutex<()>,
    broker: BrokerSettings,
    role: String,
    topology: Topology,
    app_id: String,
}

/// The connection of the moment and its publishing channel. `generation` counts reconnects, so
/// that several callers noticing the same loss reconnect once.
#[derive(Clone)]
struct Link {
    conn: Arc<Connection>,
    publisher: ConfirmedPublisher,
    generation: u64,
}

impl Client {
    /// Connects (failing fast when the broker is unreachable) and declares the shared topology.
    pub async fn connect(settings: &Settings, role: &str) -> Result<Self, ClientError> {
        let topology = Topology::new(&settings.topology, &settings.reply_queues);
        let link = Self::open(
            &settings.broker,
            role,
            &topology,
            Retry::Bounded(settings.broker.connect_attempts),
            0,
        )
        .await?;
        Ok(Client {
            link: Mutex::new(link),
            reconnecting: tokio::sync::Mutex::new(()),
            broker: settings.broker.clone(),
            role: role.to_owned(),
            topology,
            app_id: role.to_owned(),
        })
    }

    async fn open(
        broker: &BrokerSettings,
        role: &str,
        topology: &Topology,
        retry: Retry,
        generation: u64,
    ) -> Result<Link, ClientError> {
        let conn = broker::connect(broker, role, retry, false).await?;
        // Bounded: a connection dying during the setup must mean reconnecting, not waiting for
        // an answer that never comes.
        let setup = async {
            let publisher = ConfirmedPublisher::new(&conn).await?;
            topology.declare(publisher.channel()).await?;
            Ok::<_, ClientError>(publisher)
        };
        let publisher = match broker::answered_within(
            broker.connect_timeout,
            "setting up the connection",
            setup,
        )
        .await
        {
            Ok(publisher) => publisher,
            Err(err) => {
                broker::close_connection(&conn, "connection setup failed").await;
                return Err(err);
            }
        };
        Ok(Link {
            conn: Arc::new(conn),
            publisher,
            generation,
        })
    }

    fn link(&self) -> Link {
        self.link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces a lost connection: connects again (for at most `broker.reconnect_timeout`) and
    /// declares the topology again. Logs the loss and how long the recovery took; a failure to
    /// reconnect in time is an error.
    pub async fn reconnect(&self, cause: &ClientError) -> Result<(), ClientError> {
        let lost = self.link();
        self.reconnect_from(lost.generation, cause).await
    }

    async fn reconnect_from(
        &self,
        generation: u64,
        cause: &ClientError,
    ) -> Result<(), ClientError> {
        let _one_at_a_time = self.reconnecting.lock().await;
        if self.link().generation != generation {
            return Ok(()); // someone else reconnected since this link failed
        }
        let started = Instant::now();
        warn!(role = self.role, error = %cause, limit = ?self.broker.reconnect_timeout, "connection to the broker lost; reconnecting");
        let link = loop {
            let left = self
                .broker
                .reconnect_timeout
                .saturating_sub(started.elapsed());
            let opened = Self::open(
                &self.broker,
                &self.role,
                &self.topology,
                Retry::Within(left),
                generation + 1,
            )
            .await;
            match opened {
                Ok(link) => break link,
                // Connected, then lost again while declaring (a broker still starting up).
                Err(err)
                    if err.is_connection_loss()
                        && started.elapsed() + RETRY_PAUSE < self.broker.reconnect_timeout =>
                {
                    debug!(error = %err, "lost the new connection at once; trying again");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(err) => {
                    warn!(role = self.role, error = %err, "could not reconnect to the broker");
                    return Err(err);
                }
            }
        };
        let old = std::mem::replace(
            &mut *self.link.lock().unwrap_or_else(PoisonError::into_inner),
            link,
        );
        broker::close_connection(&old.conn, "replaced after a connection loss").await;
        info!(
            role = self.role,
            after_ms = started.elapsed().as_millis() as u64,
            "reconnected to the broker"
        );
        Ok(())
    }

    /// Runs `op` on the current link; after a connection loss, reconnects and runs it again.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut(Link) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut reconnects = 0;
        loop {
            let link = self.link();
            let generation = link.generation;
            match op(link).await {
                Err(err) if err.is_connection_loss() && reconnects < MAX_RECONNECTS => {
                    reconnects += 1;
                    self.reconnect_from(generation, &err).await?
                }
                other => return other,
            }
        }
    }

    /// The resolved topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The connection of the moment (e.g. to open a consuming channel). After
    /// [`Client::reconnect`], ask again.
    pub fn connection(&self) -> Arc<Connection> {
        self.link().conn
    }

    /// Declares (idempotently) the participant's reply queue; returns its name. Reconnects when
    /// the connection was lost.
    pub async fn declare_reply_queue(
        &self,
        participant: &ParticipantId,
    ) -> Result<String, ClientError> {
        Ok(self.declare_reply_queue_counted(participant).await?.0)
    }

    /// [`Client::declare_reply_queue`], also returning how many results were ready in the
    /// queue (from the declare's own answer: no further round trip).
    pub async fn declare_reply_queue_counted(
        &self,
        participant: &ParticipantId,
    ) -> Result<(String, u32), ClientError> {
        self.retrying(|link| async move {
            Ok(self
                .topology
                .declare_reply_queue_counted(link.publisher.channel(), participant)
                .await?)
        })
        .await
    }

    /// Declares the reply queues of many participants at once; returns, in the same order,
    /// each queue's name and the results ready in it. Up to [`DECLARES_IN_FLIGHT`] declares are
    /// sent without waiting for each other's answers (pipelined on one channel): the broker
    /// still handles them one after another, but the round trips no longer add up. Reconnects
    /// when the connection was lost (and declares them all again: declaring is idempotent).
    pub async fn declare_reply_queues(
        &self,
        participants: &[ParticipantId],
    ) -> Result<Vec<(String, u32)>, ClientError> {
        self.retrying(|link| async move {
            let mut declared = Vec::with_capacity(participants.len());
            for chunk in participants.chunks(DECLARES_IN_FLIGHT) {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, participant) in chunk.iter().enumerate() {
                    let (topology, participant) = (self.topology.clone(), participant.clone());
                    let channel = link.publisher.channel().clone();
                    tasks.spawn(async move {
                        let declared = topology
                            .declare_reply_queue_counted(&channel, &participant)
                            .await;
                        (i, declared)
                    });
                }
                let mut answers: Vec<Option<(String, u32)>> = vec![None; chunk.len()];
                let mut first_error = None;
                while let Some(joined) = tasks.join_next().await {
                    // A declare task cannot panic short of a bug in lapin; report it as such.
                    let (i, outcome) =
                        joined.map_err(|e| ClientError::Task(format!("declaring a queue: {e}")))?;
                    match outcome {
                        Ok(answer) => answers[i] = Some(answer),
                        Err(err) => {
                            // One refused declare closes the channel under the others: report
                            // the refusal, not the closed channel it caused.
                            let err = ClientError::from(err);
                            if first_error
                                .as_ref()
                                .is_none_or(|e: &ClientError| e.is_connection_loss())
                            {
                                first_error = Some(err);
                            }
                        }
                    }
                }
                if let Some(err) = first_error {
                    return Err(err);
                }
                declared.extend(answers.into_iter().flatten());
            }
            Ok(declared)
        })
        .await
    }

    /// Messages ready in an existing `queue` (a passive declare). Reconnects when the connection
    /// was lost.
    pub async fn message_count(&self, queue: &str) -> Result<u32, ClientError> {
        let name = ShortString::try_new(queue.to_owned())
            .map_err(|_| BrokerError::NameTooLong(queue.to_owned()))?;
        self.retrying(|link| {
            let name = name.clone();
            async move {
                let declared = link
                    .publisher
                    .channel()
                    .queue_declare(
                        name,
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|source| BrokerError::Channel {
                        context: "counting the messages of a queue",
                        source,
                    })?;
                Ok(declared.message_count())
            }
        })
        .await
    }

    /// The message that carries `submission`, replying to `reply_to`.
    pub fn submission_message(&self, submission: &SubmissionWire, reply_to: &str) -> Outgoing {
        let props = properties(&Properties {
            kind: MessageType::Submission,
            message_id: submission.submission_id.clone(),
            correlation_id: submission.submission_id.clone(),
            reply_to: Some(reply_to.to_owned()),
            app_id: self.app_id.clone(),
        });
        // The broker checks user_id against the connection's user; the worker binds the
        // submission to it (issue 10).
        let props = match crate::broker::url_user(&self.broker.url).map(ShortString::try_new) {
            Some(Ok(user)) => props.with_user_id(user),
            _ => props,
        };
        Outgoing {
            exchange: self.topology.readings_exchange.clone(),
            routing_key: self.topology.submission_routing_key.clone(),
            body: serde_json::to_vec(submission).expect("a submission always serialises"),
            properties: props,
        }
    }

    /// Declares the reply queue, publishes `submission` and waits for the broker's confirm
    /// (republishing on a new connection if the old one was lost before the confirm).
    pub async fn submit(&self, submission: &SubmissionWire) -> Result<(), ClientError> {
        let participant = ParticipantId::new(&submission.participant)
            .map_err(|e| ClientError::ReadingSyntax(e.to_string()))?;
        let reply_to = self.declare_reply_queue(&participant).await?;
        self.publish_all(std::slice::from_ref(
            &self.submission_message(submission, &reply_to),
        ))
        .await?;
        debug!(
            submission_id = submission.submission_id,
            reply_to, "submission confirmed"
        );
        Ok(())
    }

    /// Publishes prepared messages with confirms. After a connection loss it reconnects and
    /// republishes exactly the messages not yet confirmed (at-least-once: one whose confirm was
    /// lost with the connection may reach the broker twice; receivers deduplicate by id).
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), ClientError> {
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut reconnects = 0;
        loop {
            let link = self.link();
            match link.publisher.publish_pending(messages, &mut pending).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    let err = ClientError::from(err);
                    if !err.is_connection_loss() || reconnects >= MAX_RECONNECTS {
                        return Err(err);
                    }
                    reconnects += 1;
                    warn!(
                        unconfirmed = pending.len(),
                        "publishing interrupted; republishing the unconfirmed messages after reconnecting"
                    );
                    self.reconnect_from(link.generation, &err).await?;
                }
            }
        }
    }

    /// Starts consuming a participant's reply queue (declaring it first). The stream reconnects
    /// by itself after a connection loss.
    pub async fn results(
        &self,
        participant: &ParticipantId,
        prefetch: u16,
    ) -> Result<ResultStream<'_>, ClientError> {
        let queue = self.declare_reply_queue(participant).await?;
        let (channel, consumer, generation) = self
            .retrying(|link| {
                let queue = queue.clone();
                async move {
                    let (channel, consumer) = consume(
                        &link.conn,
                        participant,
                        &queue,
                        prefetch,
                        self.broker.connect_timeout,
                    )
                    .await?;
                    Ok((channel, consumer, link.generation))
                }
            })
            .await?;
        Ok(ResultStream {
            client: self,
            participant: participant.clone(),
            queue,
            prefetch,
            channel,
            consumer,
            generation,
            seen: HashSet::new(),
        })
    }

    /// Consumes many reply queues at once, on one channel (one consumer per queue, `prefetch`
    /// each): the broker pushes results as they arrive, whichever participant they are for,
    /// instead of each queue being polled in turn. `queues` are `(participant, reply queue)`
    /// pairs whose queues exist (see [`Client::declare_reply_queue_counted`]). The stream
    /// reconnects by itself after a connection loss and consumes every queue again.
    pub async fn cohort_results(
        &self,
        queues: Vec<(ParticipantId, String)>,
        prefetch: u16,
    ) -> Result<CohortStream<'_>, ClientError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (channel, generation) = self.consume_cohort(&queues, prefetch, &tx).await?;
        Ok(CohortStream {
            client: self,
            queues,
            prefetch,
            channel,
            generation,
            tx,
            rx,
            held: None,
            seen: HashSet::new(),
        })
    }

    /// Consumes every queue of a cohort on a new channel of the current connection
    /// ([`consume_all`]), reconnecting when it was lost; the channel and the connection's
    /// generation.
    async fn consume_cohort(
        &self,
        queues: &[(ParticipantId, String)],
        prefetch: u16,
        tx: &CohortSender,
    ) -> Result<(Channel, u64), ClientError> {
        let limit = self.broker.connect_timeout;
        self.retrying(|link| async move {
            let channel =
                consume_all(&link.conn, queues, prefetch, link.generation, tx, limit).await?;
            Ok((channel, link.generation))
        })
        .await
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        broker::close_connection(&self.link().conn, "done").await;
    }
}

/// Opens a channel with the prefetch window and consumes `queue` on it, giving the broker
/// `limit` to answer (see [`broker::answered_within`]).
async fn consume(
    conn: &Connection,
    participant: &ParticipantId,
    queue: &str,
    prefetch: u16,
    limit: Duration,
) -> Result<(Channel, Consumer), ClientError> {
    broker::answered_within(
        limit,
        "starting to consume the reply queue",
        consume_unbounded(conn, participant, queue, prefetch),
    )
    .await
}

async fn consume_unbounded(
    conn: &Connection,
    participant: &ParticipantId,
    queue: &str,
    prefetch: u16,
) -> Result<(Channel, Consumer), ClientError> {
    let err = |context| move |source| BrokerError::Channel { context, source };
    let channel = conn
        .create_channel()
        .await
        .map_err(err("opening the reply channel"))?;
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(err("setting the prefetch window"))?;
    let consumer = consume_on(&channel, participant, queue).await?;
    Ok((channel, consumer))
}

/// Starts a consumer of `queue` on `channel`, tagged after the participant, host and process
/// (unique on the channel, and telling in the management UI).
async fn consume_on(
    channel: &Channel,
    participant: &ParticipantId,
    queue: &str,
) -> Result<Consumer, ClientError> {
    let tag = format!(
        "consumer-{}-{}-{}",
        participant,
        broker::host_name(),
        std::process::id()
    );
    Ok(channel
        .basic_consume(
            ShortString::try_new(queue.to_owned())
                .map_err(|_| BrokerError::NameTooLong(queue.to_owned()))?,
            ShortString::try_new(tag).unwrap_or_else(|_| "".into()),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| BrokerError::Channel {
            context: "consuming the reply queue",
            source,
        })?)
}

/// What a forwarding task reports about one consumer of a [`CohortStream`].
struct CohortEvent {
    /// The link generation the consumer belongs to (events of replaced channels are ignored).
    generation: u64,
    /// Index of the queue in [`CohortStream::queues`].
    index: usize,
    /// A delivery, a consumer error, or `None` when the consumer's stream ended.
    item: Option<lapin::Result<Delivery>>,
}

type CohortSender = tokio::sync::mpsc::UnboundedSender<CohortEvent>;

/// Opens one channel, sets the per-consumer prefetch and consumes every queue on it; one task per
/// consumer forwards its deliveries into `tx`, tagged with `generation` and the queue's index.
/// (The mpsc is unbounded, but what it can hold is bounded by the prefetch of each consumer.)
/// Each request is given `limit` to be answered (see [`broker::answered_within`]); one at a
/// time, since a cohort's thousands of consumes together may rightly take longer.
async fn consume_all(
    conn: &Connection,
    queues: &[(ParticipantId, String)],
    prefetch: u16,
    generation: u64,
    tx: &CohortSender,
    limit: Duration,
) -> Result<Channel, ClientError> {
    let err = |context| move |source| BrokerError::Channel { context, source };
    let channel = broker::answered_within(limit, "opening the reply channel", async {
        conn.create_channel()
            .await
            .map_err(err("opening the reply channel"))
    })
    .await?;
    broker::answered_within(limit, "setting the prefetch window", async {
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await
            .map_err(err("setting the prefetch window"))
    })
    .await?;
    for (index, (participant, queue)) in queues.iter().enumerate() {
        let mut consumer = broker::answered_within(
            limit,
            "starting to consume a reply queue",
            consume_on(&channel, participant, queue),
        )
        .await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(item) = consumer.next().await {
                let failed = item.is_err();
                let event = CohortEvent {
                    generation,
                    index,
                    item: Some(item),
                };
                if tx.send(event).is_err() || failed {
                    return; // the stream is gone, or this consumer is
                }
            }
            let _ = tx.send(CohortEvent {
                generation,
                index,
                item: None,
            });
        });
    }
    Ok(channel)
}

/// A result taken from a reply queue, not yet acknowledged.
pub struct Received {
    /// The delivery: ack it (with [`Received::ack`]) once the result is safely shown or stored.
    pub delivery: Delivery,
    /// The parsed result, or why it could not be read.
    pub result: Result<ResultMessage, String>,
    /// Whether a result for the same submission was already received in this stream.
    pub duplicate: bool,
}

impl Received {
    /// Acknowledges the result (after it was shown or stored). `false`: it came on a
    /// connection lost since, and the broker will deliver it again (marked duplicate).
    pub async fn ack(&self) -> Result<bool, ClientError> {
        settled(
            self.delivery.ack(BasicAckOptions::default()).await,
            "acknowledging a result",
        )
    }

    /// Drops an unreadable message (it would otherwise come back for ever).
    pub async fn discard(&self) -> Result<bool, ClientError> {
        settled(
            self.delivery
                .reject(BasicRejectOptions { requeue: false })
                .await,
            "discarding a message",
        )
    }
}

/// How often a waiting [`ResultStream`] checks that its channel is still alive.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// Results arriving on a participant's reply queue. After a connection loss it reconnects (via
/// its [`Client`]) and consumes again; the broker redelivers what was not acked.
pub struct ResultStream<'c> {
    client: &'c Client,
    participant: ParticipantId,
    queue: String,
    prefetch: u16,
    channel: Channel,
    consumer: Consumer,
    generation: u64,
    seen: HashSet<String>,
}

impl ResultStream<'_> {
    /// The next result, or `None` when nothing arrived for `idle` (or the consumer ended).
    pub async fn next(&mut self, idle: Duration) -> Result<Option<Received>, ClientError> {
        let mut resumed = 0;
        let delivery = loop {
            let deadline = tokio::time::Instant::now() + idle;
            // A consumer whose connection died does not always end its stream: look every
            // second while waiting.
            let item = loop {
                let step = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(LIVENESS_CHECK);
                match tokio::time::timeout(step, self.consumer.next()).await {
                    Ok(item) => break item,
                    // The channel died under a silent consumer: handled like an ended stream.
                    Err(_) if !self.channel.status().connected() => break None,
                    Err(_) if tokio::time::Instant::now() >= deadline => return Ok(None),
                    Err(_) => {}
                }
            };
            let lost = match item {
                Some(Ok(delivery)) => break delivery,
                Some(Err(source)) => ClientError::from(BrokerError::Channel {
                    context: "reading results",
                    source,
                }),
                // The consumer ended without our asking: a lost connection ends it too.
                None if !self.channel.status().connected() => {
                    ClientError::from(BrokerError::Channel {
                        context: "reading results",
                        source: lapin::ErrorKind::InvalidChannelState(
                            lapin::ChannelState::Closed,
                            "consumer ended",
                        )
                        .into(),
                    })
                }
                None => return Ok(None),
            };
            if !lost.is_connection_loss() || resumed >= MAX_RECONNECTS {
                return Err(lost);
            }
            resumed += 1;
            self.resume(&lost).await?;
        };
        let result =
            serde_json::from_slice::<ResultMessage>(&delivery.data).map_err(|e| e.to_string());
        let duplicate = match &result {
            Ok(r) => !self.seen.insert(r.submission_id.clone()),
            Err(_) => false,
        };
        Ok(Some(Received {
            delivery,
            result,
            duplicate,
        }))
    }

    /// Reconnects (unless another user of the client already did) and consumes again.
    async fn resume(&mut self, cause: &ClientError) -> Result<(), ClientError> {
        self.client.reconnect_from(self.generation, cause).await?;
        let participant = self.participant.clone();
        let queue = self.queue.clone();
        let prefetch = self.prefetch;
        let limit = self.client.broker.connect_timeout;
        let (channel, consumer, generation) = self
            .client
            .retrying(|link| {
                let (participant, queue) = (participant.clone(), queue.clone());
                async move {
                    let (channel, consumer) =
                        consume(&link.conn, &participant, &queue, prefetch, limit).await?;
                    Ok((channel, consumer, link.generation))
                }
            })
            .await?;
        self.channel = channel;
        self.consumer = consumer;
        self.generation = generation;
        info!(queue = self.queue, "consuming results again");
        Ok(())
    }

    /// Stops consuming.
    pub async fn close(self) {
        broker::close_channel(&self.channel, "done").await;
    }
}

/// A result taken from one of the queues of a [`CohortStream`], not yet acknowledged.
pub struct CohortReceived {
    /// Index of its queue in the list given to [`Client::cohort_results`].
    pub index: usize,
    /// The result (`duplicate`: a result for the same submission came before on this stream).
    pub received: Received,
}

/// Results arriving on many reply queues at once (see [`Client::cohort_results`]). After a
/// connection loss it reconnects (via its [`Client`]) and consumes every queue again; the broker
/// redelivers what was not acked.
pub struct CohortStream<'c> {
    client: &'c Client,
    queues: Vec<(ParticipantId, String)>,
    prefetch: u16,
    channel: Channel,
    generation: u64,
    tx: CohortSender,
    rx: tokio::sync::mpsc::UnboundedReceiver<CohortEvent>,
    /// An event [`CohortStream::try_next`] took that is not a delivery: [`CohortStream::next`]
    /// handles it.
    held: Option<CohortEvent>,
    seen: HashSet<String>,
}

impl CohortStream<'_> {
    /// The `(participant, reply queue)` pairs consumed, in the order given.
    pub fn queues(&self) -> &[(ParticipantId, String)] {
        &self.queues
    }

    /// The next result from any of the queues, or `None` when nothing arrived for `idle`.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<CohortReceived>, ClientError> {
        let mut resumed = 0;
        loop {
            let deadline = tokio::time::Instant::now() + idle;
            let lost = loop {
                let event = match self.held.take() {
                    Some(event) => event,
                    None => {
                        // A channel whose connection died does not always end its consumers'
                        // streams: look every second while waiting.
                        let step = deadline
                            .saturating_duration_since(tokio::time::Instant::now())
                            .min(LIVENESS_CHECK);
                        match tokio::time::timeout(step, self.rx.recv()).await {
                            Ok(Some(event)) => event,
                            // Cannot happen (the stream holds a sender); read as "nothing more".
                            Ok(None) => return Ok(None),
                            Err(_) if !self.channel.status().connected() => {
                                break channel_lost("the reply channel closed");
                            }
                            Err(_) if tokio::time::Instant::now() >= deadline => return Ok(None),
                            Err(_) => continue,
                        }
                    }
                };
                if event.generation != self.generation {
                    continue; // from a channel replaced since: redelivered on the new one
                }
                match event.item {
                    Some(Ok(delivery)) => return Ok(Some(self.received(event.index, delivery))),
                    Some(Err(source)) => {
                        break ClientError::from(BrokerError::Channel {
                            context: "reading results",
                            source,
                        });
                    }
                    None if !self.channel.status().connected() => {
                        break channel_lost("consumer ended");
                    }
                    // The broker cancelled this one consumer (its queue was deleted): the
                    // other queues go on.
                    None => warn!(
                        queue = self.queues[event.index].1,
                        "the broker cancelled the consumer of a reply queue"
                    ),
                }
            };
            if !lost.is_connection_loss() || resumed >= MAX_RECONNECTS {
                return Err(lost);
            }
            resumed += 1;
            self.resume(&lost).await?;
        }
    }

    /// A result that has already arrived, without waiting; `None` when there is none (or when
    /// what arrived is not a result: [`CohortStream::next`] deals with it).
    pub fn try_next(&mut self) -> Option<CohortReceived> {
        if self.held.is_some() {
            return None;
        }
        loop {
            let event = self.rx.try_recv().ok()?;
            if event.generation != self.generation {
                continue;
            }
            match event.item {
                Some(Ok(delivery)) => return Some(self.received(event.index, delivery)),
                item => {
                    self.held = Some(CohortEvent { item, ..event });
                    return None;
                }
            }
        }
    }

    fn received(&mut self, index: usize, delivery: Delivery) -> CohortReceived {
        let result =
            serde_json::from_slice::<ResultMessage>(&delivery.data).map_err(|e| e.to_string());
        let duplicate = match &result {
            Ok(r) => !self.seen.insert(r.submission_id.clone()),
            Err(_) => false,
        };
        CohortReceived {
            index,
            received: Received {
                delivery,
                result,
                duplicate,
            },
        }
    }

    /// Reconnects (unless another user of the client already did) and consumes every queue
    /// again on a new channel.
    async fn resume(&mut self, cause: &ClientError) -> Result<(), ClientError> {
        self.client.reconnect_from(self.generation, cause).await?;
        let (channel, generation) = self
            .client
            .consume_cohort(&self.queues, self.prefetch, &self.tx)
            .await?;
        self.channel = channel;
        self.generation = generation;
        info!(queues = self.queues.len(), "consuming results again");
        Ok(())
    }

    /// Stops consuming: closing the channel cancels every consumer, and the broker requeues
    /// whatever was delivered but not acked.
    pub async fn close(self) {
        broker::close_channel(&self.channel, "done").await;
    }
}

/// A channel found closed while reading results: handled like a lost connection (if the
/// connection is in fact fine, reconnecting is quick and harmless).
fn channel_lost(why: &'static str) -> ClientError {
    ClientError::from(BrokerError::Channel {
        context: "reading results",
        source: lapin::ErrorKind::InvalidChannelState(lapin::ChannelState::Closed, why).into(),
    })
}

/// A settlement on a lost connection is not an error: the broker requeued the message when the
/// connection died, and redelivers it.
fn settled(outcome: lapin::Result<bool>, context: &'static str) -> Result<bool, ClientError> {
    match outcome {
        Ok(done) => Ok(done),
        Err(err) if broker::is_connection_loss(&err) => {
            debug!(error = %err, "{context}: the connection was lost; the broker redelivers it");
            Ok(false)
        }
        Err(source) => Err(BrokerError::Channel { context, source }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_parse_and_group_into_series() {
        let study = Settings::defaults().study;
        let readings = ["glucose=5.4", "cholesterol = 4.2", "glucose=6"]
            .iter()
            .map(|r| parse_reading(r).unwrap());
        let grouped = group_readings(&study, readings).unwrap();
        assert_eq!(grouped["glucose"], vec![5.4, 6.0]);
        assert_eq!(grouped["cholesterol"], vec![4.2]);
    }

    #[test]
    fn bad_readings_are_clear_errors() {
        assert!(matches!(
            parse_reading("glucose"),
            Err(ClientError::ReadingSyntax(_))
        ));
        assert!(matches!(
            parse_reading("glucose=abc"),
            Err(ClientError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_reading("glucose=NaN"),
            Err(ClientError::NotANumber { .. })
        ));
        let study = Settings::defaults().study;
        let err = group_readings(&study, [("weight".to_owned(), 80.0)]).unwrap_err();
        assert!(err.to_string().contains("glucose, cholesterol"), "{err}");
    }
}
