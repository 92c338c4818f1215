//! Results arriving on reply queues, as one stream type: [`ResultStream`] consumes one or many
//! reply queues on one channel (one consumer per queue), so a participant's own stream is a
//! cohort stream of one queue. After a connection loss it reconnects (via its [`Client`]) and
//! consumes every queue again; the broker redelivers what was not acked, and
//! [`Received::duplicate`] marks a result for a submission already seen on the stream.

use std::collections::HashSet;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use pipeline::ParticipantId;
use pipeline::amqp_name::{AmqpName, NameKind};
use pipeline::broker::{self, BrokerError};
use pipeline::messages::ResultMessage;
use tracing::{debug, info, warn};

use crate::connection::{Client, ClientError, MAX_RECONNECTS};

/// How often a waiting [`ResultStream`] checks that its channel is still alive.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

impl Client {
    /// Starts consuming a participant's reply queue (declaring it first): a [`ResultStream`] of
    /// that one queue. The stream reconnects by itself after a connection loss.
    pub async fn results(
        &self,
        participant: &ParticipantId,
        prefetch: u16,
    ) -> Result<ResultStream<'_>, ClientError> {
        let queue = self.declare_reply_queue(participant).await?;
        self.cohort_results(vec![(participant.clone(), queue)], prefetch)
            .await
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
    ) -> Result<ResultStream<'_>, ClientError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (channel, generation) = self.consume_cohort(&queues, prefetch, &tx).await?;
        Ok(ResultStream {
            client: self,
            live: queues.len(),
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
        tx: &StreamSender,
    ) -> Result<(Channel, u64), ClientError> {
        let limit = self.broker_settings().connect_timeout;
        self.retrying(|link| async move {
            let channel =
                consume_all(&link.conn, queues, prefetch, link.generation, tx, limit).await?;
            Ok((channel, link.generation))
        })
        .await
    }
}

/// Starts a consumer of `queue` on `channel`, tagged after the participant, host and process
/// (unique on the channel, and telling in the management UI). A tag too long for AMQP (a very
/// long host name) is refused rather than sent empty: an empty tag would be replaced by one the
/// broker makes up, and the management UI would no longer tell who consumes.
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
            AmqpName::queue(queue).map_err(BrokerError::from)?.into(),
            AmqpName::new(NameKind::ConsumerTag, tag)
                .map_err(BrokerError::from)?
                .into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| BrokerError::Channel {
            context: "consuming the reply queue",
            source,
        })?)
}

/// What a forwarding task reports about one consumer of a [`ResultStream`].
struct StreamEvent {
    /// The link generation the consumer belongs to (events of replaced channels are ignored).
    generation: u64,
    /// Index of the queue in [`ResultStream::queues`].
    index: usize,
    /// A delivery, a consumer error, or `None` when the consumer's stream ended.
    item: Option<lapin::Result<Delivery>>,
}

type StreamSender = tokio::sync::mpsc::UnboundedSender<StreamEvent>;

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
    tx: &StreamSender,
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
                let event = StreamEvent {
                    generation,
                    index,
                    item: Some(item),
                };
                if tx.send(event).is_err() || failed {
                    return; // the stream is gone, or this consumer is
                }
            }
            let _ = tx.send(StreamEvent {
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
    /// Index of its queue in [`ResultStream::queues`] (always 0 on a participant's own stream).
    pub index: usize,
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

/// Results arriving on one or many reply queues (see [`Client::results`] and
/// [`Client::cohort_results`]). After a connection loss it reconnects (via its [`Client`]) and
/// consumes every queue again; the broker redelivers what was not acked.
pub struct ResultStream<'c> {
    client: &'c Client,
    queues: Vec<(ParticipantId, String)>,
    prefetch: u16,
    channel: Channel,
    generation: u64,
    tx: StreamSender,
    rx: tokio::sync::mpsc::UnboundedReceiver<StreamEvent>,
    /// An event [`ResultStream::try_next`] took that is not a delivery: [`ResultStream::next`]
    /// handles it.
    held: Option<StreamEvent>,
    seen: HashSet<String>,
    /// Consumers of the current channel the broker has not cancelled: when none is left, the
    /// stream has ended.
    live: usize,
}

impl ResultStream<'_> {
    /// The `(participant, reply queue)` pairs consumed, in the order given.
    pub fn queues(&self) -> &[(ParticipantId, String)] {
        &self.queues
    }

    /// The next result from any of the queues, or `None` when nothing arrived for `idle` (or
    /// the broker cancelled every consumer).
    pub async fn next(&mut self, idle: Duration) -> Result<Option<Received>, ClientError> {
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
                    // The consumer ended without our asking: a lost connection ends it too.
                    None if !self.channel.status().connected() => {
                        break channel_lost("consumer ended");
                    }
                    // The broker cancelled this one consumer (its queue was deleted): the
                    // other queues go on.
                    None => {
                        warn!(
                            queue = self.queues[event.index].1,
                            "the broker cancelled the consumer of a reply queue"
                        );
                        self.live = self.live.saturating_sub(1);
                        if self.live == 0 {
                            return Ok(None);
                        }
                    }
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
    /// what arrived is not a result: [`ResultStream::next`] deals with it).
    pub fn try_next(&mut self) -> Option<Received> {
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
                    self.held = Some(StreamEvent { item, ..event });
                    return None;
                }
            }
        }
    }

    /// Parses a delivery and tells whether its submission was seen before on this stream.
    fn received(&mut self, index: usize, delivery: Delivery) -> Received {
        let result =
            serde_json::from_slice::<ResultMessage>(&delivery.data).map_err(|e| e.to_string());
        let duplicate = match &result {
            Ok(r) => !self.seen.insert(r.submission_id.clone()),
            Err(_) => false,
        };
        Received {
            index,
            delivery,
            result,
            duplicate,
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
        self.live = self.queues.len();
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
