//! Exchanges and queues, named for an operator reading the management UI, declared idempotently
//! by every binary at start.
//!
//! ```text
//! producer ──(submission)──▶ [readings] direct ──▶ readings.work (quorum, delivery limit,
//!                                                    │            dead-letter at-least-once)
//!                                                    ├─▶ worker … worker
//!                       [readings.dead] fanout ◀─────┘  (rejected by a worker, or over the limit)
//!                              └─▶ readings.dead
//! worker ──(reply_to)──▶ [results] direct ──▶ results.<participant>  (one per participant)
//!                              └─(no route)─▶ [results.unroutable] fanout ──▶ results.unroutable
//! ```
//!
//! `readings.dead` and `results.unroutable` are fanout exchanges so that whatever routing key a
//! message had (the broker keeps the original one when it dead-letters) it is kept.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use thiserror::Error;

use crate::amqp_name::{AmqpName, AmqpNameError, NameKind};
use crate::config::{ReplyQueueSettings, TopologySettings};
use crate::participant::ParticipantId;

/// A declaration the broker refused.
#[derive(Debug, Error)]
pub enum TopologyError {
    /// A name AMQP cannot carry (too long, or empty).
    #[error(transparent)]
    Name(#[from] AmqpNameError),
    /// A queue or exchange the binary needs does not exist, and it is not to declare it
    /// (`topology.declare = false`: the operator provisions the topology).
    #[error(
        "{what} {name:?} does not exist on the broker (topology.declare = false: the operator \
         provisions it, with `admin topology` / `admin participant`)"
    )]
    Missing {
        /// "exchange" or "queue".
        what: &'static str,
        /// The object.
        name: String,
    },
    /// The broker refused the user something it needs on an object (a permission is missing).
    #[error("the broker refused {action} {name:?}: {reason} (a permission the operator grants)")]
    Refused {
        /// What was attempted, e.g. "declaring the queue".
        action: &'static str,
        /// The object.
        name: String,
        /// The broker's reply.
        reason: String,
    },
    /// The broker refused a declaration; with `PRECONDITION_FAILED` the object exists with other
    /// arguments (delete it, or keep its previous settings).
    #[error("declaring {what} {name:?}: {source}")]
    Declare {
        /// "exchange", "queue" or "binding".
        what: &'static str,
        /// The object.
        name: String,
        /// Broker error.
        #[source]
        source: lapin::Error,
    },
}

impl TopologyError {
    /// Whether the error is permanent until an operator acts (a missing object or permission):
    /// to be reported, never retried.
    pub fn is_refusal(&self) -> bool {
        match self {
            TopologyError::Missing { .. } | TopologyError::Refused { .. } => true,
            TopologyError::Declare { source, .. } => crate::broker::refusal(source).is_some(),
            TopologyError::Name(_) => false,
        }
    }
}

/// The resolved names (prefix applied) and arguments of the pipeline's exchanges and queues.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Exchange submissions are published to.
    pub readings_exchange: String,
    /// Routing key of submissions.
    pub submission_routing_key: String,
    /// Quorum work queue.
    pub work_queue: String,
    /// Dead-letter exchange.
    pub dead_exchange: String,
    /// Dead-letter queue.
    pub dead_queue: String,
    /// Results exchange.
    pub results_exchange: String,
    /// Alternate exchange of the results exchange.
    pub unroutable_exchange: String,
    /// Queue of unroutable results.
    pub unroutable_queue: String,
    /// Reply queue names start with this.
    pub reply_queue_prefix: String,
    /// Quorum delivery limit of the work queue.
    pub delivery_limit: i32,
    /// Maximum work queue length.
    pub work_queue_max_length: i64,
    /// Optional x-expires of reply queues.
    pub reply_queue_expires: Option<Duration>,
    /// `x-max-length` / `x-max-length-bytes` of the dead-letter queue.
    pub dead_queue_bounds: (i64, i64),
    /// `x-max-length` / `x-max-length-bytes` of the unroutable-results queue.
    pub unroutable_queue_bounds: (i64, i64),
    /// `x-max-length` / `x-max-length-bytes` of reply queues (0 = unbounded).
    pub reply_queue_bounds: (i64, i64),
}

impl Topology {
    /// Resolves names from settings.
    pub fn new(t: &TopologySettings, replies: &ReplyQueueSettings) -> Topology {
        let p = |name: &str| format!("{}{}", t.prefix, name);
        Topology {
            readings_exchange: p(&t.readings_exchange),
            submission_routing_key: t.submission_routing_key.clone(),
            work_queue: p(&t.work_queue),
            dead_exchange: p(&t.dead_exchange),
            dead_queue: p(&t.dead_queue),
            results_exchange: p(&t.results_exchange),
            unroutable_exchange: p(&t.unroutable_exchange),
            unroutable_queue: p(&t.unroutable_queue),
            reply_queue_prefix: p(&t.reply_queue_prefix),
            delivery_limit: t.delivery_limit,
            work_queue_max_length: t.work_queue_max_length,
            reply_queue_expires: replies.expires,
            dead_queue_bounds: (t.dead_queue_max_length, t.dead_queue_max_bytes),
            unroutable_queue_bounds: (t.unroutable_queue_max_length, t.unroutable_queue_max_bytes),
            reply_queue_bounds: (replies.max_length, replies.max_bytes),
        }
    }

