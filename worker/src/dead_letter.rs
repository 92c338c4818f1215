//! The copy of a refused message that goes to the dead-letter exchange.
//!
//! RabbitMQ's own dead-lettering (reject without requeue) records only the reason "rejected".
//! To keep *why* a message was refused, the worker republishes the original body itself, with
//! the original properties and these extra headers, and acks the original once the copy is
//! confirmed:
//!
//! | header | value |
//! |---|---|
//! | `x-rejection-kind` | stable code, e.g. `invalid_ciphertext` |
//! | `x-rejection-reason` | human-readable reason |
//! | `x-rejected-by` | the worker's consumer tag |
//! | `x-rejected-at` | Unix time, seconds |
//! | `x-original-exchange`, `x-original-routing-key` | where the message was published |

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, LongString};

use pipeline::amqp_name::{AmqpName, NameKind};
use pipeline::broker::Outgoing;
use pipeline::messages::truncate_reason;

/// Header with the stable rejection code.
pub const HEADER_KIND: &str = "x-rejection-kind";
/// Header with the human-readable rejection reason.
pub const HEADER_REASON: &str = "x-rejection-reason";
/// Header naming the worker that refused the message.
pub const HEADER_REJECTED_BY: &str = "x-rejected-by";

/// Builds the dead-letter copy of `delivery` (whose body is `body`).
pub(crate) fn dead_letter(
    delivery: &Delivery,
    body: &[u8],
    dead_exchange: &str,
    kind: &str,
    reason: &str,
    rejected_by: &str,
) -> Outgoing {
    let original: &BasicProperties = &delivery.properties;
    let mut headers = original.headers().clone().unwrap_or_default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));
    headers.insert(HEADER_KIND.into(), s(kind));
    headers.insert(HEADER_REASON.into(), s(&truncate_reason(reason)));
    headers.insert(HEADER_REJECTED_BY.into(), s(rejected_by));
    headers.insert(
        "x-rejected-at".into(),
        AMQPValue::LongLongInt(pipeline::messages::now_secs() as i64),
    );
    headers.insert("x-original-exchange".into(), s(delivery.exchange.as_str()));
    headers.insert(
        "x-original-routing-key".into(),
        s(delivery.routing_key.as_str()),
    );
    let mut properties = original.clone().with_headers(headers).with_delivery_mode(2);
    // The publisher identifies returned messages by message id: make sure there is one.
    if original.message_id().is_none() {
        let id = AmqpName::new(
            NameKind::MessageId,
            format!("dead-{}", uuid::Uuid::new_v4()),
        )
        .expect("\"dead-\" and a UUID are 41 bytes");
        properties = properties.with_message_id(id.into());
    }
    Outgoing {
        exchange: dead_exchange.to_owned(),
        routing_key: delivery.routing_key.to_string(),
        body: body.to_vec(),
        properties,
    }
}

/// Number of earlier deliveries of this message (quorum queues' `x-delivery-count`; absent on
/// the first delivery).
pub(crate) fn delivery_count(delivery: &Delivery) -> i64 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count"))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(*n),
            AMQPValue::LongInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortInt(n) => Some(i64::from(*n)),
            AMQPValue::LongUInt(n) => Some(i64::from(*n)),
            _ => None,
        })
        .unwrap_or(0)
}
