//! One batch: compute on rayon, publish everything with confirms, then settle every delivery.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use rayon::prelude::*;
use tracing::{info, warn};

use crate::dead_letter::{dead_letter, delivery_count};
use crate::events::{WorkerEvent, unix_ms};
use crate::process::{Outcome, Reply, Request};
use crate::service::{WorkerContext, WorkerError};
use crate::stats::WorkerStats;
use pipeline::broker::{Outgoing, PublishFate};
use pipeline::messages::{Properties, properties};

/// How a delivery is settled once the batch's publishes are confirmed.
#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Requeue,
    /// Refused without requeue: the broker dead-letters it itself (at-least-once).
    Reject,
}

/// Which published messages belong to one delivery, and what each one is.
#[derive(Default)]
struct Published {
    /// Index of the result (or error reply) in the batch's outgoing messages.
    reply: Option<usize>,
    /// Whether that reply is the delivery's computed result (not an error reply).
    reply_is_result: bool,
    /// Index of the dead-letter copy.
    dead_letter: Option<usize>,
}

/// Processes `deliveries`: computes on the rayon pool without blocking the async runtime,
/// publishes results and dead-letter copies with confirms, and only then acks. Returns an error
/// (and acks nothing) when publishing failed: the deliveries stay unacked and the broker
/// redelivers them after the session is torn down.
pub(crate) async fn process_batch(
    ctx: &WorkerContext,
    mut deliveries: Vec<Delivery>,
) -> Result<(), WorkerError> {
    let started = Instant::now();
    let requests: Vec<Request> = deliveries
        .iter_mut()
        .map(|d| Request {
            body: std::mem::take(&mut d.data),
            reply_to: d.properties.reply_to().as_ref().map(ToString::to_string),
            correlation_id: d
                .properties
                .correlation_id()
                .as_ref()
                .map(ToString::to_string),
            message_id: d.properties.message_id().as_ref().map(ToString::to_string),
            user_id: d.properties.user_id().as_ref().map(ToString::to_string),
        })
        .collect();

    let (tx, rx) = tokio::sync::oneshot::channel();
    let processor = Arc::clone(&ctx.processor);
    ctx.pool.spawn(move || {
        let outcomes: Vec<Outcome> = requests
            .par_iter()
            .map(|request| {
                // A panic is a bug triggered by this message: retry it like a failed computation,
                // so the delivery limit eventually dead-letters it, and keep the batch going.
                catch_unwind(AssertUnwindSafe(|| processor.process(request))).unwrap_or_else(|_| {
                    Outcome::Failed {
                        reason: "the worker panicked on this message".into(),
                        reply: None,
                    }
                })
            })
            .collect();
        let _ = tx.send((requests, outcomes));
    });
    let (requests, outcomes) = rx.await.map_err(|_| WorkerError::ComputeLost)?;

    let mut outgoing = Vec::new();
    let mut settle = Vec::with_capacity(deliveries.len());
    let mut published: Vec<Published> = Vec::with_capacity(deliveries.len());
    let (mut done, mut rejected, mut retried, mut failed) = (0u64, 0u64, 0u64, 0u64);
    for ((delivery, request), outcome) in deliveries.iter().zip(&requests).zip(outcomes) {
        let message_id = request.message_id.as_deref().unwrap_or("-");
        let mut mine = Published::default();
        let mut push = |m: Outgoing| {
            outgoing.push(m);
            outgoing.len() - 1
        };
        match outcome {
            Outcome::Done(reply) => {
                done += 1;
                mine.reply = Some(push(ctx.reply(reply)));
                mine.reply_is_result = true;
                settle.push(Settle::Ack);
            }
            Outcome::Rejected { error, reply } => {
                rejected += 1;
                warn!(message_id, kind = error.kind(), reason = %error, "message refused, dead-lettering it");
                mine.dead_letter = Some(push(ctx.dead_letter(
                    delivery,
                    &request.body,
                    error.kind(),
                    &error.to_string(),
                )));
                mine.reply = reply.map(|r| push(ctx.reply(r)));
                settle.push(Settle::Ack);
            }
            Outcome::Failed { reason, reply } => {
                let attempts = delivery_count(delivery) + 1;
                if attempts > i64::from(ctx.topology.delivery_limit) {
                    failed += 1;
                    warn!(message_id, attempts, %reason, "computation failed on the last attempt, dead-lettering");
                    let reason = format!("computation failed {attempts} times: {reason}");
                    mine.dead_letter = Some(push(ctx.dead_letter(
                        delivery,
                        &request.body,
                        "computation_failed",
                        &reason,
                    )));
                    mine.reply = reply.map(|r| push(ctx.reply(r)));
                    settle.push(Settle::Ack);
                } else {
                    retried += 1;
                    warn!(message_id, attempts, %reason, "computation failed, returning the message for another attempt");
                    settle.push(Settle::Requeue);
                }
            }
        }
        published.push(mine);
    }

    // Each message has its own fate: a refused publish (a full queue with reject-publish, no
    // route) settles only the delivery it belongs to. Only a broken channel ends the session.
    let fates = ctx.publisher.publish_each(&outgoing).await?;
    let mut refused = 0u64;
    for ((settle, mine), request) in settle.iter_mut().zip(&published).zip(&requests) {
        let refused_reason = |index: Option<usize>| match index.map(|i| &fates[i]) {
            Some(PublishFate::Nacked) => Some("nacked (queue full?)".to_owned()),
            Some(PublishFate::Returned(text)) => Some(format!("returned: {text}")),
            _ => None,
        };
        let message_id = request.message_id.as_deref().unwrap_or("-");
        if let Some(why) = refused_reason(mine.dead_letter) {
            // The copy was refused: let the broker dead-letter the original itself.
            refused += 1;
            warn!(
                message_id,
                why, "dead-letter copy refused; rejecting the original"
            );
            *settle = Settle::Reject;
        } else if let Some(why) = refused_reason(mine.reply) {
            refused += 1;
            if mine.reply_is_result {
                // The participant's queue refused the result (full): try again later, within
                // the delivery limit.
                warn!(message_id, why, "result refused by the broker; requeueing");
                *settle = Settle::Requeue;
            } else {
                // The refusal is kept in readings.dead; only the sender's notice was lost.
                warn!(message_id, why, "error reply refused by the broker");
            }
        }
    }

    let mut stale = 0u64;
    for (delivery, settle) in deliveries.iter().zip(settle) {
        let settled = match settle {
            Settle::Ack => delivery.ack(BasicAckOptions::default()).await,
            // reject, not nack: RabbitMQ 4.3+ counts only rejects towards the delivery limit.
            Settle::Requeue => delivery.reject(BasicRejectOptions { requeue: true }).await,
            Settle::Reject => delivery.reject(BasicRejectOptions { requeue: false }).await,
        };
        match settled {
            Ok(true) => {}
            // The delivery belongs to a channel that was recovered since: the broker has already
            // requeued it and will deliver it again (its result may then be published twice).
            Ok(false) => stale += 1,
            Err(err) => {
                stale += 1;
                warn!(error = %err, "could not settle a delivery; the broker will redeliver it");
            }
        }
    }

    let stats: &WorkerStats = &ctx.stats;
    WorkerStats::add(&stats.batches, 1);
    WorkerStats::add(&stats.done, done);
    WorkerStats::add(&stats.rejected, rejected);
    WorkerStats::add(&stats.retried, retried);
    WorkerStats::add(&stats.failed, failed);
    WorkerStats::add(&stats.stale, stale);
    if stale > 0 {
        warn!(
            stale,
            "deliveries from before a reconnect could not be acked; they will be redelivered"
        );
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    info!(
        size = deliveries.len(),
        done,
        rejected,
        retried,
        failed,
        published = outgoing.len(),
        refused,
        elapsed_ms,
        "batch processed"
    );
    ctx.events.emit(&WorkerEvent::Batch {
        unix_ms: unix_ms(),
        received: deliveries.len() as u64,
        done,
        rejected,
        retried,
        failed,
        stale,
        published: outgoing.len() as u64,
        elapsed_ms,
    });
    Ok(())
}

impl WorkerContext {
    fn reply(&self, reply: Reply) -> Outgoing {
        let props = properties(&Properties {
            kind: reply.kind,
            message_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: reply.correlation_id,
            reply_to: None,
            app_id: self.tag.clone(),
        });
        Outgoing {
            exchange: self.topology.results_exchange.clone(),
            routing_key: reply.routing_key,
            body: reply.body,
            properties: props,
        }
    }

    fn dead_letter(&self, delivery: &Delivery, body: &[u8], kind: &str, reason: &str) -> Outgoing {
        dead_letter(
            delivery,
            body,
            &self.topology.dead_exchange,
            kind,
            reason,
            &self.tag,
        )
    }
}