    /// Name of a participant's reply queue (also its routing key on the results exchange).
    pub fn reply_queue(&self, participant: &ParticipantId) -> String {
        format!("{}{}", self.reply_queue_prefix, participant)
    }

    /// Declares every shared exchange, queue and binding. Idempotent: re-declaring with the same
    /// arguments is a no-op for the broker.
    pub async fn declare(&self, ch: &Channel) -> Result<(), TopologyError> {
        // Targets first, so that nothing is ever routed to a missing exchange.
        exchange(
            ch,
            &self.dead_exchange,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        queue(ch, &self.dead_queue, self.dead_queue_args()).await?;
        bind(ch, &self.dead_queue, &self.dead_exchange, "").await?;

        exchange(
            ch,
            &self.readings_exchange,
            ExchangeKind::Direct,
            FieldTable::default(),
        )
        .await?;
        queue(ch, &self.work_queue, self.work_queue_args()).await?;
        bind(
            ch,
            &self.work_queue,
            &self.readings_exchange,
            &self.submission_routing_key,
        )
        .await?;

        exchange(
            ch,
            &self.unroutable_exchange,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        queue(ch, &self.unroutable_queue, self.unroutable_queue_args()).await?;
        bind(ch, &self.unroutable_queue, &self.unroutable_exchange, "").await?;

        let mut results_args = FieldTable::default();
        results_args.insert(
            "alternate-exchange".into(),
            AMQPValue::LongString(self.unroutable_exchange.as_str().into()),
        );
        exchange(
            ch,
            &self.results_exchange,
            ExchangeKind::Direct,
            results_args,
        )
        .await?;
        Ok(())
    }

    /// Declares a participant's durable reply queue and binds it to the results exchange under
    /// its own name. Returns the queue name.
    pub async fn declare_reply_queue(
        &self,
        ch: &Channel,
        participant: &ParticipantId,
    ) -> Result<String, TopologyError> {
        Ok(self.declare_reply_queue_counted(ch, participant).await?.0)
    }

    /// [`Topology::declare_reply_queue`], also returning how many messages were ready in the
    /// queue (the declare's answer carries it, so no passive declare is needed to count).
    pub async fn declare_reply_queue_counted(
        &self,
        ch: &Channel,
        participant: &ParticipantId,
    ) -> Result<(String, u32), TopologyError> {
        let name = self.reply_queue(participant);
        let ready = queue(ch, &name, self.reply_queue_args()).await?;
        bind(ch, &name, &self.results_exchange, &name).await?;
        Ok((name, ready))
    }

    /// Checks, without declaring anything, that a participant's reply queue exists; returns its
    /// name and the messages ready in it. Its binding cannot be checked over AMQP without
    /// rights the participant does not have: whoever provisions the queue binds it in the same
    /// step (`admin participant` does, through [`Topology::declare_reply_queue`]), so a queue is
    /// never provisioned unbound.
    pub async fn check_reply_queue(
        &self,
        ch: &Channel,
        participant: &ParticipantId,
    ) -> Result<(String, u32), TopologyError> {
        let name = self.reply_queue(participant);
        let ready = check_queue(ch, &name).await?;
        Ok((name, ready))
    }

    /// Deletes every shared exchange and queue (tests and teardown scripts; never the binaries).
    pub async fn delete(&self, ch: &Channel) -> Result<(), TopologyError> {
        for q in [&self.work_queue, &self.dead_queue, &self.unroutable_queue] {
            ch.queue_delete(
                checked(NameKind::Queue, q)?.into(),
                QueueDeleteOptions::default(),
            )
            .await
            .map_err(|source| TopologyError::Declare {
                what: "deleting queue",
                name: q.clone(),
                source,
            })?;
        }
        for e in [
            &self.readings_exchange,
            &self.results_exchange,
            &self.unroutable_exchange,
            &self.dead_exchange,
        ] {
            ch.exchange_delete(
                checked(NameKind::Exchange, e)?.into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .map_err(|source| TopologyError::Declare {
                what: "deleting exchange",
                name: e.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Arguments of a participant's reply queue: optional `x-expires`, and the length bounds
    /// with reject-publish (a flood of results refused, never older results dropped). Whoever
    /// provisions reply queues must declare them with exactly these, or the binaries' own
    /// declarations fail with `PRECONDITION_FAILED`.
    pub fn reply_queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if let Some(expires) = self.reply_queue_expires {
            // Validated to fit an i32 when the settings were loaded.
            let ms = i32::try_from(expires.as_millis()).unwrap_or(i32::MAX);
            args.insert("x-expires".into(), AMQPValue::LongInt(ms));
        }
        bounded(&mut args, self.reply_queue_bounds);
        args
    }

    /// Arguments of the dead-letter queue: quorum, bounded with reject-publish.
    pub fn dead_queue_args(&self) -> FieldTable {
        let mut args = quorum_args();
        bounded(&mut args, self.dead_queue_bounds);
        args
    }

    /// Arguments of the unroutable-results queue: quorum, bounded with reject-publish.
    pub fn unroutable_queue_args(&self) -> FieldTable {
        let mut args = quorum_args();
        bounded(&mut args, self.unroutable_queue_bounds);
        args
    }

    /// Arguments of the work queue (quorum, delivery limit, at-least-once dead-lettering).
    pub fn work_queue_args(&self) -> FieldTable {
        let mut args = quorum_args();
        let s = |v: &str| AMQPValue::LongString(v.into());
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit),
        );
        args.insert("x-dead-letter-exchange".into(), s(&self.dead_exchange));
        // At-least-once dead-lettering keeps a message in the work queue until the dead-letter
        // queue confirmed it; RabbitMQ requires reject-publish overflow for it.
        args.insert("x-dead-letter-strategy".into(), s("at-least-once"));
        args.insert("x-overflow".into(), s("reject-publish"));
        args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(self.work_queue_max_length),
        );
        args
    }
}

/// Adds `x-max-length` / `x-max-length-bytes` (each when positive) with `x-overflow =
/// reject-publish`: the publisher is told (nack) instead of the oldest messages being dropped.
fn bounded(args: &mut FieldTable, (max_length, max_bytes): (i64, i64)) {
    if max_length > 0 {
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(max_length));
    }
    if max_bytes > 0 {
        args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(max_bytes),
        );
    }
    if max_length > 0 || max_bytes > 0 {
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    // LongString, never ShortString: the broker cannot parse a ShortString table value.
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// `name` checked as a name of `kind` (lapin panics on a too-long one).
fn checked(kind: NameKind, name: &str) -> Result<AmqpName, TopologyError> {
    Ok(AmqpName::new(kind, name)?)
}

async fn exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> Result<(), TopologyError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        checked(NameKind::Exchange, name)?.into(),
        kind,
        options,
        args,
    )
    .await
    .map_err(|source| declare_error("exchange", name, source))
}

/// A failed declaration as a [`TopologyError`]: a missing configure permission is named as such.
fn declare_error(what: &'static str, name: &str, source: lapin::Error) -> TopologyError {
    if crate::broker::refusal(&source) == Some(crate::broker::Refusal::AccessRefused) {
        return TopologyError::Refused {
            action: match what {
                "exchange" => "declaring the exchange",
                "queue" => "declaring the queue",
                _ => "binding",
            },
            name: name.to_owned(),
            reason: format!(
                "{source}; a user without configure rights runs with topology.declare = false"
            ),
        };
    }
    TopologyError::Declare {
        what,
        name: name.to_owned(),
        source,
    }
}

/// A failed passive declaration as a [`TopologyError`].
fn check_error(what: &'static str, name: &str, source: lapin::Error) -> TopologyError {
    match crate::broker::refusal(&source) {
        Some(crate::broker::Refusal::NotFound) => TopologyError::Missing {
            what,
            name: name.to_owned(),
        },
        Some(_) => TopologyError::Refused {
            action: if what == "queue" {
                "checking the queue"
            } else {
                "checking the exchange"
            },
            name: name.to_owned(),
            reason: source.to_string(),
        },
        None => TopologyError::Declare {
            what,
            name: name.to_owned(),
            source,
        },
    }
}

/// Checks that exchange `name` exists (a passive declare: no permission needed). The broker
/// closes the channel when it does not: use a channel of its own.
pub async fn check_exchange(ch: &Channel, name: &str) -> Result<(), TopologyError> {
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        checked(NameKind::Exchange, name)?.into(),
        // Ignored by a passive declare.
        ExchangeKind::Direct,
        options,
        FieldTable::default(),
    )
    .await
    .map_err(|source| check_error("exchange", name, source))
}

/// Checks that queue `name` exists (a passive declare: no permission needed); returns the
/// messages ready in it. The broker closes the channel when it does not: use a channel of its
/// own.
pub async fn check_queue(ch: &Channel, name: &str) -> Result<u32, TopologyError> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(
        checked(NameKind::Queue, name)?.into(),
        options,
        FieldTable::default(),
    )
    .await
    .map(|q| q.message_count())
    .map_err(|source| check_error("queue", name, source))
}

/// Declares a durable queue; returns the number of messages ready in it.
async fn queue(ch: &Channel, name: &str, args: FieldTable) -> Result<u32, TopologyError> {
    ch.queue_declare(
        checked(NameKind::Queue, name)?.into(),
        QueueDeclareOptions::durable(),
        args,
    )
    .await
    .map(|q| q.message_count())
    .map_err(|source| declare_error("queue", name, source))
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), TopologyError> {
    ch.queue_bind(
        checked(NameKind::Queue, queue)?.into(),
        checked(NameKind::Exchange, exchange)?.into(),
        checked(NameKind::RoutingKey, key)?.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|source| declare_error("binding", &format!("{exchange} -> {queue} ({key})"), source))
}
