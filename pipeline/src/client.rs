//! The participant side: checking and encrypting readings, submitting them, and reading results
//! from the participant's reply queue. Used by the `producer` and `consumer` binaries and by
//! tests; bulk enrollment and collection build on the same pieces.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use paillier::PrivateKey;
use thiserror::Error;
use tracing::debug;

use crate::broker::{self, BrokerError, ConfirmedPublisher, Outgoing, Retry};
use crate::config::Settings;
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

/// A connection to the broker for a participant-side program, with the topology declared.
pub struct Client {
    conn: Connection,
    publisher: ConfirmedPublisher,
    topology: Topology,
    app_id: String,
}

impl Client {
    /// Connects (failing fast when the broker is unreachable) and declares the shared topology.
    pub async fn connect(settings: &Settings, role: &str) -> Result<Self, ClientError> {
        let conn = broker::connect(
            &settings.broker,
            role,
            Retry::Bounded(settings.broker.connect_attempts),
            false,
        )
        .await?;
        let publisher = ConfirmedPublisher::new(&conn).await?;
        let topology = Topology::new(&settings.topology, &settings.reply_queues);
        topology.declare(publisher.channel()).await?;
        Ok(Client {
            conn,
            publisher,
            topology,
            app_id: role.to_owned(),
        })
    }

    /// The resolved topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The connection (e.g. to open a consuming channel).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Declares (idempotently) the participant's reply queue; returns its name.
    pub async fn declare_reply_queue(
        &self,
        participant: &ParticipantId,
    ) -> Result<String, ClientError> {
        Ok(self
            .topology
            .declare_reply_queue(self.publisher.channel(), participant)
            .await?)
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
        Outgoing {
            exchange: self.topology.readings_exchange.clone(),
            routing_key: self.topology.submission_routing_key.clone(),
            body: serde_json::to_vec(submission).expect("a submission always serialises"),
            properties: props,
        }
    }

    /// Declares the reply queue, publishes `submission` and waits for the broker's confirm.
    pub async fn submit(&self, submission: &SubmissionWire) -> Result<(), ClientError> {
        let participant = ParticipantId::new(&submission.participant)
            .map_err(|e| ClientError::ReadingSyntax(e.to_string()))?;
        let reply_to = self.declare_reply_queue(&participant).await?;
        self.publisher
            .publish(self.submission_message(submission, &reply_to))
            .await?;
        debug!(
            submission_id = submission.submission_id,
            reply_to, "submission confirmed"
        );
        Ok(())
    }

    /// Publishes prepared messages with confirms.
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), ClientError> {
        Ok(self.publisher.publish_all(messages).await?)
    }

    /// Starts consuming a participant's reply queue (declaring it first).
    pub async fn results(
        &self,
        participant: &ParticipantId,
        prefetch: u16,
    ) -> Result<ResultStream, ClientError> {
        let queue = self.declare_reply_queue(participant).await?;
        let err = |context| move |source| BrokerError::Channel { context, source };
        let channel = self
            .conn
            .create_channel()
            .await
            .map_err(err("opening the reply channel"))?;
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await
            .map_err(err("setting the prefetch window"))?;
        let tag = format!(
            "consumer-{}-{}-{}",
            participant,
            broker::host_name(),
            std::process::id()
        );
        let consumer = channel
            .basic_consume(
                ShortString::try_new(queue.clone())
                    .map_err(|_| BrokerError::NameTooLong(queue.clone()))?,
                ShortString::try_new(tag.clone()).unwrap_or_else(|_| "".into()),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err("consuming the reply queue"))?;
        Ok(ResultStream {
            channel,
            consumer,
            seen: HashSet::new(),
        })
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// A result taken from a reply queue, not yet acknowledged.
pub struct Received {
    /// The delivery: ack it (with [`ResultStream::ack`]) once the result is safely shown or stored.
    pub delivery: Delivery,
    /// The parsed result, or why it could not be read.
    pub result: Result<ResultMessage, String>,
    /// Whether a result for the same submission was already received in this stream.
    pub duplicate: bool,
}

/// Results arriving on a participant's reply queue.
pub struct ResultStream {
    channel: Channel,
    consumer: Consumer,
    seen: HashSet<String>,
}

impl ResultStream {
    /// The next result, or `None` when nothing arrived for `idle` (or the consumer ended).
    pub async fn next(&mut self, idle: Duration) -> Result<Option<Received>, ClientError> {
        let item = match tokio::time::timeout(idle, self.consumer.next()).await {
            Err(_) | Ok(None) => return Ok(None),
            Ok(Some(item)) => item,
        };
        let delivery = item.map_err(|source| BrokerError::Channel {
            context: "reading results",
            source,
        })?;
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

    /// Acknowledges a received result (after it was shown or stored). `false`: the channel was
    /// re-established since, and the broker will deliver the result again.
    pub async fn ack(&self, received: &Received) -> Result<bool, ClientError> {
        received
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .map_err(|source| {
                BrokerError::Channel {
                    context: "acknowledging a result",
                    source,
                }
                .into()
            })
    }

    /// Drops an unreadable message (it would otherwise come back for ever).
    pub async fn discard(&self, received: &Received) -> Result<bool, ClientError> {
        received
            .delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map_err(|source| {
                BrokerError::Channel {
                    context: "discarding a message",
                    source,
                }
                .into()
            })
    }

    /// Stops consuming.
    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
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
